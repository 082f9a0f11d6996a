"""A Docker SDK client for a host's dockerd, reached through that host's transport.

Over SSH the SDK never opens its own connection (which would have its own, different host-key
handling): a private local unix socket is forwarded, one SSH channel per HTTP connection, to
``docker system dial-stdio`` (``sudo -n docker system dial-stdio`` when the user needs sudo)
running on the already verified connection. For the local transport the local socket is used
directly (or the same forwarding over ``sudo`` when regwiz is not root and sudo is asked for).

The API version is negotiated ("auto"): Debian 12's dockerd 20.10 speaks 1.41 at most.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import docker
import docker.errors

from app.transport.base import Transport, TransportError, stderr_tail

DEFAULT_DOCKER_TIMEOUT = 60
DIAL_STDIO = ["docker", "system", "dial-stdio"]
LOCAL_SOCKET = "/var/run/docker.sock"
CHUNK = 65536


class Stream(Protocol):
    """A byte pipe to ``docker system dial-stdio``."""

    def read(self) -> bytes: ...  # b"" at end of stream
    def write(self, data: bytes) -> None: ...
    def close_write(self) -> None: ...
    def close(self) -> None: ...


class ChannelStream:
    """An SSH channel running dial-stdio."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def read(self) -> bytes:
        return bytes(self._channel.recv(CHUNK))

    def write(self, data: bytes) -> None:
        self._channel.sendall(data)

    def close_write(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._channel.shutdown_write()

    def close(self) -> None:
        # After the SSH link died (sshd killed, network gone) paramiko raises EOFError while
        # telling the peer: nothing is left to close, and the relay thread must not crash.
        with contextlib.suppress(OSError, EOFError):
            self._channel.close()


class ProcessStream:
    """A local dial-stdio process (used when local access needs sudo)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    def read(self) -> bytes:
        assert self._process.stdout is not None
        return self._process.stdout.read1(CHUNK)  # type: ignore[attr-defined]

    def write(self, data: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(data)
        self._process.stdin.flush()

    def close_write(self) -> None:
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()

    def close(self) -> None:
        self.close_write()
        with contextlib.suppress(OSError):
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)


WIND_DOWN_SECONDS = 5.0  # how long close() lets streams end on their own


class SocketForwarder:
    """Listens on a private unix socket; each accepted connection gets a fresh ``dial()``."""

    def __init__(self, dial: Callable[[], Stream], host: str) -> None:
        self._dial = dial
        self._host = host
        self._directory = tempfile.mkdtemp(prefix="regwiz-docker-")  # 0700: only us
        self.path = os.path.join(self._directory, "docker.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._listener.settimeout(0.5)  # so the accept loop notices close()
        self._closed = threading.Event()
        self._open: set[Stream] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"docker-forward-{host}")
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"unix://{self.path}"

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(None)
        try:
            stream = self._dial()
        except Exception:  # the SDK sees a closed connection and reports it
            connection.close()
            return
        with self._lock:
            self._open.add(stream)
        upstream = threading.Thread(target=_socket_to_stream, args=(connection, stream),
                                    daemon=True)
        upstream.start()
        _stream_to_socket(stream, connection)
        upstream.join(timeout=5)
        with self._lock:
            self._open.discard(stream)
        stream.close()
        connection.close()

    def close(self, wind_down: float = WIND_DOWN_SECONDS) -> None:
        """Stop accepting, let the streams end on their own, then close what is left.

        A stream whose client hung up sends dial-stdio its EOF and ends when dial-stdio exits.
        Closing its SSH channel from here meanwhile races the relay thread's read, which may
        still acknowledge data (a window adjust) for a channel sshd has already freed, and
        sshd answers that by dropping the whole connection: every later command on the host
        would fail. So only streams still open after ``wind_down`` seconds are closed here."""
        self._closed.set()
        self._listener.close()
        deadline = time.monotonic() + wind_down
        while time.monotonic() < deadline:
            with self._lock:
                if not self._open:
                    break
            time.sleep(0.02)
        with self._lock:
            streams = list(self._open)
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.close()
        self._thread.join(timeout=5)
        shutil.rmtree(self._directory, ignore_errors=True)


def _socket_to_stream(connection: socket.socket, stream: Stream) -> None:
    try:
        while data := connection.recv(CHUNK):
            stream.write(data)
    except (OSError, EOFError):
        pass
    finally:
        stream.close_write()


def _stream_to_socket(stream: Stream, connection: socket.socket) -> None:
    try:
        while data := stream.read():
            connection.sendall(data)
    except (OSError, EOFError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_WR)


class ForwardedDockerClient(docker.DockerClient):
    """A DockerClient whose close() also stops its forwarder."""

    forwarder: SocketForwarder | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.forwarder is not None:
                self.forwarder.close()
                self.forwarder = None


def docker_client(
    transport: Transport, *, sudo: bool, timeout: int = DEFAULT_DOCKER_TIMEOUT
) -> docker.DockerClient:
    """A Docker SDK client for ``transport``'s host (API version negotiated).

    ``sudo``: reach dockerd as root (for users outside the docker group). Every API call has
    ``timeout`` seconds. Raises TransportError naming the host when dockerd can't be reached.
    Call ``close()`` when done.
    """
    from app.transport.local import LocalTransport
    from app.transport.ssh import SSHTransport

    if isinstance(transport, LocalTransport) and (not sudo or transport.uid() == 0):
        url = _local_socket_url()
        _check_socket_access(transport.name, url)
        return _connect(transport.name, url, timeout, None)
    _preflight(transport, sudo=sudo)
    dial: Callable[[], Stream]
    if isinstance(transport, SSHTransport):
        def dial() -> Stream:
            return ChannelStream(transport.open_stream(DIAL_STDIO, sudo=sudo))
    elif isinstance(transport, LocalTransport):
        def dial() -> Stream:
            return ProcessStream(transport.open_process(DIAL_STDIO, sudo=sudo))
    else:
        raise TypeError(f"no docker access for {type(transport).__name__}")
    forwarder = SocketForwarder(dial, transport.name)
    return _connect(transport.name, forwarder.base_url, timeout, forwarder)


def _local_socket_url() -> str:
    configured = os.environ.get("DOCKER_HOST", "")
    return configured if configured.startswith("unix://") else f"unix://{LOCAL_SOCKET}"


def _check_socket_access(host: str, url: str) -> None:
    """A local socket this user may not open is a permission problem (sudo may help), told
    apart here from a daemon that is not there, as ``_preflight`` does over SSH."""
    path = url.removeprefix("unix://")
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise TransportError(
            f"{host}: the user may not use the Docker daemon socket",
            "add the user to the docker group, or let regwiz use sudo for docker",
            kind="permission",
        )


def _preflight(transport: Transport, *, sudo: bool) -> None:
    """Ask the docker CLI first: its errors (not installed, no permission, daemon down) are
    clearer than the SDK's view of a dropped stream."""
    result = transport.run(["docker", "version", "--format", "{{.Server.APIVersion}}"],
                           sudo=sudo, timeout=30, check=False)
    if result.ok:
        return
    text = result.stderr.lower()
    if result.exit_status == 127:
        raise TransportError(f"the docker CLI is not installed on {transport.name}",
                             "install Docker on the host (e.g. apt-get install docker.io)",
                             kind="command")
    if "permission denied" in text:
        raise TransportError(
            f"{transport.name}: the user may not use the Docker daemon socket",
            "add the user to the docker group, or let regwiz use sudo for docker",
            kind="permission",
        )
    if "cannot connect to the docker daemon" in text or "is the docker daemon running" in text:
        raise TransportError(f"dockerd is not running on {transport.name}",
                             "start Docker on the host (systemctl start docker)", kind="command")
    raise _generic_failure(transport, result.stderr)


def _generic_failure(transport: Transport, stderr: str) -> TransportError:
    return TransportError(f"`docker version` failed on {transport.name}: {stderr_tail(stderr)}",
                          "check that Docker works on the host (docker info)", kind="command")


def _connect(
    host: str, base_url: str, timeout: int, forwarder: SocketForwarder | None
) -> docker.DockerClient:
    try:
        client = ForwardedDockerClient(base_url=base_url, version="auto", timeout=timeout)
    except docker.errors.DockerException as error:
        if forwarder is not None:
            forwarder.close()
        raise TransportError(
            f"cannot talk to dockerd on {host}: {error}",
            "check that Docker runs on the host and the user may use it (docker info)",
            kind="command",
        ) from error
    client.forwarder = forwarder
    return client
