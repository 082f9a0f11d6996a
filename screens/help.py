"""``?`` / F1: what the current step does (its help in screens.steps) and which keys work
everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Button, Markdown

from screens.closable_modal import ClosableModal

if TYPE_CHECKING:
    from screens.steps import Step

GLOBAL_KEYS = """
| key | does |
|---|---|
| ctrl+n / ctrl+b | next / back step (the plan is saved on every move) |
| ctrl+p | command palette: every step and action |
| F1 (? outside fields) | this help |
| ctrl+t | light / dark theme |
| tab / shift+tab | next / previous field |
| ctrl+q | quit (asks first while a job runs) |
"""


class HelpScreen(ClosableModal):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "Close"),
    ]

    def __init__(self, step: Step) -> None:
        super().__init__(classes="modal")
        self.step = step

    def compose(self) -> ComposeResult:
        text = f"# {self.step.title}\n\n{self.step.help}\n\n## Keys\n{GLOBAL_KEYS}"
        with Vertical(classes="dialog help-dialog"):
            yield Markdown(text, id="help-text")
            yield Button("Close", id="close", variant="primary")
