"""Text from hosts is data, never terminal control.

Remote stderr, container logs and anything else a host (or whoever controls it) wrote can hold
escape sequences that retitle the window (OSC ``ESC ] 0;… BEL``), clear the screen
(``ESC [ 2 J``), rewrite what was printed before (``\\r``, cursor moves), set the clipboard
(OSC 52) or make fake links (OSC 8). ``plain_text`` keeps the text and drops every control:
CSI, OSC, DCS/SOS/PM/APC strings and other ESC sequences (7-bit and their 8-bit C1 forms),
then any remaining C0 or C1 control and DEL. Tabs and newlines stay; a carriage return becomes
a newline so nothing printed can be overwritten. ``echo`` is ``print`` through it: every CLI
printer of host-derived text uses it, and the TUI log panes pass their lines through
``plain_text``.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

# String sequences run to a terminator (BEL or ST, 7- or 8-bit); an unterminated one to the end.
_STRING = r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x9c]*?(?:\x07|\x1b\\|\x9c|$)"
_CSI = r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
_OTHER_ESC = r"\x1b[ -/]*[0-~]?"
_SEQUENCE = re.compile(f"{_STRING}|{_CSI}|{_OTHER_ESC}", re.DOTALL)
# C0 controls except tab and newline, DEL, C1 controls (CR handled before).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """``text``'s non-blank lines joined by spaces, for a reason shown inside a sentence."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def plain_text(text: str) -> str:
    """``text`` with every terminal control sequence and control character removed."""
    if text.isprintable():
        return text  # the common case: nothing to do
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


def echo(*parts: object, file: TextIO | None = None, flush: bool = False) -> None:
    """``print`` for text that may come from a host: controls removed, and never a crash on
    characters the stream cannot encode (they are shown as escapes)."""
    stream = file if file is not None else sys.stdout
    text = " ".join(plain_text(str(part)) for part in parts)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding), file=stream, flush=flush)
