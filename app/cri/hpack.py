"""HPACK (RFC 7541), as much as a gRPC client needs.

Encoding: literal header fields without indexing (the name by its static-table index when it
has one), no Huffman: a client may always send plain literals, and it never changes the peer's
dynamic table. Decoding: everything a server may send (indexed fields, literals with or without
indexing, dynamic table size updates, Huffman-coded strings: grpc-go Huffman-codes its headers).
"""

from __future__ import annotations

from app.cri.huffman_table import EOS, codes, decoding_table

DEFAULT_TABLE_SIZE = 4096
ENTRY_OVERHEAD = 32  # RFC 7541 4.1: an entry's size is len(name) + len(value) + 32

# RFC 7541 Appendix A: index 1..61.
STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)
_STATIC_NAME_INDEX: dict[str, int] = {}
for _index, (_name, _) in enumerate(STATIC_TABLE, start=1):
    _STATIC_NAME_INDEX.setdefault(_name, _index)

Header = tuple[str, str]


class HpackError(ValueError):
    """A header block that does not decode (a COMPRESSION_ERROR in HTTP/2 terms)."""


# --------------------------------------------------------------------------- integers, strings


def encode_integer(value: int, prefix_bits: int, first_byte: int = 0) -> bytes:
    """RFC 7541 5.1: ``value`` with an N-bit prefix; ``first_byte`` holds the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = bytearray([first_byte | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_integer(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """(value, position after it)."""
    if pos >= len(data):
        raise HpackError("header block ends inside an integer")
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise HpackError("header block ends inside an integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 63:
            raise HpackError("integer too large")


def encode_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return encode_integer(len(raw), 7) + raw


def decode_string(data: bytes, pos: int) -> tuple[str, int]:
    if pos >= len(data):
        raise HpackError("header block ends before a string")
    huffman = bool(data[pos] & 0x80)
    length, pos = decode_integer(data, pos, 7)
    end = pos + length
    if end > len(data):
        raise HpackError("string runs past the end of the header block")
    raw = huffman_decode(data[pos:end]) if huffman else data[pos:end]
    return raw.decode("utf-8", errors="replace"), end


# --------------------------------------------------------------------------- Huffman


def huffman_encode(raw: bytes) -> bytes:
    """RFC 7541 5.2 (used by tests; the encoder sends plain literals)."""
    table = codes()
    bits, count = 0, 0
    for byte in raw:
        code, length = table[byte]
        bits, count = (bits << length) | code, count + length
    padding = -count % 8
    bits, count = (bits << padding) | ((1 << padding) - 1), count + padding
    return bits.to_bytes(count // 8, "big")


def huffman_decode(raw: bytes) -> bytes:
    """Bit by bit; the end must be at most 7 bits of EOS's prefix (all ones)."""
    lookup = decoding_table()
    out = bytearray()
    code, length = 0, 0
    for byte in raw:
        for shift in range(7, -1, -1):
            code, length = (code << 1) | ((byte >> shift) & 1), length + 1
            symbol = lookup.get((length, code))
            if symbol is None:
                if length > 30:
                    raise HpackError("invalid Huffman code")
                continue
            if symbol == EOS:
                raise HpackError("EOS inside a Huffman-coded string")
            out.append(symbol)
            code, length = 0, 0
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


# --------------------------------------------------------------------------- encoder


def encode_headers(headers: list[Header]) -> bytes:
    """A header block of literals without indexing (RFC 7541 6.2.2)."""
    block = bytearray()
    for name, value in headers:
        index = _STATIC_NAME_INDEX.get(name, 0)
        block += encode_integer(index, 4, 0x00)
        if not index:
            block += encode_string(name)
        block += encode_string(value)
    return bytes(block)


# --------------------------------------------------------------------------- decoder


class Decoder:
    """Decodes header blocks, keeping the dynamic table between them (one per connection)."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.max_allowed = max_table_size  # what we announced (SETTINGS_HEADER_TABLE_SIZE)
        self.max_size = max_table_size
        self.entries: list[Header] = []  # newest first
        self.size = 0

    def decode(self, block: bytes) -> list[Header]:
        headers: list[Header] = []
        pos = 0
        while pos < len(block):
            byte = block[pos]
            if byte & 0x80:  # indexed header field
                index, pos = decode_integer(block, pos, 7)
                headers.append(self._lookup(index))
            elif byte & 0x40:  # literal with incremental indexing
                header, pos = self._literal(block, pos, 6)
                self._add(header)
                headers.append(header)
            elif byte & 0x20:  # dynamic table size update
                size, pos = decode_integer(block, pos, 5)
                if size > self.max_allowed:
                    raise HpackError(f"table size update {size} above {self.max_allowed}")
                self.max_size = size
                self._evict()
            else:  # literal without indexing (0000) or never indexed (0001)
                header, pos = self._literal(block, pos, 4)
                headers.append(header)
        return headers

    def _literal(self, block: bytes, pos: int, prefix_bits: int) -> tuple[Header, int]:
        index, pos = decode_integer(block, pos, prefix_bits)
        if index:
            name = self._lookup(index)[0]
        else:
            name, pos = decode_string(block, pos)
        value, pos = decode_string(block, pos)
        return (name, value), pos

    def _lookup(self, index: int) -> Header:
        if index <= 0:
            raise HpackError("header index 0")
        if index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if dynamic >= len(self.entries):
            raise HpackError(f"header index {index} beyond the tables")
        return self.entries[dynamic]

    def _add(self, header: Header) -> None:
        size = _entry_size(header)
        if size > self.max_size:  # RFC 7541 4.4: an entry larger than the table empties it
            self.entries, self.size = [], 0
            return
        self.entries.insert(0, header)
        self.size += size
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size and self.entries:
            self.size -= _entry_size(self.entries.pop())


def _entry_size(header: Header) -> int:
    return len(header[0].encode()) + len(header[1].encode()) + ENTRY_OVERHEAD
