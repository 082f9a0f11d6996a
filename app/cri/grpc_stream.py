"""Unary gRPC calls over HTTP/2 (RFC 9113, cleartext "prior knowledge") on a byte stream.

The stream is socket-like (``settimeout``, ``recv``, ``sendall``, ``close``): a Unix socket, or
an SSH channel to a node's CRI socket. One call at a time, each on a new client stream (1, 3,
5, ...). Every read has a deadline; the peer's SETTINGS are acknowledged, PINGs answered,
received DATA given back as WINDOW_UPDATE, and GOAWAY/RST_STREAM end the call with an error.

Errors are ``GrpcError`` with a ``kind``: "unreachable" (the stream closed or broke),
"timeout", "protocol" (not an HTTP/2 gRPC server) or "status" (the server answered with a
non-zero grpc-status; ``code`` holds it, e.g. UNIMPLEMENTED). Decisions read those, never the
message.
"""

from __future__ import annotations

import contextlib
import struct
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Protocol

from app.cri import hpack
from app.errors import RegwizError

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4
DEFAULT_MAX_FRAME = 16384
MAX_FRAME_ACCEPTED = 1 << 24
OUR_WINDOW = 1 << 20  # per stream: replies here are small, this is never exhausted
MAX_MESSAGE = 4 << 20  # a gRPC reply larger than this is refused

# gRPC status codes verify decides on.
UNIMPLEMENTED = 12
UNAVAILABLE = 14


class ByteStream(Protocol):
    def settimeout(self, value: float | None) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def sendall(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class GrpcError(RegwizError):
    def __init__(self, message: str, *, kind: str, code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


@dataclass
class _Frame:
    type: int
    flags: int
    stream: int
    payload: bytes


@dataclass
class _Reply:
    headers: list[hpack.Header] = field(default_factory=list)
    trailers: list[hpack.Header] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False


class GrpcConnection:
    """An HTTP/2 client connection carrying unary gRPC calls."""

    def __init__(self, stream: ByteStream, *, authority: str = "localhost") -> None:
        self._stream = stream
        self._authority = authority
        self._decoder = hpack.Decoder()
        self._buffer = bytearray()
        self._next_stream = 1
        self._max_frame = DEFAULT_MAX_FRAME
        self._started = False
        self._peer_settings = False  # an HTTP/2 server's first frame is its SETTINGS

    def close(self) -> None:
        # closing a broken link must not hide the real error
        with contextlib.suppress(OSError, EOFError):
            self._stream.close()

    def __enter__(self) -> GrpcConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- a call

    def call(self, path: str, message: bytes, *, timeout: float) -> bytes:
        """Send one request message to ``path`` ("/package.Service/Method"); its reply."""
        deadline = time.monotonic() + timeout
        if not self._started:
            self._start()
        stream_id = self._next_stream
        self._next_stream += 2
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", self._authority), ("content-type", "application/grpc"),
                   ("te", "trailers"), ("user-agent", "regwiz-cri/1"),
                   ("grpc-timeout", f"{max(1, int(timeout))}S")]
        self._send_frame(HEADERS, END_HEADERS, stream_id, hpack.encode_headers(headers))
        body = struct.pack(">BI", 0, len(message)) + message
        for start in range(0, max(len(body), 1), self._max_frame):
            last = start + self._max_frame >= len(body)
            self._send_frame(DATA, END_STREAM if last else 0, stream_id,
                             body[start:start + self._max_frame])
        reply = self._read_reply(stream_id, deadline, path)
        return _unwrap(reply, path)

    def _start(self) -> None:
        settings = struct.pack(">HIHI", SETTINGS_ENABLE_PUSH, 0,
                               SETTINGS_INITIAL_WINDOW_SIZE, OUR_WINDOW)
        self._send(PREFACE + _frame_bytes(SETTINGS, 0, 0, settings))
        self._started = True

    def _read_reply(self, stream_id: int, deadline: float, path: str) -> _Reply:
        reply = _Reply()
        while not reply.ended:
            frame = self._read_frame(deadline, path)
            if frame.stream in (0, stream_id):
                self._handle(frame, stream_id, reply, deadline, path)
        return reply

    # ----------------------------------------------------------------- frames in

    def _handle(self, frame: _Frame, stream_id: int, reply: _Reply, deadline: float,
                path: str) -> None:
        if frame.type == SETTINGS:
            self._on_settings(frame)
        elif frame.type == PING and not frame.flags & ACK:
            self._send_frame(PING, ACK, 0, frame.payload)
        elif frame.type == GOAWAY:
            last, code = struct.unpack(">II", frame.payload[:8])
            debug = frame.payload[8:].decode("utf-8", "replace")
            raise GrpcError(f"the CRI server closed the connection (GOAWAY, error {code}"
                            f"{': ' + debug if debug else ''})", kind="unreachable")
        elif frame.type == RST_STREAM:
            code = struct.unpack(">I", frame.payload[:4])[0]
            raise GrpcError(f"the CRI server reset the call {path} (error {code})",
                            kind="protocol")
        elif frame.type in (HEADERS, CONTINUATION):
            self._on_headers(frame, reply, deadline, path)
        elif frame.type == DATA:
            self._on_data(frame, stream_id, reply)
        # WINDOW_UPDATE, PRIORITY and unknown frame types: nothing to do for small requests.

    def _on_settings(self, frame: _Frame) -> None:
        if frame.flags & ACK:
            return
        for offset in range(0, len(frame.payload) - 5, 6):
            key, value = struct.unpack(">HI", frame.payload[offset:offset + 6])
            if key == 0x5:  # SETTINGS_MAX_FRAME_SIZE
                self._max_frame = max(DEFAULT_MAX_FRAME, min(value, MAX_FRAME_ACCEPTED))
        self._send_frame(SETTINGS, ACK, 0, b"")

    def _on_headers(self, frame: _Frame, reply: _Reply, deadline: float, path: str) -> None:
        block = _strip_padding(frame)
        flags = frame.flags
        while not flags & END_HEADERS:  # the block continues in CONTINUATION frames
            more = self._read_frame(deadline, path)
            if more.type != CONTINUATION or more.stream != frame.stream:
                raise GrpcError("a header block was interrupted", kind="protocol")
            block += more.payload
            flags = more.flags
        try:
            headers = self._decoder.decode(block)
        except hpack.HpackError as error:
            raise GrpcError(f"undecodable headers from the CRI server: {error}",
                            kind="protocol") from None
        (reply.trailers if reply.headers else reply.headers).extend(headers)
        if frame.flags & END_STREAM:
            reply.ended = True
            if not reply.trailers:  # a trailers-only reply: the status is in these headers
                reply.trailers = headers

    def _on_data(self, frame: _Frame, stream_id: int, reply: _Reply) -> None:
        data = _strip_padding(frame)
        reply.body += data
        if len(reply.body) > MAX_MESSAGE:
            raise GrpcError("the CRI reply is larger than expected", kind="protocol")
        if frame.flags & END_STREAM:
            reply.ended = True
        if frame.payload:  # give the flow-control credit back at once
            increment = struct.pack(">I", len(frame.payload))
            self._send_frame(WINDOW_UPDATE, 0, 0, increment)
            if not reply.ended:
                self._send_frame(WINDOW_UPDATE, 0, stream_id, increment)

    # ----------------------------------------------------------------- bytes

    def _read_frame(self, deadline: float, path: str) -> _Frame:
        header = self._read_exactly(9, deadline, path)
        length = int.from_bytes(header[:3], "big")
        if not self._peer_settings and header[3] != SETTINGS:
            raise GrpcError("the peer does not speak HTTP/2 (its first frame is no SETTINGS)",
                            kind="protocol")
        self._peer_settings = True
        if length > MAX_FRAME_ACCEPTED:
            raise GrpcError("the peer sent an oversized HTTP/2 frame", kind="protocol")
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        return _Frame(header[3], header[4], stream, self._read_exactly(length, deadline, path))

    def _read_exactly(self, count: int, deadline: float, path: str) -> bytes:
        while len(self._buffer) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GrpcError(f"no answer to {path} in time", kind="timeout")
            self._stream.settimeout(left)
            try:
                chunk = self._stream.recv(65536)
            except TimeoutError:
                raise GrpcError(f"no answer to {path} in time", kind="timeout") from None
            except (OSError, EOFError) as error:
                raise GrpcError(f"the CRI connection broke: {error}",
                                kind="unreachable") from None
            if not chunk:
                raise GrpcError("the CRI connection closed", kind="unreachable")
            self._buffer += chunk
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def _send_frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        self._send(_frame_bytes(kind, flags, stream, payload))

    def _send(self, data: bytes) -> None:
        try:
            self._stream.sendall(data)
        except (OSError, EOFError) as error:
            raise GrpcError(f"the CRI connection broke: {error}", kind="unreachable") from None


def _frame_bytes(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") \
        + payload


def _strip_padding(frame: _Frame) -> bytes:
    payload = frame.payload
    if frame.flags & PADDED:
        pad = payload[0]
        payload = payload[1:len(payload) - pad]
    if frame.type == HEADERS and frame.flags & PRIORITY_FLAG:
        payload = payload[5:]
    return payload


def _unwrap(reply: _Reply, path: str) -> bytes:
    """The reply message, or a GrpcError for a non-zero grpc-status."""
    fields = dict(reply.trailers)
    status = dict(reply.headers).get(":status", "")
    if status and status != "200":
        raise GrpcError(f"{path}: HTTP status {status} from the CRI server", kind="protocol")
    code_text = fields.get("grpc-status")
    if code_text is None or not code_text.isdigit():
        raise GrpcError(f"{path}: the reply carries no grpc-status", kind="protocol")
    code = int(code_text)
    if code != 0:
        message = urllib.parse.unquote(fields.get("grpc-message", ""))
        raise GrpcError(message or f"{path} failed with gRPC status {code}", kind="status",
                        code=code)
    body = bytes(reply.body)
    if len(body) < 5:
        raise GrpcError(f"{path}: the reply holds no message", kind="protocol")
    compressed, length = struct.unpack(">BI", body[:5])
    if compressed or len(body) < 5 + length:
        raise GrpcError(f"{path}: a compressed or cut-short reply", kind="protocol")
    return body[5:5 + length]
