"""Base of the modals that edit a form: OK dismisses with ``result()``, Cancel/Escape with None.

``result()`` returns None while the form is invalid (showing why), which keeps the modal open.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Button

T = TypeVar("T")


class FormModal(ModalScreen["T | None"], Generic[T]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def result(self) -> T | None:
        raise NotImplementedError

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        result = self.result()
        if result is not None:
            self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)
