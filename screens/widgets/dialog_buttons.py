"""A dialog's button row: the way out first, then the button that does the dialog's work."""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button

Variant = Literal["default", "primary", "success", "warning", "error"]


class DialogButtons(Horizontal):
    def __init__(self, ok_label: str, *, ok_id: str = "ok", variant: Variant = "primary",
                 cancel_label: str = "Cancel", cancel_id: str = "cancel") -> None:
        super().__init__(classes="dialog-buttons")
        self.buttons = ((cancel_label, cancel_id, "default"), (ok_label, ok_id, variant))

    def compose(self) -> ComposeResult:
        for label, button_id, variant in self.buttons:
            yield Button(label, id=button_id, variant=variant)  # type: ignore[arg-type]
