"""Where the operator is in the wizard: every step's short name, the current one highlighted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.widgets import Static

if TYPE_CHECKING:
    from screens.steps import Step

# Between two steps' names, the widest that lets every name fit the line (80 columns hold all
# eleven steps of a managed registry only with the narrower ones).
SEPARATORS = (" › ", "› ", "›")


class StepIndicator(Static):
    """One line such as ``Start › Cert › [Review] › Host …``; fits 80 columns."""

    def __init__(self, steps: Sequence[Step], current: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.steps = tuple(steps)
        self.current = current

    def on_mount(self) -> None:
        self.update(self.render_steps(self.content_size.width))

    def on_resize(self, event: events.Resize) -> None:
        self.update(self.render_steps(self.content_size.width))

    def render_steps(self, width: int = 0) -> Text:
        """The line with the widest separator that fits ``width`` (0: unknown, the widest)."""
        for separator in SEPARATORS:
            text = self.steps_text(separator)
            if not width or text.cell_len <= width:
                break
        return text

    def steps_text(self, separator: str) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        names = [step.name for step in self.steps]
        current_index = names.index(self.current) if self.current in names else -1
        for index, step in enumerate(self.steps):
            if index:
                text.append(separator, style="dim")
            # No numbers: every name must fit 80 columns.
            if index == current_index:
                text.append(f" {step.short} ", style="bold reverse")
            elif index < current_index:
                text.append(step.short)
            else:
                text.append(step.short, style="dim")
        return text
