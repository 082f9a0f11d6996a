"""Step 1: start a new plan, open one, or pick a recent one; shortcuts for an existing plan."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from app.paths import expand_user
from app.plan import PlanError
from screens.validators import Checked, local_file_problem
from screens.widgets.form_field import FormField
from screens.wizard_screen import PaletteAction, WizardScreen


def check_plan_path(value: str) -> str | None:
    """A plan path the user typed: a file, or a new file to create."""
    return local_file_problem(value, must_exist=False)


class WelcomeScreen(WizardScreen):
    STEP = "welcome"
    SHOW_BACK = False
    NEXT_LABEL = "Continue ›"

    INTRO: ClassVar[str] = (
        "regwiz takes you from nothing to a private TLS container registry that every "
        "Kubernetes node trusts: certificates, deployment, node onboarding, verification "
        "and a live status panel. Everything you choose is kept in a plan file."
    )

    def compose_body(self) -> ComposeResult:
        yield Static(self.INTRO, id="intro")
        with Horizontal(id="welcome-columns"):
            with Vertical(id="welcome-start"):
                yield FormField(
                    "Plan file",
                    field_id="plan-path",
                    value=str(self.wizard.plan_path),
                    validators=[Checked(check_plan_path)],
                    help_text="Open it if it exists; New plan saves a fresh one there.",
                )
                with Horizontal(classes="button-row"):
                    yield Button("Open", id="open-plan", variant="primary", compact=True)
                    yield Button("New plan", id="new-plan", compact=True)
                with Horizontal(classes="button-row"):
                    yield Button("I already have a registry", id="external-registry",
                                 compact=True)
            with Vertical(id="welcome-recent"):
                yield Label("Recent plans", classes="field-label")
                yield OptionList(id="recent-plans")
        yield Static("", id="plan-state", markup=False)
        with Horizontal(classes="button-row", id="shortcuts"):
            yield Button("Re-run node onboarding", id="goto-onboarding", compact=True)
            yield Button("Status", id="goto-status", compact=True)

    def on_mount(self) -> None:
        recent = self.wizard.recent.load()
        options = self.query_one("#recent-plans", OptionList)
        options.add_options([Option(str(path), id=str(path)) for path in recent])
        if not recent:
            options.add_option(Option("(none yet)", disabled=True))
        opens_at_start = self.wizard.plan is None and self.wizard.plan_path.is_file()
        # A failed open already shows why; the default state would hide that.
        if opens_at_start and not self.open_path(self.wizard.plan_path, quiet=True):
            return
        self.show_plan_state()

    # --- actions -----------------------------------------------------------------------------

    def open_path(self, path: Path, *, quiet: bool = False) -> bool:
        try:
            plan = self.wizard.open_plan(path)
        except PlanError as error:
            self.show_plan_state("\n".join(["Cannot open this plan:", *error.problems]), error=True)
            return False
        self.query_one("#plan-path", Input).value = str(path)
        if not quiet:
            self.notify(f"Opened {path} ({len(plan.nodes)} nodes)")
        self.show_plan_state()
        return True

    def new_plan(self, path: Path, *, external: bool = False) -> None:
        """A fresh plan at ``path``; ``external``: for a registry regwiz did not deploy."""
        plan = self.wizard.start_new_plan(path)
        plan.registry.managed = not external
        self.show_plan_state()
        self.wizard.goto("external" if external else "certificate")

    def show_plan_state(self, text: str | None = None, *, error: bool = False) -> None:
        state = self.query_one("#plan-state", Static)
        plan = self.wizard.plan
        if text is None:
            if plan is None:
                text = "No plan open: Continue starts a new one."
            else:
                where = (f"on {plan.registry.host}" if plan.registry.managed
                         else "(yours: regwiz onboards, verifies and watches the nodes)")
                text = (
                    f"Open: {self.wizard.plan_path}\n"
                    f"registry {plan.registry_reference} {where}, {len(plan.nodes)} node(s)"
                )
        state.update(text)
        state.set_class(error, "-error")
        has_plan = plan is not None and self.wizard.plan_path.is_file()
        for button_id in ("#goto-onboarding", "#goto-status"):
            self.query_one(button_id, Button).disabled = not has_plan

    def typed_path(self) -> Path | None:
        field = self.field("plan-path")
        field.reveal()
        return None if field.problem else expand_user(field.value)

    def action_open(self) -> None:
        path = self.typed_path()
        if path is not None:
            self.open_path(path)

    def action_new(self, external: bool = False) -> None:
        path = self.typed_path()
        if path is None:
            return
        if not path.exists():
            self.new_plan(path, external=external)
            return
        from screens.confirm import ConfirmModal

        def decide(replace: bool | None) -> None:
            if replace:
                self.new_plan(path, external=external)

        self.app.push_screen(
            ConfirmModal(
                "Replace the existing plan?",
                f"{path} exists. A new plan replaces it when you continue "
                "(the old content is kept as .bak).",
                confirm_label="Start a new plan",
                cancel_label="Keep it",
            ),
            decide,
        )

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {
            "open-plan": self.action_open,
            "new-plan": self.action_new,
            "external-registry": lambda: self.action_new(external=True),
            "goto-onboarding": lambda: self.wizard.goto("onboarding"),
            "goto-status": lambda: self.wizard.goto("status"),
        }

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.open_path(Path(event.option.id))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "plan-path":
            self.action_open()

    # --- wizard hooks --------------------------------------------------------------------------

    def commit(self) -> bool:
        if self.wizard.plan is None:
            path = self.typed_path()
            if path is None:
                return False
            self.wizard.start_new_plan(path)
        return True

    def palette_actions(self) -> list[PaletteAction]:
        return [
            ("Open plan file", "Open the plan named in the path field", self.action_open),
            ("New plan", "Start a new plan at the path in the field", self.action_new),
            ("I already have a registry",
             "A plan that onboards nodes to a registry regwiz did not deploy",
             lambda: self.action_new(external=True)),
        ]
