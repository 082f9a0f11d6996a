"""A host whose SSH key differs from the one remembered: a warning that cannot be accepted."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button, Label, Static

from screens.closable_modal import ClosableModal


class HostKeyChangedModal(ClosableModal):

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
