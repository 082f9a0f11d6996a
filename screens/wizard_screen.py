"""The frame every wizard step shares: header, step indicator, body, Back/Next, footer.

A step screen implements ``compose_body``; ``problems`` (why Next is blocked) and ``commit``
(copy the widgets' values into the plan) when it edits the plan; ``palette_actions`` to offer its
actions in the command palette. Worker failures on any step end in an error modal, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header
from textual.worker import Worker, WorkerState

from app.errors import RegwizError
from screens.messages import JobFailed
from screens.palette import PaletteAction
from screens.widgets.form_field import FormField
from screens.widgets.nav_bar import NavBar
from screens.widgets.step_indicator import StepIndicator

if TYPE_CHECKING:
    from screens.app import RegwizApp


Result = TypeVar("Result")


class WizardScreen(Screen[None]):
    STEP: ClassVar[str] = "welcome"
    NEXT_LABEL: ClassVar[str] = "Next ›"
    SHOW_BACK: ClassVar[bool] = True
    SHOW_NEXT: ClassVar[bool] = True

    # On entry the step's first control has the focus, so typing or Enter acts at once. The
    # default ("*") picked the form's scroll container, which takes no input.
    AUTO_FOCUS: ClassVar[str | None] = ", ".join(
        f"#body {kind}" for kind in ("Input", "Select", "Checkbox", "RadioSet", "Button",
                                     "ListView", "DataTable", "OptionList"))

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+b", "back", "Back", priority=True),
        Binding("ctrl+n", "next", "Next", priority=True),
    ]

    @property
    def wizard(self) -> RegwizApp:
        return cast("RegwizApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield StepIndicator(self.wizard.steps, self.STEP, id="step-indicator")
        with Vertical(id="body"):
            yield from self.compose_body()
        yield NavBar(back=self.SHOW_BACK, next_label=self.NEXT_LABEL, show_next=self.SHOW_NEXT)
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def field(self, field_id: str) -> FormField:
        """The FormField made with ``field_id``."""
        return self.query_one(f"#{field_id}-field", FormField)

    # --- hooks for steps -------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Why this step cannot be left forward yet (empty: it can)."""
        return []

    def input_problems(self) -> list[str]:
        """Problems that stop this step's edits from being saved (Back asks before losing them)."""
        return self.problems()

    def commit(self) -> bool:
        """Copy the widgets' values into the plan; False keeps the user here."""
        return True

    def palette_actions(self) -> list[PaletteAction]:
        """(title, help, callback) triples offered by the command palette on this step."""
        return []

    def button_actions(self) -> dict[str, Callable[[], object]]:
        """This step's own buttons: button id -> what pressing it does (Back/Next are added)."""
        return {}

    def refresh_next(self) -> None:
        """Disable Next while ``problems()`` reports anything."""
        problems = self.problems()
        nav = self.query_one(NavBar)
        nav.block_next(bool(problems))
        if len(problems) == 1:
            nav.set_status(problems[0].split(":", 1)[-1].strip())
        else:
            nav.set_status(f"{len(problems)} fields to fix" if problems else "")

    # --- navigation ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide Back/Next from the footer on steps that have none."""
        if action == "next":
            return self.SHOW_NEXT
        if action == "back":
            return self.SHOW_BACK
        return True

    def action_next(self) -> None:
        if not self.SHOW_NEXT:
            return
        problems = self.problems()
        if problems:
            self.notify("\n".join(problems[:5]), title="Fix these first", severity="error")
            return
        if self.commit():
            self.wizard.goto_relative(+1)

    def action_back(self) -> None:
        if not self.SHOW_BACK:
            return
        if not self.input_problems():
            if self.commit():
                self.wizard.goto_relative(-1)
            return
        from screens.confirm import ConfirmModal

        def decide(discard: bool | None) -> None:
            if discard:
                self.wizard.goto_relative(-1)

        self.app.push_screen(
            ConfirmModal(
                "Discard this step's changes?",
                "Some fields are invalid, so this step's changes cannot be saved. "
                "Go back and lose them?",
                confirm_label="Discard and go back",
                cancel_label="Stay",
            ),
            decide,
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # The only button handler of every step: Textual calls the on_button_pressed of each
        # class in the MRO, so a step's own handler that also called super() ran Next twice.
        actions = {"back": self.action_back, "next": self.action_next, **self.button_actions()}
        action = actions.get(event.button.id or "")
        if action is not None:
            event.stop()
            action()

    def report_job(self, job: str, run: Callable[[], Result],
                   finished: Callable[[Result], Message]) -> None:
        """From a job's worker: run it and post ``finished(result)``, or ``JobFailed`` when it
        stops with a RegwizError (a bug still crashes the worker and is shown as one)."""
        try:
            result = run()
        except RegwizError as error:
            self.post_message(JobFailed(job, error.message, error.hint))
            return
        self.post_message(finished(result))

    def worker_failed(self, worker: Worker[object]) -> None:
        """Hook: undo busy state after a worker crashed (the error modal is shown anyway)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.worker_failed(event.worker)
            self.wizard.report_worker_failure(event.worker)
