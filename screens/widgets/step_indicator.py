"""Where the operator is in the wizard: every step's short name, the current one highlighted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from screens.steps import Step


class StepIndicator(Static):
    """One line such as ``Start › Cert › [Review] › Host …``; fits 80 columns."""

    def __init__(self, steps: Sequence[Step], current: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.steps = tuple(steps)
        self.current = current

    def on_mount(self) -> None:
        self.update(self.render_steps())

    def render_steps(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        names = [step.name for step in self.steps]
        current_index = names.index(self.current) if self.current in names else -1
        for index, step in enumerate(self.steps):
            if index:
                text.append(" › ", style="dim")
            # No numbers: all nine names must fit 80 columns.
            if index == current_index:
                text.append(f" {step.short} ", style="bold reverse")
            elif index < current_index:
                text.append(step.short)
            else:
                text.append(step.short, style="dim")
        return text
