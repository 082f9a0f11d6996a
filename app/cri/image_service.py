"""The CRI image service calls verify makes, with their messages encoded by hand.

From the public CRI API (kubernetes/cri-api ``pkg/apis/runtime/v1/api.proto``), only the fields
used here::

    ImageSpec          { string image = 1; }
    AuthConfig         { string username = 1; string password = 2; string auth = 3;
                         string server_address = 4; }
    PullImageRequest   { ImageSpec image = 1; AuthConfig auth = 2; }
    PullImageResponse  { string image_ref = 1; }
    ImageStatusRequest { ImageSpec image = 1; }
    ImageStatusResponse{ Image image = 1; }
    Image              { string id = 1; repeated string repo_tags = 2;
                         repeated string repo_digests = 3; }
    RemoveImageRequest { ImageSpec image = 1; }
    VersionRequest     { string version = 1; }
    VersionResponse    { string version = 1; string runtime_name = 2;
                         string runtime_version = 3; string runtime_api_version = 4; }

The credential goes as ``username`` + ``password`` with ``server_address`` empty, as the kubelet
sends it (containerd 1.6 parses a non-empty ``server_address`` as a URL and fails on a bare
``host:port``). ``runtime.v1`` first, ``runtime.v1alpha2`` (same field numbers) when the runtime
answers UNIMPLEMENTED.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.cri.grpc_stream import UNIMPLEMENTED, GrpcConnection, GrpcError

API_VERSIONS = ("runtime.v1", "runtime.v1alpha2")
PULL_TIMEOUT = 180.0
CALL_TIMEOUT = 30.0

# --------------------------------------------------------------------------- wire format


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def string_field(number: int, text: str) -> bytes:
    """A string field; empty strings are left out, as proto3 does."""
    return _bytes_field(number, text.encode("utf-8")) if text else b""


def message_field(number: int, data: bytes) -> bytes:
    return _bytes_field(number, data)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise GrpcError("a malformed protobuf varint", kind="protocol")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def parse_fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Field number -> its values (bytes for length-delimited, int for varints); fixed-width
    fields are skipped."""
    fields: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        value: bytes | int
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 2:
            length, pos = read_varint(data, pos)
            if pos + length > len(data):
                raise GrpcError("a protobuf field runs past the message", kind="protocol")
            value, pos = data[pos:pos + length], pos + length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            continue
        else:
            raise GrpcError(f"unsupported protobuf wire type {wire}", kind="protocol")
        fields.setdefault(number, []).append(value)
    return fields


def _strings(fields: dict[int, list[bytes | int]], number: int) -> list[str]:
    return [v.decode("utf-8", "replace") for v in fields.get(number, []) if isinstance(v, bytes)]


def _string(fields: dict[int, list[bytes | int]], number: int) -> str:
    found = _strings(fields, number)
    return found[-1] if found else ""


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class PullAuth:
    """The login the kubelet passes with a pull; never printed."""

    username: str = field(repr=False)
    password: str = field(repr=False)


def image_spec(reference: str) -> bytes:
    return string_field(1, reference)


def pull_image_request(reference: str, auth: PullAuth | None) -> bytes:
    message = message_field(1, image_spec(reference))
    if auth is not None:
        message += message_field(2, string_field(1, auth.username)
                                 + string_field(2, auth.password))
    return message


def image_status_request(reference: str) -> bytes:
    return message_field(1, image_spec(reference))


def remove_image_request(reference: str) -> bytes:
    return message_field(1, image_spec(reference))


@dataclass(frozen=True)
class ImageInfo:
    id: str
    repo_tags: list[str]
    repo_digests: list[str]


def parse_image_status(data: bytes) -> ImageInfo | None:
    """The Image of an ImageStatusResponse; None when the runtime does not have the image."""
    image = [v for v in parse_fields(data).get(1, []) if isinstance(v, bytes)]
    if not image:
        return None
    fields = parse_fields(image[-1])
    return ImageInfo(_string(fields, 1), _strings(fields, 2), _strings(fields, 3))


@dataclass(frozen=True)
class RuntimeVersion:
    api: str  # the service package that answered, e.g. "runtime.v1"
    runtime_name: str
    runtime_version: str


# --------------------------------------------------------------------------- the client


class ImageServiceClient:
    """CRI calls on one connection; picks runtime.v1 or v1alpha2 on the first call."""

    def __init__(self, connection: GrpcConnection) -> None:
        self.connection = connection
        self.api: str | None = None

    def version(self) -> RuntimeVersion:
        reply = self._call("RuntimeService", "Version", string_field(1, "v1"), CALL_TIMEOUT)
        fields = parse_fields(reply)
        return RuntimeVersion(self.api or "", _string(fields, 2), _string(fields, 3))

    def pull(self, reference: str, auth: PullAuth | None,
             timeout: float = PULL_TIMEOUT) -> str:
        """PullImage; the image ref (an image id) the runtime reports."""
        reply = self._call("ImageService", "PullImage", pull_image_request(reference, auth),
                           timeout)
        return _string(parse_fields(reply), 1)

    def status(self, reference: str) -> ImageInfo | None:
        reply = self._call("ImageService", "ImageStatus", image_status_request(reference),
                           CALL_TIMEOUT)
        return parse_image_status(reply)

    def remove(self, reference: str) -> None:
        self._call("ImageService", "RemoveImage", remove_image_request(reference),
                   CALL_TIMEOUT)

    def _call(self, service: str, method: str, message: bytes, timeout: float) -> bytes:
        versions = (self.api,) if self.api else API_VERSIONS
        for index, api in enumerate(versions):
            try:
                reply = self.connection.call(f"/{api}.{service}/{method}", message,
                                             timeout=timeout)
            except GrpcError as error:
                if error.code == UNIMPLEMENTED and index + 1 < len(versions):
                    continue  # an older runtime: try the next API version
                raise
            self.api = api
            return reply
        raise GrpcError(f"the runtime implements no known CRI version for {method}",
                        kind="status", code=UNIMPLEMENTED)
