"""The SSH transport (paramiko): host keys checked like OpenSSH, ~/.ssh/config honoured.

Connecting resolves the target through ~/.ssh/config (HostName, User, Port, IdentityFile,
HostKeyAlias, ProxyJump, ProxyCommand), opens the TCP link (directly or through jump hosts),
checks the server's host key with a ``HostKeyPolicy`` *before* authenticating, then tries the
identity files, the ssh-agent, the default ~/.ssh/id_* keys and finally the password.

Every remote command runs under coreutils ``timeout`` so a hung command is killed on the host,
and the client also stops waiting shortly after. stdout and stderr are drained together, so any
amount of output is safe. sudo runs as ``sudo -n`` when passwordless, else by its prompt: the
password (never on a command line) goes to stdin only once sudo asks for it, the command's input
only once the command runs (see ``app.transport.sudo``).
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import select
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from app.transport.base import (
    ConnectionSecrets,
    ConnectionSettings,
    ExecResult,
    ExecTransport,
    TransportError,
    as_text,
    display_command,
    sudo_problem,
)
from app.transport.hostkeys import HostKeyPolicy
from app.transport.sudo import SudoGate

# sshd may send the exit status before the last output. After it, keep reading until EOF, but
# give up once the channel has been silent this long (a background child may hold stdout open
# forever, which would otherwise hang us like it hangs ssh).
EOF_AFTER_EXIT_SECONDS = 10.0
CHUNK = 65536
MAX_JUMP_HOPS = 8
FROM_CONFIG = "\0from-config"  # jump_spec meaning "as ~/.ssh/config says"
DEFAULT_IDENTITY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")
# How long a long-running command (docker dial-stdio) may take to get past sudo.
STREAM_SUDO_SECONDS = 30.0


@dataclass
class ResolvedTarget:
    """A ConnectionSettings after ~/.ssh/config: what to actually connect to."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: list[str] = field(default_factory=list)
    identity_explicit: bool = False
    identities_only: bool = False
    host_key_alias: str | None = None
    proxy_jump: str | None = None
    proxy_command: str | None = None
    config_path: str | None = None

    @property
    def known_hosts_name(self) -> str:
        return self.host_key_alias or self.hostname


def ssh_config_path(settings: ConnectionSettings) -> Path | None:
    if settings.ssh_config == "":
        return None
    path = Path(settings.ssh_config) if settings.ssh_config else Path.home() / ".ssh" / "config"
    return path if path.is_file() else None


def resolve(settings: ConnectionSettings) -> ResolvedTarget:
    """Apply ~/.ssh/config to the settings; explicit settings win, like ssh's command line."""
    path = ssh_config_path(settings)
    options: dict[str, object] = {}
    if path is not None:
        try:
            options = dict(paramiko.SSHConfig.from_path(str(path)).lookup(settings.host))
        except (OSError, paramiko.ConfigParseError, ValueError) as error:
            raise TransportError(
                f"cannot read ssh config {path}: {error}",
                "fix the file or point regwiz at another ssh config",
                kind="unreachable",
            ) from error
    port = settings.port or _int_option(options.get("port"), 22)
    identity_files = [settings.identity_file] if settings.identity_file else []
    listed = options.get("identityfile")
    configured = [str(p) for p in listed] if isinstance(listed, list) else []
    proxy_command = _str_option(options.get("proxycommand"))
    return ResolvedTarget(
        alias=settings.host,
        hostname=_str_option(options.get("hostname")) or settings.host,
        port=port,
        user=settings.user or _str_option(options.get("user")) or getpass.getuser(),
        identity_files=[os.path.expanduser(p) for p in identity_files + configured],
        identity_explicit=bool(identity_files or configured),
        identities_only=_str_option(options.get("identitiesonly")) == "yes",
        host_key_alias=_str_option(options.get("hostkeyalias")),
        proxy_jump=_none_if_none(_str_option(options.get("proxyjump"))),
        proxy_command=_none_if_none(proxy_command),
        config_path=str(path) if path else None,
    )


def _str_option(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _none_if_none(value: str | None) -> str | None:
    return None if value is None or value.lower() == "none" else value


def _int_option(value: object, default: int) -> int:
    try:
        return int(str(value)) if value is not None else default
    except ValueError:
        return default


def parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` as ProxyJump writes one hop."""
    user, _, hostport = spec.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
        port = int(port_text) if port_text.isdigit() else None
    return (user or None), host, port


# --------------------------------------------------------------------------- connection


def open_socket(
    target: ResolvedTarget,
    settings: ConnectionSettings,
    policy: HostKeyPolicy,
    depth: int = 0,
) -> tuple[socket.socket | paramiko.Channel | paramiko.ProxyCommand, SSHTransport | None]:
    """The byte stream to the SSH server, and the jump connection to close with it (if any)."""
    timeout = settings.connect_timeout
    where = f"{target.hostname}:{target.port}"
    if target.proxy_jump:
        if depth >= MAX_JUMP_HOPS:
            raise TransportError(
                f"the ProxyJump chain to {target.alias} is longer than {MAX_JUMP_HOPS} hops",
                "check ~/.ssh/config for a ProxyJump that loops back",
                kind="unreachable",
            )
        hops = target.proxy_jump.split(",")
        jump_user, jump_host, jump_port = parse_jump(hops[-1])
        jump_settings = ConnectionSettings(
            host=jump_host, user=jump_user, port=jump_port, connect_timeout=timeout,
            ssh_config=target.config_path or "",
        )
        # Earlier hops lead to this one; the first hop follows its own config, as with ssh -J.
        jump = _connect(jump_settings, ConnectionSecrets(), policy,
                        jump_spec=",".join(hops[:-1]) or FROM_CONFIG, depth=depth + 1)
        try:
            channel = jump.client.open_channel(
                "direct-tcpip", (target.hostname, target.port), ("127.0.0.1", 0), timeout=timeout
            )
        except (paramiko.SSHException, OSError) as error:
            jump.close()
            raise TransportError(
                f"jump host {jump.name} could not reach {where}: {error}",
                "check the address and that the jump host allows TCP forwarding",
                kind="unreachable",
            ) from error
        return channel, jump
    if target.proxy_command:
        try:
            return paramiko.ProxyCommand(target.proxy_command), None
        except (paramiko.SSHException, OSError) as error:
            raise TransportError(
                f"ProxyCommand for {target.alias} failed to start: {error}",
                "check the ProxyCommand in your ssh config",
                kind="unreachable",
            ) from error
    return _tcp_connect(target.hostname, target.port, timeout), None


def _tcp_connect(hostname: str, port: int, timeout: float) -> socket.socket:
    where = f"{hostname}:{port}"
    try:
        return socket.create_connection((hostname, port), timeout=timeout)
    except socket.gaierror as error:
        raise TransportError(
            f"cannot resolve host name {hostname}: {error.strerror}",
            "check the spelling, DNS, or use the IP address",
            kind="unreachable",
        ) from error
    except TimeoutError as error:
        raise TransportError(
            f"{where} did not answer within {timeout:g}s",
            "check that the host is up, the address and port are right, and no firewall "
            "drops SSH",
            kind="unreachable",
        ) from error
    except ConnectionRefusedError as error:
        raise TransportError(
            f"{where} refused the connection",
            "check that sshd runs on the host and listens on this port",
            kind="unreachable",
        ) from error
    except OSError as error:
        reason = "no route to host" if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) \
            else (error.strerror or str(error))
        raise TransportError(
            f"cannot reach {where}: {reason}",
            "check the address, the network and any firewall between here and the host",
            kind="unreachable",
        ) from error


def start_ssh(
    stream: socket.socket | paramiko.Channel | paramiko.ProxyCommand,
    target: ResolvedTarget,
    policy: HostKeyPolicy,
    timeout: float,
) -> paramiko.Transport:
    """Key exchange, preferring the key types known_hosts lists for the host (as ssh does)."""
    client = paramiko.Transport(stream)
    client.banner_timeout = timeout
    client.auth_timeout = timeout
    known = policy.known_key_types(target.known_hosts_name, target.port)
    if known:
        options = client.get_security_options()
        preferred = _expand_rsa(known)
        options.key_types = tuple(
            [t for t in preferred if t in options.key_types]
            + [t for t in options.key_types if t not in preferred]
        )
    try:
        client.start_client(timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError) as error:
        client.close()
        raise TransportError(
            f"SSH handshake with {target.hostname}:{target.port} failed: {error or 'no answer'}",
            "check that this address and port belong to an SSH server",
            kind="unreachable",
        ) from error
    if not (client.is_active() and client.initial_kex_done):  # start_client's timeout is silent
        client.close()
        raise TransportError(
            f"{target.hostname}:{target.port} accepted the connection but did not complete an "
            f"SSH handshake within {timeout:g}s",
            "check that this address and port belong to a working SSH server",
            kind="unreachable",
        )
    return client


def _expand_rsa(types: tuple[str, ...]) -> list[str]:
    expanded: list[str] = []
    for key_type in types:
        expanded += ["rsa-sha2-512", "rsa-sha2-256"] if key_type == "ssh-rsa" else [key_type]
    return expanded


def check_host_key(
    client: paramiko.Transport, target: ResolvedTarget, policy: HostKeyPolicy
) -> None:
    key = client.get_remote_server_key()
    try:
        policy.verify(target.known_hosts_name, target.port, key.get_name(), key.asbytes())
    except BaseException:
        client.close()
        raise


def load_identity(path: str, passphrase: str | None) -> paramiko.PKey:
    """Load a private key file; explains a missing or wrong passphrase (never echoing it)."""
    password = passphrase.encode() if passphrase else None
    try:
        # paramiko's stubs say str, but from_path needs bytes (str raises TypeError).
        return paramiko.PKey.from_path(path, password)  # type: ignore[arg-type]
    except FileNotFoundError as error:
        raise TransportError(
            f"identity file {path} does not exist", "check the IdentityFile path",
            kind="identity-file",
        ) from error
    except PermissionError as error:
        raise TransportError(
            f"identity file {path} is not readable", "check its permissions",
            kind="identity-file",
        ) from error
    except (TypeError, ValueError, paramiko.SSHException) as error:
        # By type, not by wording: without a password, cryptography's loaders (which paramiko
        # 5 uses) raise TypeError exactly when the key is encrypted; paramiko's own readers
        # raise PasswordRequiredException.
        if passphrase is None and isinstance(error, (TypeError,
                                                     paramiko.PasswordRequiredException)):
            raise TransportError(
                f"identity file {path} is protected by a passphrase",
                "enter the key's passphrase, or load the key into ssh-agent (ssh-add)",
                kind="key-passphrase-needed",
            ) from error
        raise TransportError(
            f"cannot load identity file {path}: wrong passphrase, or not a private key",
            "check the passphrase and that the file is an OpenSSH/PEM private key",
            kind="identity-file",
        ) from error


def authenticate(
    client: paramiko.Transport, target: ResolvedTarget, secrets: ConnectionSecrets
) -> None:
    """Try identity files, agent keys, default keys, then the password; raise a
    TransportError of category "auth"."""
    tried: list[str] = []
    problems: list[TransportError] = []
    for label, get_key in _candidate_keys(target, secrets, problems):
        tried.append(label)
        key = get_key()
        if key is None:
            continue
        try:
            client.auth_publickey(target.user, key)
            return
        except paramiko.AuthenticationException:
            continue
        except paramiko.SSHException as error:
            _raise_lost(client, target, error)
    if secrets.password is not None:
        tried.append("password")
        try:
            client.auth_password(target.user, secrets.password)
            return
        except paramiko.AuthenticationException:
            pass
        except paramiko.SSHException as error:
            _raise_lost(client, target, error)
    client.close()
    if not tried:
        raise TransportError(
            f"no key or password to log in to {target.user}@{target.hostname}:{target.port}",
            "give an identity file, load your key into ssh-agent (ssh-add), or enter the "
            "password",
            kind="no-credentials",
        )
    if problems and len(tried) == len(problems):
        raise problems[0]
    detail = "; ".join(p.message for p in problems)
    # A key that was not tried for want of its passphrase is what to fix first.
    locked = any(p.kind == "key-passphrase-needed" for p in problems)
    raise TransportError(
        f"{target.user}@{target.hostname}:{target.port} refused the login "
        f"(tried: {', '.join(tried) or 'nothing'}){'; ' + detail if detail else ''}",
        "check the user name, add your public key to the user's ~/.ssh/authorized_keys, "
        "or enter the password",
        kind="key-passphrase-needed" if locked else "login-refused",
        causes=tuple(problems),
    )


def _raise_lost(client: paramiko.Transport, target: ResolvedTarget, error: Exception) -> None:
    client.close()
    raise TransportError(
        f"the connection to {target.hostname}:{target.port} failed during login: {error}",
        "check the host's sshd logs",
        kind="unreachable",
    ) from error


def _candidate_keys(
    target: ResolvedTarget, secrets: ConnectionSecrets, problems: list[TransportError]
) -> list[tuple[str, Callable[[], paramiko.PKey | None]]]:
    def from_file(path: str) -> Callable[[], paramiko.PKey | None]:
        def load() -> paramiko.PKey | None:
            try:
                return load_identity(path, secrets.key_passphrase)
            except TransportError as error:
                problems.append(error)
                return None
        return load

    candidates = [(f"key {p}", from_file(p)) for p in target.identity_files]
    if not target.identities_only:
        candidates += [(f"agent key {k.fingerprint}", _constant(k)) for k in _agent_keys()]
    if not target.identity_explicit:
        home_keys = [Path.home() / ".ssh" / name for name in DEFAULT_IDENTITY_NAMES]
        candidates += [(f"key {p}", from_file(str(p))) for p in home_keys if p.is_file()]
    return candidates


def _constant(key: paramiko.PKey) -> Callable[[], paramiko.PKey | None]:
    return lambda: key


def _agent_keys() -> list[paramiko.PKey]:
    if not os.environ.get("SSH_AUTH_SOCK"):
        return []
    try:
        return list(paramiko.Agent().get_keys())
    except (paramiko.SSHException, OSError):
        return []


def _connect(
    settings: ConnectionSettings,
    secrets: ConnectionSecrets,
    policy: HostKeyPolicy,
    jump_spec: str | None = None,
    depth: int = 0,
) -> SSHTransport:
    """``jump_spec``: FROM_CONFIG (use the config's ProxyJump) or the hops to go through."""
    target = resolve(settings)
    if jump_spec != FROM_CONFIG:
        target.proxy_jump = jump_spec
    stream, jump = open_socket(target, settings, policy, depth)
    try:
        client = start_ssh(stream, target, policy, settings.connect_timeout)
        check_host_key(client, target, policy)
        authenticate(client, target, secrets)
    except BaseException:
        if jump is not None:
            jump.close()
        raise
    client.set_keepalive(30)
    return SSHTransport(client, target, settings, secrets, jump)


def connect(
    settings: ConnectionSettings,
    secrets: ConnectionSecrets | None = None,
    policy: HostKeyPolicy | None = None,
) -> SSHTransport:
    """Open a verified, authenticated SSH connection (see the module docstring)."""
    return _connect(settings, secrets or ConnectionSecrets(), policy or HostKeyPolicy(),
                    FROM_CONFIG)


# --------------------------------------------------------------------------- the transport


class SSHTransport(ExecTransport):
    """A verified, authenticated SSH connection to one host. Thread-safe for commands."""

    def __init__(
        self,
        client: paramiko.Transport,
        target: ResolvedTarget,
        settings: ConnectionSettings,
        secrets: ConnectionSecrets,
        jump: SSHTransport | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.target = target
        self.settings = settings
        self.name = settings.host
        self.allow_sudo = settings.sudo
        self._secrets = secrets
        self._jump = jump

    @property
    def sudo_password(self) -> str | None:
        return self._secrets.sudo_password

    def _open_channel(self, timeout: float) -> paramiko.Channel:
        if not self.client.is_active():
            raise TransportError(
                f"the SSH connection to {self.name} is closed",
                "reconnect to the host",
                kind="unreachable",
            )
        try:
            return self.client.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise TransportError(
                f"cannot open an SSH session on {self.name}: {error}",
                "the connection may have dropped; reconnect, or raise MaxSessions in sshd_config",
                kind="unreachable",
            ) from error

    def _exec(self, argv: list[str], stdin: bytes | None, timeout: float,
              gate: SudoGate | None = None) -> ExecResult:
        channel = self._open_channel(timeout)
        try:
            channel.exec_command(shlex.join(argv))
            feed = _StdinFeed(stdin or b"", gate)
            status, out, err = _pump(channel, feed, time.monotonic() + timeout)
        except _ChannelTimeout as error:
            raise TransportError(
                f"`{display_command(argv)}` on {self.name} did not finish within {timeout:g}s "
                "and was abandoned",
                "the host may be overloaded or unreachable",
                kind="timeout",
            ) from error
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise TransportError(
                f"lost the SSH connection to {self.name}: {error}",
                "check the host and the network, then run again",
                kind="unreachable",
            ) from error
        finally:
            close_quietly(channel)
        if status < 0 and self.client.is_active():
            raise TransportError(
                f"`{display_command(argv)}` on {self.name} ended without an exit status "
                "(killed by a signal?)",
                "check the host's logs (e.g. the kernel's OOM killer)",
                kind="command",
            )
        if status < 0:
            raise TransportError(
                f"lost the SSH connection to {self.name} while a command ran",
                "check the host and the network, then run again",
                kind="unreachable",
            )
        return ExecResult(status, out, as_text(err))

    # ----------------------------------------------------------------- streams (docker)

    def open_stream(self, argv: list[str], *, sudo: bool = False) -> paramiko.Channel:
        """Start a long-running command (no timeout wrapper) and return its channel as a
        byte stream. With a sudo password, the sudo handshake is finished first: the stream
        carries nothing but the command's own bytes."""
        full, gate = self.sudo_command(argv, sudo)
        channel = self._open_channel(30)
        try:
            channel.exec_command(shlex.join(full))
            if gate is not None:
                self._sudo_handshake(channel, gate, argv)
        except (paramiko.SSHException, OSError, EOFError) as error:
            close_quietly(channel)
            raise TransportError(
                f"cannot start `{display_command(argv)}` on {self.name}: {error}",
                kind="unreachable",
            ) from error
        return channel

    def _sudo_handshake(self, channel: paramiko.Channel, gate: SudoGate,
                        argv: list[str]) -> None:
        """Answer sudo's prompt and wait until the command runs (at most STREAM_SUDO_SECONDS);
        raise a TransportError (closing the channel) when it does not."""
        seen: list[bytes] = []
        deadline = time.monotonic() + STREAM_SUDO_SECONDS
        while not gate.done and time.monotonic() < deadline and not channel.exit_status_ready():
            while channel.recv_stderr_ready():
                seen.append(channel.recv_stderr(CHUNK))
                answer = gate.feed(seen[-1])
                if answer:
                    channel.sendall(answer)
            select.select([channel], [], [], 0.05)
        while channel.recv_stderr_ready():  # sudo's last words, for the error below
            seen.append(channel.recv_stderr(CHUNK))
        err = seen
        if gate.started:
            return
        stderr = gate.clean(as_text(b"".join(err)))
        close_quietly(channel)
        raise sudo_problem(self.name, stderr, used_password=True) or TransportError(
            f"sudo did not start `{display_command(argv)}` on {self.name}"
            f"{': ' + stderr.strip() if stderr.strip() else ''}",
            kind="command",
        )

    def close(self) -> None:
        self.client.close()
        if self._jump is not None:
            self._jump.close()
            self._jump = None


class _ChannelTimeout(Exception):
    pass


def close_quietly(channel: paramiko.Channel) -> None:
    """Close a channel whose SSH link may already be dead: paramiko then raises EOFError (or
    OSError) from close(), which must not replace the TransportError being reported (a node
    whose sshd died mid-transfer was reported as an internal "EOFError")."""
    with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
        channel.close()


class _StdinFeed:
    """What a command's stdin gets, and when: everything at once, or, behind a SudoGate,
    only the gate's answers to sudo and then, once the command runs, its input. stdin is
    closed once all of it is sent (and the gate is done)."""

    def __init__(self, stdin: bytes, gate: SudoGate | None) -> None:
        self.gate = gate
        self.held = stdin if gate is not None else b""
        self.pending = memoryview(stdin if gate is None else b"")
        self.closed = False
        self.fed = 0  # stderr chunks already shown to the gate

    def send(self, channel: paramiko.Channel) -> None:
        if self.pending and channel.send_ready():
            try:
                sent = channel.send(bytes(self.pending[:CHUNK]))
            except OSError:  # the command exited without reading all its input
                sent = len(self.pending)
            self.pending = self.pending[sent:]
        if not self.pending and not self.closed and (self.gate is None or self.gate.done):
            channel.shutdown_write()
            self.closed = True

    def on_stderr(self, channel: paramiko.Channel, err: list[bytes]) -> None:
        if self.gate is None or self.gate.done or self.fed == len(err):
            return
        answer = self.gate.feed(b"".join(err[self.fed:]))
        self.fed = len(err)
        if self.gate.started:
            answer, self.held = self.held, b""
        self.pending = memoryview(bytes(self.pending) + answer)
        self.send(channel)


def _pump(channel: paramiko.Channel, feed: _StdinFeed,
          deadline: float) -> tuple[int, bytes, bytes]:
    """Feed stdin and drain stdout/stderr together until the command ends or the deadline."""
    out: list[bytes] = []
    err: list[bytes] = []
    feed.send(channel)
    quiet_since: float | None = None  # set once the exit status is in; reset by any output
    while True:
        now = time.monotonic()
        if now > deadline:
            raise _ChannelTimeout()
        feed.send(channel)
        received = _drain(channel, out, err)
        feed.on_stderr(channel, err)
        if _finished(channel):
            break
        if channel.exit_status_ready():
            quiet_since = now if received or quiet_since is None else quiet_since
            if now - quiet_since > EOF_AFTER_EXIT_SECONDS:
                break
        if channel.closed and not channel.exit_status_ready():
            return -1, b"".join(out), b"".join(err)
        if channel.eof_received:
            time.sleep(0.01)  # the fileno stays readable after EOF; don't spin
        else:
            select.select([channel], [], [], 0.02 if feed.pending else 0.2)
    return channel.recv_exit_status(), b"".join(out), b"".join(err)


def _drain(channel: paramiko.Channel, out: list[bytes], err: list[bytes]) -> bool:
    """Read whatever output is buffered; True if there was any."""
    received = False
    while channel.recv_ready():
        out.append(channel.recv(CHUNK))
        received = True
    while channel.recv_stderr_ready():
        err.append(channel.recv_stderr(CHUNK))
        received = True
    return received


def _finished(channel: paramiko.Channel) -> bool:
    drained = not channel.recv_ready() and not channel.recv_stderr_ready()
    return drained and channel.exit_status_ready() and bool(channel.eof_received or channel.closed)
