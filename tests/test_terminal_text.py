"""plain_text / echo: text from hosts keeps its words and loses every terminal control."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.terminal_text import echo, plain_text


@pytest.mark.parametrize(("raw", "shown"), [
    ("a\x1b]0;evil\x07b", "ab"),                       # window title (OSC, BEL)
    ("a\x1b]52;c;ZXZpbA==\x1b\\b", "ab"),              # clipboard (OSC 52, ST)
    ("x\x1b[2Jy\x1b[H", "xy"),                        # clear screen, cursor home
    ("\x1b[31mred\x1b[0m", "red"),
    ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # hyperlink
    ("\x9b2J\x9d0;t\x9cz", "z"),                       # 8-bit CSI / OSC / ST
    ("\x1bPq#0;2;0;0;0\x1b\\img", "img"),              # DCS (sixel)
    ("reset\x1bc!", "reset!"),
    ("progress 10%\rfake line", "progress 10%\nfake line"),
    ("tabs\tand\nlines\r\n", "tabs\tand\nlines\n"),
    ("bell\x07 nul\x00 bs\x08 del\x7f", "bell nul bs del"),
    ("cut \x1b]0;no end", "cut "),
    ("ümlaut 漢字 ✓", "ümlaut 漢字 ✓"),
])
def test_plain_text(raw: str, shown: str) -> None:
    assert plain_text(raw) == shown


@given(st.text())
def test_no_control_survives(text: str) -> None:
    cleaned = plain_text(text)
    assert all(ch in "\t\n" or not (ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f) for ch in cleaned)


def test_echo_cleans_and_never_crashes_on_unencodable_text() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    echo("a\x1b[2Jb", "lone\ud800", file=stream)
    stream.flush()
    assert stream.buffer.getvalue() == b"ab lone\\ud800\n"  # type: ignore[attr-defined]
