"""HPACK against the examples of RFC 7541 Appendix C (the decoder keeps its dynamic table
across the header blocks of one connection, as the RFC's sequences require)."""

from __future__ import annotations

import pytest

from app.cri import hpack
from app.cri.huffman_table import CODE_LENGTHS, codes

REQUESTS = [
    [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
    [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"),
     ("cache-control", "no-cache")],
    [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"),
     (":authority", "www.example.com"), ("custom-key", "custom-value")],
]
RESPONSES = [
    [(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
     ("location", "https://www.example.com")],
    [(":status", "307"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
     ("location", "https://www.example.com")],
    [(":status", "200"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
     ("location", "https://www.example.com"), ("content-encoding", "gzip"),
     ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")],
]
C3 = ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865",
      "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"]
C4 = ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
      "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"]
C5 = ["4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a3231"
      "20474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
      "4803333037c1c0bf",
      "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738"
      "666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d33"
      "3630303b2076657273696f6e3d31"]
C6 = ["488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad1718"
      "63c78f0b97c8e9ae82ae43d3",
      "4883640effc1c0bf",
      "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7"
      "b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"]


def test_c1_integers() -> None:
    assert hpack.encode_integer(10, 5) == bytes([0b01010])  # C.1.1
    assert hpack.encode_integer(1337, 5) == bytes([0b11111, 0b10011010, 0b00001010])  # C.1.2
    assert hpack.encode_integer(42, 8) == bytes([42])  # C.1.3
    assert hpack.decode_integer(bytes([0b11111, 0b10011010, 0b00001010]), 0, 5) == (1337, 3)


def test_c2_single_fields() -> None:
    decoder = hpack.Decoder()
    # C.2.1: literal with indexing, new name
    assert decoder.decode(bytes.fromhex(
        "400a637573746f6d2d6b65790d637573746f6d2d686561646572")) == [
        ("custom-key", "custom-header")]
    assert decoder.size == 55
    # C.2.2: literal without indexing, indexed name: what our encoder writes
    assert hpack.encode_headers([(":path", "/sample/path")]) == bytes.fromhex(
        "040c2f73616d706c652f70617468")
    # C.2.3: never indexed; C.2.4: indexed
    assert decoder.decode(bytes.fromhex("100870617373776f726406736563726574")) == [
        ("password", "secret")]
    assert decoder.decode(bytes.fromhex("82")) == [(":method", "GET")]
    assert decoder.size == 55  # neither touched the dynamic table


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3 plain", "C.4 Huffman"])
def test_c3_c4_request_sequences(blocks: list[str]) -> None:
    decoder = hpack.Decoder()
    for block, expected in zip(blocks, REQUESTS, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == expected
    assert decoder.entries == [("custom-key", "custom-value"), ("cache-control", "no-cache"),
                               (":authority", "www.example.com")]
    assert decoder.size == 164


@pytest.mark.parametrize("blocks", [C5, C6], ids=["C.5 plain", "C.6 Huffman"])
def test_c5_c6_response_sequences_evict_from_a_256_byte_table(blocks: list[str]) -> None:
    decoder = hpack.Decoder(256)
    sizes = []
    for block, expected in zip(blocks, RESPONSES, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == expected
        sizes.append(decoder.size)
    assert sizes == [222, 222, 215]
    assert [name for name, _ in decoder.entries] == ["set-cookie", "content-encoding", "date"]


def test_the_huffman_table_is_the_rfc_code() -> None:
    assert len(CODE_LENGTHS) == 257
    table = codes()
    assert table[ord("0")] == (0x0, 5)  # first code of the RFC's table
    assert table[ord("a")] == (0x3, 5)
    assert table[0] == (0x1FF8, 13)
    assert table[255] == (0x3FFFFEE, 26)
    assert table[256] == (0x3FFFFFFF, 30)  # EOS
    for text, encoded in (("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
                          ("no-cache", "a8eb10649cbf"), ("custom-key", "25a849e95ba97d7f")):
        assert hpack.huffman_encode(text.encode()).hex() == encoded
    every_byte = bytes(range(256))
    assert hpack.huffman_decode(hpack.huffman_encode(every_byte)) == every_byte


def test_bad_blocks_are_refused() -> None:
    with pytest.raises(hpack.HpackError):
        hpack.Decoder().decode(bytes([0xFF, 0x80]))  # integer runs off the end
    with pytest.raises(hpack.HpackError):
        hpack.Decoder().decode(bytes([0xBF]))  # index 63: no dynamic entry yet
    with pytest.raises(hpack.HpackError):
        hpack.huffman_decode(b"\x00")  # padding of zeros, not EOS bits
    with pytest.raises(hpack.HpackError):
        hpack.Decoder(100).decode(bytes([0x3F, 0xE1, 0x1F]))  # size update above the limit


def test_encoded_headers_decode_back() -> None:
    headers = [(":method", "POST"), (":path", "/runtime.v1.ImageService/PullImage"),
               ("content-type", "application/grpc"), ("te", "trailers"), ("x-é", "ü")]
    assert hpack.Decoder().decode(hpack.encode_headers(headers)) == headers
