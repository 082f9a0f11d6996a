"""Step 5: deploy the registry container, with live step state, a log pane and retry.

app.deploy.deploy runs the steps in a thread worker; their progress arrives here as StepProgress
messages and the outcome as one DeployFinished (a DeployReport, kept in the session) or JobFailed.
A dry run lists the steps without connecting. On a failure the container's log tail is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, RichLog
from textual.worker import Worker, get_current_worker

from app.steps import Outcome, StepResult, format_result, summarize
from app.terminal_text import plain_text
from screens.host_key_prompt import ask_host_key_policy
from screens.messages import DeployFinished, JobFailed, StepProgress, StepsPlanned
from screens.secret_flow import ask_missing_secrets, secret_needs
from screens.widgets.step_table import StepTable
from screens.wizard_screen import PaletteAction, WizardScreen

if TYPE_CHECKING:
    from app.deploy import DeployReport
    from app.htpasswd import Credentials

JOB = "deploy"


def credentials_file(plan_path: Path) -> Path:
    """Where the TUI keeps a generated registry password (0600, next to the plan)."""
    return plan_path.with_name("registry-credentials.json")


def saved_credentials(plan_path: Path) -> Credentials | None:
    """The registry login a deploy saved next to the plan, if any (verify and status use it)."""
    from app.htpasswd import read_credentials

    stored = credentials_file(plan_path)
    return read_credentials(stored) if stored.is_file() else None


class DeployScreen(WizardScreen):
    STEP = "deploy"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "deploy", "Deploy"),
        Binding("escape", "cancel", "Cancel job", show=False),
    ]

    cancel_asked = False  # Cancel was pressed during the current run

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="button-row", id="deploy-controls"):
            yield Button("Deploy", id="deploy", variant="primary", compact=True)
            yield Button("Cancel", id="cancel-job", disabled=True, compact=True)
            yield Checkbox("dry run (change nothing)", False, id="dry-run", compact=True)
        yield StepTable(id="steps")
        yield RichLog(id="log", wrap=True, markup=False, max_lines=2000)

    def on_mount(self) -> None:
        plan = self.wizard.require_plan()
        self.log_line(f"registry {plan.registry_reference} on {plan.registry.host}, "
                      f"image {plan.registry.image}, container {plan.registry.container_name}")
        self.log_line("Deploy (F5) runs the steps; turn on dry run to only list them.")
        from app.deploy.mirrors import mirror_notes

        for note in mirror_notes(plan):  # who may pull from each cache
            self.log_line(f"note: {note}")
        last = self.wizard.session.deploy
        if last is not None and last.results:
            self.query_one(StepTable).show_steps([(r.what, r.where) for r in last.results])
            for result in last.results:
                self.query_one(StepTable).update_step(result)

    # --- controls ------------------------------------------------------------------------------

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {"deploy": self.action_deploy, "cancel-job": self.action_cancel}

    def action_deploy(self) -> None:
        if self.wizard.busy_workers():
            return
        dry_run = self.query_one("#dry-run", Checkbox).value
        self.set_running(True)
        self.query_one(RichLog).clear()
        self.run_deploy(dry_run)

    def action_cancel(self) -> None:
        if self.workers.cancel_group(self, JOB):
            self.cancel_asked = True  # the report then says which steps did not run
        self.log_line("cancelling: the running step finishes first")

    def set_running(self, running: bool) -> None:
        # Disabling the focused Deploy button would pass the focus to Cancel: Enter stopped it.
        self.set_focus(self.query_one(StepTable))  # also under a modal (see onboarding)
        if running:
            self.cancel_asked = False
        deploy = self.query_one("#deploy", Button)
        deploy.disabled = running
        self.query_one("#cancel-job", Button).disabled = not running
        self.query_one("#dry-run", Checkbox).disabled = running
        if not running and self.wizard.session.deploy is not None:
            deploy.label = "Retry"

    def log_line(self, text: str) -> None:
        self.query_one(RichLog).write(plain_text(text))  # container logs are data

    # --- the job --------------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group=JOB, name="Deploy")
    def run_deploy(self, dry_run: bool) -> None:
        from app.connections import open_registry_transport
        from app.deploy import DeployOptions, deploy, local_docker_client

        worker = get_current_worker()
        plan = self.wizard.require_plan()
        secrets = self.wizard.secrets
        policy = ask_host_key_policy(self.wizard)
        options = DeployOptions(
            credentials_file=credentials_file(self.wizard.plan_path),
            local_docker=local_docker_client,
        )
        def planned(steps: list[tuple[str, str]]) -> None:
            self.post_message(StepsPlanned(JOB, steps))

        def progress(result: StepResult) -> None:
            self.post_message(StepProgress(result, JOB))

        self.report_job(JOB, lambda: deploy(
            plan, secrets, options,
            connect=lambda: open_registry_transport(plan, secrets, policy),
            dry_run=dry_run, on_planned=planned, on_progress=progress,
            should_stop=lambda: worker.is_cancelled,
        ), DeployFinished)

    def on_steps_planned(self, message: StepsPlanned) -> None:
        self.query_one(StepTable).show_steps(message.steps)

    def on_step_progress(self, message: StepProgress) -> None:
        self.query_one(StepTable).update_step(message.result)
        if message.result.outcome.is_final:
            self.log_line(format_result(message.result))

    def on_deploy_finished(self, message: DeployFinished) -> None:
        report = message.report
        if report.dry_run:
            for block in report.dry_run_lines:
                self.log_line(block)
            self.log_line("dry run: nothing was connected to or changed")
        else:
            self.wizard.session.deploy = report
            self.report(report)
        self.set_running(False)
        host = self.wizard.require_plan().registry.host
        needs = secret_needs([(host, step.kind) for step in report.failed])
        if needs:
            ask_missing_secrets(self.wizard, needs, "deploy the registry there",
                                lambda hosts: self.action_deploy() if hosts else None)

    def on_job_failed(self, message: JobFailed) -> None:
        self.log_line(f"failed: {message.error}")
        if message.hint:
            self.log_line(f"hint: {message.hint}")
        self.set_running(False)

    def report(self, report: DeployReport) -> None:
        counts = summarize(report.results)
        self.log_line(f"deploy: {counts['changed']} changed, {counts['unchanged']} unchanged, "
                      f"{counts['failed']} failed")
        skipped = [r for r in report.results if r.outcome is Outcome.SKIPPED]
        if self.cancel_asked and skipped:
            self.log_line(f"cancelled: stopped before {skipped[0].what!r}; "
                          f"{len(skipped)} step(s) not run")
        if report.log_tail:
            self.log_line("--- container log (last lines) ---")
            self.log_line(report.log_tail)
        if report.generated_password:
            self.log_line(f"a registry password was generated and saved to "
                          f"{report.credentials_file} (mode 0600)")
        if report.created_accounts:
            self.log_line(f"accounts created: {', '.join(report.created_accounts)}; each login "
                          "is credentials/NAME.json next to the plan (0600; passwords are never "
                          "shown; manage them on the Status step: Accounts…)")
        if not counts["failed"] and report.container_id:
            self.log_line(f"registry ready: {report.registry.api_url}"
                          f" (container {report.container_id[:12]})")

    def worker_failed(self, worker: Worker[object]) -> None:
        self.set_running(False)

    def palette_actions(self) -> list[PaletteAction]:
        return [("Deploy registry", "Run the deploy steps on the registry host",
                 self.action_deploy),
                ("Cancel deploy", "Stop after the running step", self.action_cancel)]
