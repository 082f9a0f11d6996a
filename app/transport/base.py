"""The interface every transport implements.

Commands are argv lists, never shell strings: an implementation that needs a shell quotes
every argument with ``shlex.quote``. Every call has a timeout. Secrets (sudo password, file
contents marked secret) never appear in errors or logs.
"""

from __future__ import annotations

import abc
import hashlib
import math
import shlex
import threading
from dataclasses import dataclass, field

from app.errors import RegwizError, kind_category
from app.terminal_text import plain_text
from app.transport.sudo import C_LOCALE, NOPASSWD_PREFIX, SudoGate

DEFAULT_COMMAND_TIMEOUT = 60.0


class TransportError(RegwizError):
    """A host could not be reached, authenticated, or a command/transfer failed or timed out.

    ``kind`` is a short machine-readable cause: "unreachable", "host-key-unknown",
    "host-key-changed", "sudo-password-missing", "sudo-password-wrong", "key-passphrase-needed",
    "identity-file", "no-credentials", "login-refused", "permission", "disk-full", "timeout",
    "command", "io". Decisions (prompt for what, which hint) read ``kind``, never the message.
    ``category`` groups the specific kinds for summaries ("auth", "sudo-password", ...).
    ``causes``: the errors met on the way to this one (e.g. keys that could not be loaded
    before the login was refused).
    """

    def __init__(self, message: str, hint: str | None = None, *, kind: str = "io",
                 causes: tuple[TransportError, ...] = ()) -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.causes = causes

    @property
    def category(self) -> str:
        return kind_category(self.kind)


@dataclass
class CommandResult:
    argv: list[str]
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect; the plan's registry and node settings map onto this.

    ``host`` is "local" for this machine, else an address, a DNS name or a ``~/.ssh/config``
    alias. ``user``/``port``/``identity_file`` left as None come from ~/.ssh/config, then from
    ssh's defaults. ``sudo``: whether commands that need root may use sudo (a root login never
    needs it). ``ssh_config``: path of the ssh config to honour (None: ~/.ssh/config, "": none).
    """

    host: str
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    sudo: bool = True
    connect_timeout: float = 10.0
    ssh_config: str | None = None

    @property
    def is_local(self) -> bool:
        return self.host == "local"


@dataclass(frozen=True)
class ConnectionSecrets:
    """Secrets for one connection. Never printed: ``repr`` hides every value."""

    password: str | None = field(default=None, repr=False)
    key_passphrase: str | None = field(default=None, repr=False)
    sudo_password: str | None = field(default=None, repr=False)


class Transport(abc.ABC):
    """Runs commands and manages files on one host."""

    #: a short name for the host used in every message (e.g. "198.18.0.3" or "local")
    name: str

    @abc.abstractmethod
    def run(
        self,
        argv: list[str],
        *,
        sudo: bool = False,
        stdin: bytes | None = None,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        check: bool = True,
    ) -> CommandResult:
        """Run ``argv`` (as root when ``sudo``).

        Raises TransportError when ``check`` and it fails.
        """

    @abc.abstractmethod
    def read_file(self, path: str, *, sudo: bool = False, timeout: float = 30.0) -> bytes | None:
        """Return the file's bytes, or None when it does not exist."""

    @abc.abstractmethod
    def write_file(
        self,
        path: str,
        content: bytes,
        *,
        mode: int = 0o644,
        owner: str = "root",
        group: str = "root",
        sudo: bool = False,
        timeout: float = 60.0,
    ) -> bool:
        """Write atomically (temp file in the same dir, install owner/mode, rename).

        ``owner``/``group``/``mode`` are for a new file. An existing file keeps its owner and
        group and its mode narrowed by ``mode``; a symlink stays a symlink (its target is
        written); nothing is ever made group- or other-writable (see INSTALL_SCRIPT).
        Returns False and touches nothing when the file already has this content and mode;
        True when it was written. Parent directories are created (0755).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call twice."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Helpers shared by the SSH and local transports.

STDERR_TAIL_LINES = 6
DISPLAY_COMMAND_CHARS = 200


def check_sendable(argv: list[str], host: str) -> None:
    """Refuse arguments no command line can carry before they reach the connection: a NUL
    makes sshd drop the whole session, and a lone surrogate cannot be encoded."""
    for arg in argv:
        problem = None
        if "\0" in arg:
            problem = "contains a NUL character"
        else:
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                problem = "is not valid UTF-8 text"
        if problem:
            shown = arg.encode("utf-8", "backslashreplace").decode().replace("\0", "\\0")
            raise TransportError(
                f"cannot run a command on {host}: the argument {shown[:80]!r} {problem}",
                "check the plan value or file name it came from",
                kind="command",
            )


def display_command(argv: list[str]) -> str:
    """The command as a user would type it, shortened; argv never carries secrets."""
    text = shlex.join(argv)
    if len(text) > DISPLAY_COMMAND_CHARS:
        text = text[: DISPLAY_COMMAND_CHARS - 3] + "..."
    return text


def stderr_tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last lines of a host's stderr for a message: text only, no terminal control."""
    kept = [line for line in plain_text(stderr).strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def sudo_problem(host: str, stderr: str, used_password: bool) -> TransportError | None:
    """Recognise sudo's own refusals in stderr, telling a missing from a wrong password."""
    lowered = stderr.lower()
    if "a password is required" in lowered or "no tty present" in lowered or (
        "a terminal is required" in lowered
    ):
        return TransportError(
            f"sudo on {host} needs a password and none was given",
            "enter the sudo password for this host, or allow passwordless sudo (NOPASSWD)",
            kind="sudo-password-missing",
        )
    if "incorrect password" in lowered or "sorry, try again" in lowered or (
        used_password and "no password was provided" in lowered
    ):
        return TransportError(
            f"sudo on {host} rejected the password: wrong sudo password",
            "check the sudo password for this user on this host",
            kind="sudo-password-wrong",
        )
    if "is not in the sudoers file" in lowered or "not allowed to execute" in lowered or (
        "may not run sudo" in lowered
    ):
        return TransportError(
            f"the user may not use sudo on {host}",
            "add the user to the sudoers (e.g. the sudo group) or connect as root",
            kind="permission",
        )
    return None


def command_failure(host: str, result: CommandResult, action: str | None = None) -> TransportError:
    """Turn a failed command into the most specific TransportError.

    ``action`` (e.g. "writing /etc/x") replaces the command in messages when the command is an
    internal script the user would not recognise.
    """
    shown = action or f"`{display_command(result.argv)}`"
    doing = action or f"running {shown}"
    tail = stderr_tail(result.stderr) or stderr_tail(result.stdout)
    detail = f": {tail}" if tail else ""
    lowered = tail.lower()
    if "no space left on device" in lowered or "disk quota exceeded" in lowered:
        return TransportError(
            f"{host} ran out of disk space {doing}{detail}",
            "free space on the host (df -h) and run again",
            kind="disk-full",
        )
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return TransportError(
            f"permission denied on {host} {doing}{detail}",
            "run this step with sudo, or connect as a user allowed to do this",
            kind="permission",
        )
    if result.exit_status == 127:
        return TransportError(
            f"command not found on {host} {doing}{detail}",
            "install the missing program on the host",
            kind="command",
        )
    return TransportError(
        f"{shown} failed on {host} (exit {result.exit_status}){detail}",
        None,
        kind="command",
    )


# Outputs "absent", or "<user> <group> <uid> <gid> <octal mode>" then the sha256 line.
FILE_STATE_SCRIPT = (
    'if [ ! -e "$1" ]; then echo absent; exit 0; fi; '
    'if [ -d "$1" ]; then echo "$1 is a directory" >&2; exit 1; fi; '
    'stat -L -c "%U %G %u %g %a" -- "$1" && sha256sum -- "$1"'
)

# Reads the new content from stdin into a 0600 temp file next to the target, checks its sha256
# (a dropped connection ends stdin early, so a short file is caught here), sets owner and mode,
# then renames it into place: readers see the old or the new file, never a partial one, and the
# temp file is removed on any failure or signal. Nothing is ever staged elsewhere (e.g. /tmp).
#
# A host must never be left worse than it was found (issue 12):
# - a symlink stays a symlink: the file it points at (readlink -f) is the one replaced, so the
#   link's own 777 never lands on a regular file;
# - an existing file keeps its owner and group, and its mode, only ever narrowed by the mode
#   asked for (a private file stays private; a file regwiz wants private becomes so);
# - no file regwiz writes is ever group- or other-writable (``& 0755``).
# ``effective_mode`` mirrors this rule for the "already current?" check.
INSTALL_SCRIPT = """set -e
path=$1; mode=$2; owner=$3; want=$4
dst=$path
if [ -L "$path" ]; then
  dst=$(readlink -f -- "$path") || { echo "cannot resolve the symlink $path" >&2; exit 1; }
fi
dir=$(dirname -- "$dst")
if [ -d "$dst" ]; then echo "$path is a directory" >&2; exit 1; fi
if [ -e "$dst" ]; then
  st=$(stat -L -c '%u %g %a' -- "$dst")  # on its own line: set -e stops on a failed stat
  set -- $st
  mode=$(printf '%o' $(( 0$3 & 0$mode & 0755 )))
  keep="$1:$2"
else
  keep=""
  mode=$(printf '%o' $(( 0$mode & 0755 )))
fi
umask 022
mkdir -p -- "$dir"
tmp=$(mktemp "$dir/.regwiz-tmp.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE
cat > "$tmp"
got=$(sha256sum < "$tmp")
if [ "${got%% *}" != "$want" ]; then
  echo "the transfer of $path was cut short (connection lost?); nothing was changed" >&2
  exit 1
fi
if [ -n "$owner" ]; then
  chown -- "$owner" "$tmp"  # also for an existing file: a bad owner is an error either way
  if [ -n "$keep" ]; then chown -- "$keep" "$tmp"; fi
fi
chmod -- "$mode" "$tmp"
mv -f -- "$tmp" "$dst"
trap - EXIT
"""

# Permission bits a written file may have at most: never group- or other-writable, no
# set-id or sticky bits.
MAX_FILE_MODE = 0o755


def effective_mode(existing: int | None, requested: int) -> int:
    """The mode INSTALL_SCRIPT gives a file: an existing file's mode narrowed by ``requested``,
    a new file ``requested``; never beyond MAX_FILE_MODE."""
    base = requested if existing is None else existing & requested
    return base & MAX_FILE_MODE


def owner_spec(owner: str, group: str) -> str:
    """chown's argument; empty owner/group means "leave as the writing user's"."""
    if owner and group:
        return f"{owner}:{group}"
    return owner or (f":{group}" if group else "")


def file_is_current(state: str, content: bytes, mode: int, owner: str, group: str) -> bool:
    """Whether FILE_STATE_SCRIPT output shows the content and mode INSTALL_SCRIPT would leave.

    An existing file keeps its owner (see INSTALL_SCRIPT), so only its content and mode count;
    ``owner``/``group`` are what a new file would get.
    """
    lines = state.strip().splitlines()
    if len(lines) < 2:
        return False
    fields = lines[0].split()
    digest = lines[1].split()[0] if lines[1].split() else ""
    if len(fields) != 5 or digest != hashlib.sha256(content).hexdigest():
        return False
    current = int(fields[4], 8)
    return effective_mode(current, mode) == current


# ---------------------------------------------------------------------------------------------
# Command execution, sudo and files for transports built on "run this argv with this stdin".

# The remote ``timeout`` sends TERM at the deadline and KILL this many seconds later.
KILL_AFTER_SECONDS = 5
# The caller stops waiting this long after the deadline (covers KILL_AFTER and latency).
CLIENT_GRACE_SECONDS = KILL_AFTER_SECONDS + 5
# Exit status a wrapper script uses for "the file does not exist" (cat never uses it).
MISSING_FILE_STATUS = 100
READ_SCRIPT = f'if [ -e "$1" ]; then exec cat -- "$1"; else exit {MISSING_FILE_STATUS}; fi'


@dataclass
class ExecResult:
    status: int
    stdout: bytes
    stderr: str


def as_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class ExecTransport(Transport):
    """run/read_file/write_file and sudo handling on top of one primitive, ``_exec``.

    Every command runs under coreutils ``timeout`` (inside sudo, so it can kill root
    processes). sudo is ``sudo -n`` when passwordless, else a ``SudoGate`` handshake: the
    password only after sudo's own prompt, the command's input only once it runs (see
    ``app.transport.sudo``). sudo always runs under ``LC_ALL=C``.
    """

    name: str
    #: whether commands that need root may use sudo
    allow_sudo: bool = True

    def __init__(self) -> None:
        self._sudo_lock = threading.Lock()
        self._uid: int | None = None
        self._sudo_mode: str | None = None  # "root", "nopasswd" or "password"

    @abc.abstractmethod
    def _exec(self, argv: list[str], stdin: bytes | None, timeout: float,
              gate: SudoGate | None = None) -> ExecResult:
        """Run argv, feeding stdin; return when it ends; raise TransportError("timeout") when
        it outlives ``timeout``, or another TransportError when the host is lost.

        With a ``gate``, stderr is shown to it as it arrives and stdin holds only what it
        allows: its answers to sudo, then ``stdin`` once the command runs."""

    @property
    @abc.abstractmethod
    def sudo_password(self) -> str | None:
        """The sudo password, if one was given."""

    def run(
        self,
        argv: list[str],
        *,
        sudo: bool = False,
        stdin: bytes | None = None,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        check: bool = True,
    ) -> CommandResult:
        done = self.run_bytes(argv, sudo=sudo, stdin=stdin, timeout=timeout)
        result = CommandResult(list(argv), done.status, as_text(done.stdout), done.stderr)
        if check and not result.ok:
            raise self.failure(result, sudo)
        return result

    def failure(
        self, result: CommandResult, sudo: bool, action: str | None = None
    ) -> TransportError:
        if sudo and self._sudo_mode in ("nopasswd", "password") and result.exit_status == 1:
            problem = sudo_problem(self.name, result.stderr, self._sudo_mode == "password")
            if problem is not None:
                return problem
        return command_failure(self.name, result, action)

    def run_bytes(
        self,
        argv: list[str],
        *,
        sudo: bool,
        stdin: bytes | None,
        timeout: float,
        action: str | None = None,
    ) -> ExecResult:
        """Like run, but stdout stays bytes and a failure is returned, not raised."""
        if not argv:
            raise TransportError("empty command", kind="command")
        check_sendable(argv, self.name)
        wrapped = ["timeout", "-k", str(KILL_AFTER_SECONDS), str(math.ceil(timeout)), *argv]
        full, gate = self.sudo_command(wrapped, sudo)
        limit = timeout + CLIENT_GRACE_SECONDS
        done = self._exec(full, stdin, limit, gate)
        if gate is not None:
            done.stderr = gate.clean(done.stderr)
        if done.status == 124:  # coreutils timeout: the command hit its deadline and was killed
            raise TransportError(
                f"{action or '`' + display_command(argv) + '`'} on {self.name} did not finish "
                f"within {timeout:g}s and was stopped",
                "the host may be overloaded, or the step may need a longer timeout",
                kind="timeout",
            )
        return done

    # ----------------------------------------------------------------- sudo

    def uid(self) -> int:
        if self._uid is None:
            done = self._exec(["id", "-u"], None, 30)
            try:
                self._uid = int(as_text(done.stdout).strip())
            except ValueError as error:
                raise TransportError(
                    f"cannot tell which user is logged in on {self.name}: `id -u` said "
                    f"{as_text(done.stdout).strip()!r}",
                    kind="command",
                ) from error
        return self._uid

    def sudo_mode(self) -> str:
        """"root" (no sudo needed), "nopasswd" or "password"; checked once, then cached."""
        with self._sudo_lock:
            if self._sudo_mode is None:
                self._sudo_mode = self._detect_sudo()
            return self._sudo_mode

    def _detect_sudo(self) -> str:
        if self.uid() == 0:
            return "root"
        if not self.allow_sudo:
            raise TransportError(
                f"this step needs root on {self.name}, but sudo is disabled for the host",
                "enable sudo for this host or connect as root",
                kind="permission",
            )
        probe = self._exec([*C_LOCALE, "sudo", "-n", "true"], None, 30)
        if probe.status == 0:
            return "nopasswd"
        problem = sudo_problem(self.name, probe.stderr, used_password=False)
        if problem is None:
            result = CommandResult(["sudo", "-n", "true"], probe.status, "", probe.stderr)
            raise command_failure(self.name, result)
        if problem.kind != "sudo-password-missing" or self.sudo_password is None:
            raise problem
        gate = SudoGate(self.sudo_password)
        check = self._exec(gate.argv(["true"]), None, 30, gate)
        stderr = gate.clean(check.stderr)
        if check.status != 0:
            raise sudo_problem(self.name, stderr, used_password=True) or TransportError(
                f"sudo on {self.name} failed: {stderr_tail(stderr)}",
                kind="sudo-password-wrong",
            )
        return "password"

    def sudo_command(self, argv: list[str], sudo: bool) -> tuple[list[str], SudoGate | None]:
        """``argv`` as run (as root when ``sudo``), and the gate its stdin must go through.

        With a password the gate sends it only after sudo's prompt, and the command's input
        only once the command runs, on the same stream: nothing is staged on disk.
        """
        mode = self.sudo_mode() if sudo else "none"
        if mode == "nopasswd":
            return [*NOPASSWD_PREFIX, *argv], None
        if mode == "password":
            gate = SudoGate(self.sudo_password)
            return gate.argv(argv), gate
        return list(argv), None

    # ----------------------------------------------------------------- files

    def read_file(self, path: str, *, sudo: bool = False, timeout: float = 30.0) -> bytes | None:
        argv = ["sh", "-c", READ_SCRIPT, "sh", path]
        done = self._script(argv, sudo, timeout, f"reading {path}", also_ok=MISSING_FILE_STATUS)
        return None if done.status == MISSING_FILE_STATUS else done.stdout

    def write_file(
        self,
        path: str,
        content: bytes,
        *,
        mode: int = 0o644,
        owner: str = "root",
        group: str = "root",
        sudo: bool = False,
        timeout: float = 60.0,
    ) -> bool:
        """See Transport.write_file: compare remotely, stream the content, install atomically.

        An empty ``owner``/``group`` leaves that part as the writing user's (for files a
        non-root user writes without sudo).
        """
        if not path.startswith("/"):
            raise TransportError(f"refusing to write a relative path: {path}", kind="io")
        action = f"writing {path}"
        state = self._script(["sh", "-c", FILE_STATE_SCRIPT, "sh", path], sudo, timeout, action)
        if file_is_current(as_text(state.stdout), content, mode, owner, group):
            return False
        argv = ["sh", "-c", INSTALL_SCRIPT, "sh", path, f"{mode:o}", owner_spec(owner, group),
                hashlib.sha256(content).hexdigest()]
        self._script(argv, sudo, timeout, action, stdin=content)
        return True

    def _script(
        self,
        argv: list[str],
        sudo: bool,
        timeout: float,
        action: str,
        *,
        stdin: bytes | None = None,
        also_ok: int = 0,
    ) -> ExecResult:
        """Run an internal script; exit 0 or ``also_ok`` is success, any other status raises an
        error described by ``action``, not the script."""
        done = self.run_bytes(argv, sudo=sudo, stdin=stdin, timeout=timeout, action=action)
        if done.status not in (0, also_ok):
            raise self.failure(CommandResult(argv, done.status, "", done.stderr), sudo, action)
        return done
