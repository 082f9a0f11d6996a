"""A host whose SSH key differs from the one remembered: a warning that cannot be accepted."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class HostKeyChangedModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, host: str, message: str, hint: str | None = None) -> None:
        super().__init__(classes="modal")
        self.host = host
        self.message = message
        self.hint = hint or (
            "If the host was reinstalled, remove its old entry with "
            f"ssh-keygen -R {host} and connect again; otherwise do not connect."
        )

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label("WARNING: the host key has changed", classes="dialog-title")
            yield Static(
                "Someone could be intercepting this connection (man-in-the-middle), or the "
                "host was reinstalled. regwiz will not connect to it.",
                classes="dialog-body",
                markup=False,
            )
            yield Static(self.message, id="changed-detail", markup=False)
            yield Static(f"hint: {self.hint}", classes="dialog-hint", markup=False)
            yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
