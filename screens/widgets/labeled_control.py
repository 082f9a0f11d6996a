"""A label above one control (a Checkbox or a Select), laid out like a FormField."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Label, Static


class LabeledControl(Vertical):
    def __init__(self, label: str, control: Widget, *, help_text: str = "") -> None:
        super().__init__(classes="form-field")
        self.label_text = label
        self.control = control
        self.help_text = help_text

    def compose(self) -> ComposeResult:
        yield Label(self.label_text, classes="field-label")
        yield self.control
        if self.help_text:
            yield Static(self.help_text, classes="field-help", markup=False)
