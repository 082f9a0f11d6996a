"""One node's log: what was checked, written and restarted, and the error with its hint."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Button, Label, RichLog

from app.terminal_text import plain_text
from screens.closable_modal import ClosableModal


class NodeLogModal(ClosableModal):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close")]

    def __init__(self, host: str, lines: list[str]) -> None:
        super().__init__(classes="modal")
        self.host = host
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog log-dialog"):
            yield Label(f"Node {self.host}", classes="dialog-title")
            yield RichLog(id="node-log", wrap=True, markup=False)
            yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        # ClosableModal.on_mount focuses Close: Textual calls it after this one.
        log = self.query_one(RichLog)
        for line in self.lines or ["nothing recorded for this node yet"]:
            log.write(plain_text(line))  # remote output: text, not terminal control
