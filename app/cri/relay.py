"""A byte stream from here to a node's CRI socket, over the node's existing connection.

The socket is root's (``srw-rw---- root root``), so a program on the node bridges it to the
SSH channel: started as root (directly for a root login, else under sudo, the password going by
sudo's own prompt), it copies stdin to the socket and the socket to stdout. The first of
``python3``, ``socat`` and ``nc -U`` the node has does it; the relay ends when the channel
closes, and after ``RELAY_LIFETIME`` seconds at the latest. Nothing secret is on its command
line: the pull credential travels only inside the gRPC stream.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from typing import TYPE_CHECKING, Any

from app.cri.grpc_stream import GrpcConnection, GrpcError

if TYPE_CHECKING:
    from app.transport.base import Transport

RELAY_LIFETIME = 600
NO_RELAY_STATUS = 127
NO_SOCKET_STATUS = 3
EXIT_STATUS_WAIT = 3.0

RELAY_PY = r"""import os, select, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    sys.stderr.write("cannot connect to %s: %s\n" % (sys.argv[1], e.strerror))
    sys.exit(3)
open_fds = [0, s]
while open_fds:
    ready = select.select(open_fds, [], [])[0]
    if 0 in ready:
        data = os.read(0, 65536)
        if data:
            s.sendall(data)
        else:
            s.shutdown(socket.SHUT_WR)
            open_fds.remove(0)
    if s in ready:
        data = s.recv(65536)
        if not data:
            break
        while data:
            data = data[os.write(1, data):]
"""

RELAY_SH = f"""s=$1
[ -S "$s" ] || {{ echo "no CRI socket at $s" >&2; exit {NO_SOCKET_STATUS}; }}
if command -v python3 >/dev/null 2>&1; then exec python3 -c "$2" "$s"; fi
if command -v socat >/dev/null 2>&1; then exec socat - "UNIX-CONNECT:$s"; fi
if nc -h 2>&1 | grep -q -- '-U'; then exec nc -U "$s"; fi
echo "neither python3, socat nor nc -U is installed to reach $s" >&2
exit {NO_RELAY_STATUS}
"""


_RELAY_EXITS = {
    NO_SOCKET_STATUS: "no CRI socket at {} (or it refused the connection)",
    NO_RELAY_STATUS: "neither python3, socat nor nc -U is installed to reach {}",
}


def relay_argv(socket_path: str) -> list[str]:
    return ["timeout", str(RELAY_LIFETIME), "sh", "-c", RELAY_SH, "sh", socket_path, RELAY_PY]


def describe_relay(transport: Transport, socket_path: str, *, sudo: bool) -> str:
    """How the stream reaches the socket, for the report ("sudo relay" only when sudo runs:
    a root login needs none)."""
    return (f"{'sudo ' if relay_uses_sudo(transport, sudo) else ''}relay to {socket_path} "
            "(python3, socat or nc -U)")


def relay_uses_sudo(transport: Transport, sudo: bool) -> bool:
    from app.errors import RegwizError
    from app.transport.base import ExecTransport

    if not sudo or not isinstance(transport, ExecTransport):
        return False
    try:
        return transport.sudo_mode() != "root"
    except RegwizError:  # sudo unusable: the relay itself will report it
        return False


class _ChannelSocket:
    """An SSH channel running the relay, as a socket; its end explains itself (exit status
    and stderr) instead of a bare "connection closed"."""

    def __init__(self, channel: Any, socket_path: str) -> None:
        self._channel = channel
        self._path = socket_path

    def settimeout(self, value: float | None) -> None:
        self._channel.settimeout(value)

    def recv(self, size: int) -> bytes:
        data: bytes = self._channel.recv(size)
        if not data:
            self._explain_end()
        return data

    def sendall(self, data: bytes) -> None:
        self._channel.sendall(data)

    def close(self) -> None:
        self._channel.close()

    def _explain_end(self) -> None:
        # sshd may send the end of output before the exit status: wait a moment for it
        deadline = time.monotonic() + EXIT_STATUS_WAIT
        while not self._channel.exit_status_ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._channel.exit_status_ready():
            return
        status = self._channel.recv_exit_status()
        stderr = b""
        while self._channel.recv_stderr_ready():
            stderr += self._channel.recv_stderr(4096)
        if status:
            reason = stderr.decode("utf-8", "replace").strip().splitlines()
            raise GrpcError(reason[-1] if reason else f"the relay to {self._path} exited "
                            f"{status}", kind="unreachable")


class _ProcessSocket:
    """A local relay process's pipes as a socket (a node that is this machine)."""

    def __init__(self, process: subprocess.Popen[bytes], socket_path: str) -> None:
        self._process = process
        self._path = socket_path
        self._timeout: float | None = None

    def settimeout(self, value: float | None) -> None:
        self._timeout = value

    def recv(self, size: int) -> bytes:
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        if not select.select([fd], [], [], self._timeout)[0]:
            raise TimeoutError("no data from the relay")
        data = os.read(fd, size)
        if not data:  # its stderr is not ours to read here: its exit status says why
            try:
                status = self._process.wait(timeout=EXIT_STATUS_WAIT)
            except subprocess.TimeoutExpired:
                return data
            if status:
                raise GrpcError(_RELAY_EXITS.get(status, f"the relay to {self._path} exited "
                                                         f"{status}").format(self._path),
                                kind="unreachable")
        return data

    def sendall(self, data: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(data)
        self._process.stdin.flush()

    def close(self) -> None:
        # end of input ends the relay (a root relay under sudo may not be ours to kill)
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self._process.kill()


def open_cri(transport: Transport, socket_path: str, *, sudo: bool) -> GrpcConnection:
    """A gRPC connection to ``socket_path`` on the transport's host; raises GrpcError
    (kind "unreachable") when no relay can be started."""
    from app.transport.local import LocalTransport
    from app.transport.ssh import SSHTransport

    argv = relay_argv(socket_path)
    try:
        if isinstance(transport, SSHTransport):
            channel = transport.open_stream(argv, sudo=sudo)
            return GrpcConnection(_ChannelSocket(channel, socket_path))
        if isinstance(transport, LocalTransport):
            process = transport.open_process(argv, sudo=sudo)
            return GrpcConnection(_ProcessSocket(process, socket_path))
    except GrpcError:
        raise
    except Exception as error:  # noqa: BLE001 - a TransportError or OSError: no relay here
        raise GrpcError(f"cannot start the relay: {getattr(error, 'message', error)}",
                        kind="unreachable") from None
    raise GrpcError(f"no way to reach a socket through {type(transport).__name__}",
                    kind="unreachable")
