"""Base of the modals that edit a form: OK dismisses with ``result()``, Cancel/Escape with None.

Enter in any of the form's text fields is OK too, so a dialog can be filled from the keyboard.

``result()`` returns None while the form is invalid (showing why), which keeps the modal open.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Button, Input

from screens.widgets.form_field import FormField

T = TypeVar("T")


class FormModal(ModalScreen["T | None"], Generic[T]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def result(self) -> T | None:
        raise NotImplementedError

    def form_is_valid(self) -> bool:
        """Show every field's message (even untouched ones); True when none has a problem."""
        fields = list(self.query(FormField))
        for field in fields:
            field.reveal()
        return not any(field.problem for field in fields)

    def text(self, field_id: str) -> str:
        """The stripped text of the FormField made with ``field_id``."""
        return self.query_one(f"#{field_id}-field", FormField).value

    def submit(self) -> None:
        result = self.result()
        if result is not None:
            self.dismiss(result)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.submit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def action_cancel(self) -> None:
        self.dismiss(None)
