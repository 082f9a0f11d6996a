"""A labelled Input with help text and its validation message shown underneath as you type."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.validation import Validator
from textual.widgets import Input, Label, Static

Warner = Callable[[str], list[str]]


class FormField(Vertical):
    """``value`` / ``problem`` for the screen; the message shows once the field was touched."""

    DEFAULT_CLASSES = "form-field"

    def __init__(
        self,
        label: str,
        *,
        field_id: str,
        value: str = "",
        validators: Sequence[Validator] = (),
        help_text: str = "",
        placeholder: str = "",
        password: bool = False,
        warn: Warner | None = None,
    ) -> None:
        super().__init__(id=f"{field_id}-field")
        self.label = label
        self.field_id = field_id
        self.initial = value
        self.validators = list(validators)
        self.help_text = help_text
        self.placeholder = placeholder
        self.password = password
        self.warn = warn
        self.touched = bool(value)  # a prefilled value is judged at once, an empty one on edit

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="field-label")
        yield Input(
            self.initial,
            id=self.field_id,
            placeholder=self.placeholder,
            password=self.password,
            validators=self.validators,
            validate_on=["changed", "blur", "submitted"],
            compact=True,
        )
        yield Static("", classes="field-message", markup=False)
        if self.help_text:
            yield Static(self.help_text, classes="field-help", markup=False)

    def on_mount(self) -> None:
        self.show_message()

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @property
    def value(self) -> str:
        return self.input.value.strip()

    def int_or(self, default: int) -> int:
        """The value as a whole number, or ``default`` while it is not one."""
        return int(self.value) if self.value.isdigit() else default

    @property
    def problem(self) -> str | None:
        for validator in self.validators:
            result = validator.validate(self.input.value)
            if not result.is_valid:
                return "; ".join(result.failure_descriptions) or "invalid"
        return None

    def reveal(self) -> None:
        """Show the message even if the field was never edited (e.g. after Next)."""
        self.touched = True
        self.show_message()

    def show_message(self) -> None:
        message = self.query_one(".field-message", Static)
        problem = self.problem if self.touched else None
        warnings = self.warn(self.value) if (self.warn and not problem and self.value) else []
        message.set_class(bool(problem), "-error")
        message.set_class(bool(warnings), "-warning")
        message.update(problem or "; ".join(warnings))
        message.display = bool(problem or warnings)
        self.input.set_class(bool(problem), "-invalid")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.touched = True
        self.show_message()  # the event bubbles on so the screen can re-check Next

    def on_input_blurred(self, event: Input.Blurred) -> None:
        if event.value:
            self.touched = True
        self.show_message()
