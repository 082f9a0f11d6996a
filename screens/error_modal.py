"""An error: what went wrong, and the hint on how to fix it when there is one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from app.errors import RegwizError
from screens.closable_modal import ClosableModal


class ErrorModal(ClosableModal):

    def __init__(self, title: str, message: str, hint: str | None = None) -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.message = message
        self.hint = hint

    @classmethod
    def from_error(cls, title: str, error: BaseException | str) -> ErrorModal:
        if isinstance(error, RegwizError):
            return cls(title, error.message, error.hint)
        if isinstance(error, str):
            return cls(title, error)
        # An unexpected exception: its type helps a bug report; the text is shown as-is.
        return cls(title, f"{type(error).__name__}: {error}", "this looks like a bug in regwiz")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-scroll"):
                yield Static(self.message, classes="dialog-body", markup=False)
                if self.hint:
                    yield Static(f"hint: {self.hint}", classes="dialog-hint", markup=False)
            yield Button("Close", id="close", variant="primary")
