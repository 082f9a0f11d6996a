"""The HPACK Huffman code (RFC 7541, Appendix B) as the bit length of each symbol's code.

The code is canonical: sorted by (length, symbol), each code is the previous one plus one,
shifted left when the length grows. So the lengths alone define it (``codes()`` rebuilds the
table; tests check it against codes printed in the RFC). Symbol 256 is EOS.
"""

from __future__ import annotations

from functools import cache

# Bit lengths of symbols 0..256, 32 per line.
CODE_LENGTHS: tuple[int, ...] = (
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
)
EOS = 256


@cache
def codes() -> tuple[tuple[int, int], ...]:
    """(code, bit length) per symbol, rebuilt canonically from CODE_LENGTHS."""
    order = sorted(range(len(CODE_LENGTHS)), key=lambda symbol: (CODE_LENGTHS[symbol], symbol))
    table = [(0, 0)] * len(CODE_LENGTHS)
    code, length = 0, CODE_LENGTHS[order[0]]
    for index, symbol in enumerate(order):
        if index:
            code = (code + 1) << (CODE_LENGTHS[symbol] - length)
        length = CODE_LENGTHS[symbol]
        table[symbol] = (code, length)
    return tuple(table)


@cache
def decoding_table() -> dict[tuple[int, int], int]:
    """(bit length, code) -> symbol, for the decoder's bit-by-bit lookup."""
    return {(length, code): symbol for symbol, (code, length) in enumerate(codes())}
