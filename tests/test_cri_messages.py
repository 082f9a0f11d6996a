"""The CRI client's pure parts: protobuf wire format of the ImageService messages, gRPC over
HTTP/2 framing (driven by a scripted peer on a socket pair), the kubelet's keyring match, and
reading the configuration containerd runs."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable

import pytest

from app.cri import hpack
from app.cri.grpc_stream import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    SETTINGS,
    UNIMPLEMENTED,
    GrpcConnection,
    GrpcError,
)
from app.cri.image_service import (
    ImageServiceClient,
    PullAuth,
    parse_fields,
    parse_image_status,
    pull_image_request,
)
from app.cri.relay import RELAY_SH, relay_argv
from app.runtimes.containerd import (
    ContainerdFacts,
    config_mismatch,
    parse_containerd_config,
    sandbox_image,
)
from app.runtimes.credentials import keyring_matches, kubelet_login

# --------------------------------------------------------------------------- protobuf


def test_pull_request_bytes_are_the_cri_wire_format() -> None:
    message = pull_image_request("r:5000/a:1", PullAuth("u", "pw"))
    # ImageSpec{image} as field 1; AuthConfig{username=1, password=2} as field 2;
    # server_address (4) stays empty, as the kubelet sends it
    assert message == (b"\x0a\x0c" + b"\x0a\x0ar:5000/a:1"
                       + b"\x12\x07" + b"\x0a\x01u" + b"\x12\x02pw")
    assert pull_image_request("x", None) == b"\x0a\x03\x0a\x01x"
    assert "pw" not in repr(PullAuth("u", "pw"))


def test_image_status_reply_is_decoded_and_unknown_fields_skipped() -> None:
    image = (b"\x0a\x08sha256:1"  # id
             + b"\x12\x05r/a:1"  # repo_tags
             + b"\x1a\x0ar/a@sha256" + b"\x20\x80\x01"  # repo_digests, size (varint 128)
             + b"\x2a\x00")  # uid: an empty Int64Value
    reply = b"\x0a" + bytes([len(image)]) + image + b"\x15\x01\x02\x03\x04"  # a fixed32 field
    info = parse_image_status(reply)
    assert info is not None and info.id == "sha256:1"
    assert info.repo_tags == ["r/a:1"] and info.repo_digests == ["r/a@sha256"]
    assert parse_image_status(b"") is None  # the runtime does not have it
    assert parse_fields(b"\x08\x96\x01") == {1: [150]}
    with pytest.raises(GrpcError):
        parse_fields(b"\x0a\x05ab")  # runs past the end


# --------------------------------------------------------------------------- gRPC framing


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") \
        + payload


def huffman_literal(name: str, value: str) -> bytes:
    """A literal with incremental indexing, both strings Huffman-coded (as grpc-go sends)."""
    coded_name, coded_value = (hpack.huffman_encode(t.encode()) for t in (name, value))
    return (b"\x40" + hpack.encode_integer(len(coded_name), 7, 0x80) + coded_name
            + hpack.encode_integer(len(coded_value), 7, 0x80) + coded_value)


class ScriptedPeer:
    """A server on the other end of a socket pair: reads the client's bytes, answers with the
    frames ``answer`` makes from them."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.client, self._server = socket.socketpair()
        self.received = b""
        self._answer = answer
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # the test may close its end first
            self._serve()

    def _serve(self) -> None:
        self._server.settimeout(5)
        while len(self.received) < len(PREFACE) + 9 + 12 or END_STREAM not in self._flags():
            chunk = self._server.recv(65536)
            if not chunk:
                return
            self.received += chunk
        self._server.sendall(self._answer(self.received))
        while chunk := self._server.recv(65536):  # what the client says after (ACKs)
            self.received += chunk

    def finish(self) -> bytes:
        """Everything the client sent, once it has closed the connection."""
        self._thread.join(timeout=10)
        return self.received

    def _flags(self) -> set[int]:
        """Flags of the client's DATA frames seen so far (END_STREAM ends its request)."""
        data, flags = self.received[len(PREFACE):], set()
        while len(data) >= 9:
            length, kind, flag = int.from_bytes(data[:3], "big"), data[3], data[4]
            if kind == DATA:
                flags.add(flag)
            data = data[9 + length:]
        return flags

    def close(self) -> None:
        self._server.close()


def reply_frames(body: bytes, *, status: str = "0", message: str = "") -> bytes:
    trailers = huffman_literal("grpc-status", status)
    if message:
        trailers += huffman_literal("grpc-message", message)
    return (frame(SETTINGS, 0, 0, b"") + frame(PING, 0, 0, b"12345678")
            + frame(HEADERS, END_HEADERS, 1, huffman_literal(":status", "200"))
            + frame(DATA, 0, 1, struct.pack(">BI", 0, len(body)) + body)
            # the trailers, split into a CONTINUATION (END_STREAM rides on the HEADERS frame)
            + frame(HEADERS, END_STREAM, 1, trailers[:3])
            + frame(CONTINUATION, END_HEADERS, 1, trailers[3:]))


def test_a_unary_call_round_trip_with_huffman_headers_ping_and_continuation() -> None:
    peer = ScriptedPeer(lambda _: reply_frames(b"\x0a\x03abc"))
    with GrpcConnection(peer.client) as connection:
        reply = connection.call("/runtime.v1.ImageService/PullImage", b"\x0a\x00", timeout=5)
    assert reply == b"\x0a\x03abc"
    sent = peer.finish()
    assert sent.startswith(PREFACE)
    # the ping was answered with the same payload and ACK, the server's SETTINGS acknowledged
    assert frame(PING, 1, 0, b"12345678") in sent and frame(SETTINGS, 1, 0, b"") in sent
    peer.close()


def test_a_grpc_error_status_and_goaway_are_errors_with_kinds() -> None:
    peer = ScriptedPeer(lambda _: reply_frames(b"", status=str(UNIMPLEMENTED),
                                               message="unknown service runtime.v1"))
    with GrpcConnection(peer.client) as connection, pytest.raises(GrpcError) as info:
        connection.call("/runtime.v1.ImageService/PullImage", b"", timeout=5)
    assert (info.value.kind, info.value.code) == ("status", UNIMPLEMENTED)
    assert info.value.message == "unknown service runtime.v1"
    peer.close()
    away = ScriptedPeer(lambda _: frame(SETTINGS, 0, 0, b"") + frame(
        GOAWAY, 0, 0, struct.pack(">II", 0, 2) + b"bye"))
    with GrpcConnection(away.client) as connection, pytest.raises(GrpcError) as info:
        connection.call("/x.Y/Z", b"", timeout=5)
    assert info.value.kind == "unreachable" and "bye" in info.value.message
    away.close()


def test_an_http1_peer_or_silence_is_refused_in_time() -> None:
    http1 = ScriptedPeer(lambda _: b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with GrpcConnection(http1.client) as connection, pytest.raises(GrpcError) as info:
        connection.call("/x.Y/Z", b"", timeout=5)
    assert info.value.kind == "protocol"
    http1.close()
    quiet, other = socket.socketpair()
    with GrpcConnection(quiet) as connection, pytest.raises(GrpcError) as info:
        connection.call("/x.Y/Z", b"", timeout=0.2)
    assert info.value.kind == "timeout"
    other.close()


def test_the_client_falls_back_to_v1alpha2_on_unimplemented() -> None:
    calls: list[str] = []

    class Recording(GrpcConnection):
        def call(self, path: str, message: bytes, *, timeout: float) -> bytes:
            calls.append(path)
            if path.startswith("/runtime.v1."):
                raise GrpcError("unknown service", kind="status", code=UNIMPLEMENTED)
            return b"\x12\x0acontainerd\x1a\x051.5.0"

    ends = socket.socketpair()
    client = ImageServiceClient(Recording(ends[0]))
    version = client.version()
    assert (version.api, version.runtime_name, version.runtime_version) == (
        "runtime.v1alpha2", "containerd", "1.5.0")
    client.version()
    for end in ends:
        end.close()
    assert calls == ["/runtime.v1.RuntimeService/Version",
                     "/runtime.v1alpha2.RuntimeService/Version",
                     "/runtime.v1alpha2.RuntimeService/Version"]


def test_the_relay_command_line_holds_no_secret_and_a_lifetime() -> None:
    argv = relay_argv("/run/containerd/containerd.sock")
    assert argv[:2] == ["timeout", "600"] and argv[5:7] == ["sh", "/run/containerd/containerd.sock"]
    assert argv[4] == RELAY_SH  # fixed text: nothing of the pull's credential can be in it


# --------------------------------------------------------------------------- kubelet's keyring


def config_json(entries: dict[str, tuple[str, str]]) -> bytes:
    auths = {key: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
             for key, (u, p) in entries.items()}
    return json.dumps({"auths": auths}).encode()


def test_the_kubelet_keyring_match() -> None:
    image = "reg.example:5000/team/app:1"
    assert keyring_matches("reg.example:5000", image)
    assert keyring_matches("https://reg.example:5000/team", image)
    assert keyring_matches("*.example:5000", image)
    assert not keyring_matches("reg.example", image)  # the port must match
    assert not keyring_matches("reg.example:5000/other", image)
    assert not keyring_matches("*.reg.example:5000", image)  # a glob is one label
    raw = config_json({"reg.example:5000": ("general", "a"),
                       "reg.example:5000/team": ("team", "b:c"), "other:1": ("x", "y")})
    assert kubelet_login(raw, image) == ("team", "b:c")  # the most specific key wins
    assert kubelet_login(raw, "reg.example:5000/z:1") == ("general", "a")
    assert kubelet_login(raw, "nowhere:1/z") is None
    assert kubelet_login(b"not json", image) is None and kubelet_login(None, image) is None


# --------------------------------------------------------------------------- containerd config


DUMP = """imports = ["/etc/containerd/config.toml", "/etc/containerd/conf.d/90.toml"]
version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/elsewhere"
"""


def test_the_running_configuration_decides_and_names_the_mismatch() -> None:
    assert sandbox_image(DUMP) == "registry.k8s.io/pause:3.6"
    assert sandbox_image('version = 3\n[plugins."io.containerd.cri.v1.images".pinned_images]\n'
                         'sandbox = "r/pause:3.10"\n') == "r/pause:3.10"
    file_state = parse_containerd_config(
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
        'config_path = "/etc/containerd/certs.d"\n')
    found = ContainerdFacts("", file_state, parse_containerd_config(DUMP), "",
                            ("/etc/containerd/certs.d",))
    assert found.running.hosts_dirs == ["/elsewhere"]
    mismatch = config_mismatch(found, (1, 6))
    assert mismatch is not None
    assert mismatch[0] == "containerd reads /elsewhere, not /etc/containerd/certs.d where " \
                          "regwiz wrote hosts.toml"
    # regwiz's files where containerd reads: no mismatch (stale copies elsewhere do no harm)
    fixed = ContainerdFacts("", file_state, found.effective, "",
                            ("/etc/containerd/certs.d", "/elsewhere"))
    assert config_mismatch(fixed, (1, 6)) is None
    # no dump: config.toml alone decides, as before
    assert config_mismatch(ContainerdFacts("", file_state), (1, 6)) is None
