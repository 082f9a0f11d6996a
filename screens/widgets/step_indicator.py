"""Where the operator is in the wizard: every step's short name, the current one highlighted."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from app.tui import STEP_NAMES, STEPS


class StepIndicator(Static):
    """One line such as ``Start › Cert › [Review] › Host …``; fits 80 columns."""

    def __init__(self, current: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.current = current

    def on_mount(self) -> None:
        self.update(self.render_steps())

    def render_steps(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        current_index = STEP_NAMES.index(self.current) if self.current in STEP_NAMES else -1
        for index, step in enumerate(STEPS):
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
