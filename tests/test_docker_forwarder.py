"""The Docker SDK's private socket forwarder: closing it lets each stream end on its own before
anything closes the stream from outside (an SSH channel closed while its relay thread still
reads makes sshd drop the whole connection, as a CI run showed)."""

from __future__ import annotations

import socket
import threading
import time

from app.dockerapi import SocketForwarder


class WindingDownStream:
    """dial-stdio's stand-in: answers, and ends a moment after its client's EOF arrives."""

    def __init__(self) -> None:
        self.eof = threading.Event()
        self.reading = False
        self.closed_while_reading = False
        self.sent = b""
        self.answered = False

    def read(self) -> bytes:
        self.reading = True
        try:
            if not self.answered:
                self.answered = True
                return b"pong"
            self.eof.wait(5)
            time.sleep(0.2)  # the last bytes and dial-stdio's exit are still on their way
            return b""
        finally:
            self.reading = False

    def write(self, data: bytes) -> None:
        self.sent += data

    def close_write(self) -> None:
        self.eof.set()

    def close(self) -> None:
        if self.reading:
            self.closed_while_reading = True


def test_close_waits_for_streams_to_end_before_closing_them() -> None:
    stream = WindingDownStream()
    forwarder = SocketForwarder(lambda: stream, "test-host")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(forwarder.path)
    client.sendall(b"ping")
    assert client.recv(4) == b"pong"
    client.close()  # the SDK hung up: the stream now winds down by itself
    forwarder.close()
    assert stream.sent == b"ping"
    assert not stream.closed_while_reading


def test_a_stream_that_never_ends_is_closed_after_the_wind_down() -> None:
    stream = WindingDownStream()
    stream.close_write = lambda: None  # type: ignore[method-assign]  # never sees its EOF
    forwarder = SocketForwarder(lambda: stream, "test-host")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(forwarder.path)
    client.sendall(b"ping")
    assert client.recv(4) == b"pong"
    started = time.monotonic()
    forwarder.close(wind_down=0.3)
    assert time.monotonic() - started < 3
    assert stream.closed_while_reading  # forced: it would not end on its own
    client.close()
