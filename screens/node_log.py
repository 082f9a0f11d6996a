"""One node's log: what was checked, written and restarted, and the error with its hint.

Opened during a run it follows the node: the screen that owns the run passes each new line
on (``follow``) as its NodeProgressed / OnboardFinished messages arrive, until it is closed.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Button, Label, RichLog

from app.terminal_text import plain_text
from screens.closable_modal import ClosableModal

EMPTY = "nothing recorded for this node yet"


class NodeLogModal(ClosableModal):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close")]

    def __init__(self, host: str, lines: list[str], *, live: bool = False) -> None:
        super().__init__(classes="modal")
        self.host = host
        self.lines = list(lines)  # a copy: the owner keeps appending to its own list
        self.live = live

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog log-dialog"):
            yield Label(self.title_text(), id="node-log-title", classes="dialog-title")
            yield RichLog(id="node-log", wrap=True, markup=False)
            yield Button("Close", id="close", variant="primary")

    def title_text(self) -> str:
        return f"Node {self.host}" + (" (live: new lines appear as they come)"
                                      if self.live else "")

    def on_mount(self) -> None:
        # ClosableModal.on_mount focuses Close: Textual calls it after this one.
        log = self.query_one(RichLog)
        for line in self.lines or [EMPTY]:
            log.write(plain_text(line))  # remote output: text, not terminal control

    def follow(self, line: str) -> None:
        """A new line of the run this log was opened during (called on the UI thread)."""
        self.lines.append(line)
        if self.is_mounted:
            self.query_one(RichLog).write(plain_text(line))

    def run_ended(self) -> None:
        """The run is over: the log stops saying it is live."""
        self.live = False
        if self.is_mounted:
            self.query_one("#node-log-title", Label).update(self.title_text())
