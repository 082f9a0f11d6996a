"""A yes/no question. Dismisses with True (confirmed) or False."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from screens.widgets.dialog_buttons import DialogButtons


class ConfirmModal(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        body: str,
        *,
        confirm_label: str = "Yes",
        cancel_label: str = "No",
        danger: bool = False,
    ) -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label
        self.cancel_label = cancel_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body", markup=False)
            yield DialogButtons(self.confirm_label, ok_id="confirm",
                                variant="error" if self.danger else "primary",
                                cancel_label=self.cancel_label)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the safe answer is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)
