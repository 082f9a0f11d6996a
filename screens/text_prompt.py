"""Ask for one value (a path, a host) with validation; dismisses with the text or None."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.validation import Validator
from textual.widgets import Input, Label

from screens.form_modal import FormModal
from screens.widgets.dialog_buttons import DialogButtons
from screens.widgets.form_field import FormField


class TextPromptModal(FormModal[str]):

    def __init__(
        self,
        title: str,
        label: str,
        *,
        validator: Validator,
        help_text: str = "",
        value: str = "",
        ok_label: str = "OK",
    ) -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.label = label
        self.validator = validator
        self.help_text = help_text
        self.value = value
        self.ok_label = ok_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield FormField(self.label, field_id="prompt", value=self.value,
                            validators=[self.validator], help_text=self.help_text)
            yield DialogButtons(self.ok_label)

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()

    def result(self) -> str | None:
        return self.text("prompt") if self.form_is_valid() else None
