"""A table of steps with live state: pending, running, changed, unchanged, failed, skipped."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from app.steps import Outcome, StepResult

STATE_STYLE = {
    Outcome.PENDING: ("·", "dim"),
    Outcome.RUNNING: ("▶", "bold cyan"),
    Outcome.CHANGED: ("✚", "bold yellow"),
    Outcome.UNCHANGED: ("✓", "green"),
    Outcome.FAILED: ("✗", "bold red"),
    Outcome.SKIPPED: ("–", "dim"),
}


def state_text(outcome: Outcome) -> Text:
    mark, style = STATE_STYLE[outcome]
    return Text(f"{mark} {outcome.value}", style=style)


class StepTable(DataTable[object]):
    """Rows are keyed by position: the same step list is shown until the next run."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._rows: dict[tuple[str, str], str] = {}

    def on_mount(self) -> None:
        # The step text goes last: on a narrow terminal only its end is cut off.
        self.add_column("state", key="state", width=11)
        self.add_column("time", key="time", width=6)
        self.add_column("where", key="where", width=14)
        self.add_column("step", key="step")

    def show_steps(self, steps: list[tuple[str, str]]) -> None:
        self.clear()
        self._rows.clear()
        for index, (what, where) in enumerate(steps):
            key = str(index)
            self._rows.setdefault((what, where), key)
            self.add_row(state_text(Outcome.PENDING), "", where, what, key=key)

    def update_step(self, result: StepResult) -> None:
        key = self._rows.get((result.what, result.where))
        if key is None:
            return
        self.update_cell(key, "state", state_text(result.outcome))
        if result.outcome.is_final and result.outcome is not Outcome.SKIPPED:
            self.update_cell(key, "time", f"{result.seconds:.1f}s")
