"""Step 8: prove the registry works end to end: push/pull a self-test image, then pull it on
every node with the runtime it really uses. app.verify.verify runs in a thread worker; its events
arrive as VerifyProgressed, its report as VerifyFinished (kept in the session). The nodes' unknown
host keys are decided on one screen before it starts (screens.host_key_prompt.review_host_keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, Static
from textual.worker import Worker, get_current_worker

from app.terminal_text import plain_text
from app.verify import CheckState, NodeVerifyResult, PushPullResult, VerifyProgress, VerifyReport
from screens.deploy import saved_credentials
from screens.host_key_prompt import ask_host_key_policy, review_host_keys
from screens.messages import JobFailed, VerifyFinished, VerifyProgressed
from screens.node_log import NodeLogModal
from screens.widgets.node_rows import Column, NodeRow, NodeRows
from screens.wizard_screen import PaletteAction, WizardScreen

JOB = "verify"
COLUMNS = (Column("host", "host", 15), Column("state", "state", 7),
           Column("check", "check", 24), Column("outcome", "outcome", None))
STATE_STYLE = {
    CheckState.PASSED: "bold green", CheckState.FAILED: "bold red",
    CheckState.RUNNING: "bold cyan", CheckState.SKIPPED: "dim", CheckState.PENDING: "dim",
}


def state_text(state: CheckState) -> Text:
    return Text(state.value, style=STATE_STYLE.get(state, ""))


def push_pull_text(result: PushPullResult | None, state: CheckState = CheckState.PENDING,
                   message: str = "") -> Text:
    text = Text("push / pull: ", style="bold")
    if result is None:
        text.append_text(state_text(state))
        if message:
            text.append(plain_text(f"  {message}"))
        return text
    text.append_text(state_text(result.state))
    text.append(f"  {result.reference} from {result.source}")
    # A digest is 71 characters: on a line of its own it fits 80 columns instead of wrapping.
    if result.pushed_digest and result.pushed_digest == result.pulled_digest:
        text.append(f"\n  pushed and pulled back (the same digest):\n    {result.pushed_digest}")
    else:
        if result.pushed_digest:
            text.append(f"\n  pushed:\n    {result.pushed_digest}")
        if result.pulled_digest:
            text.append(f"\n  pulled:\n    {result.pulled_digest}")
    for label, value in (("", result.message), ("hint: ", result.hint or ""),
                         ("note: ", result.note), ("cleanup: ", result.cleanup)):
        if value:
            text.append(plain_text(f"\n  {label}{value}"))  # remote output is data
    return text


def checks_text(result: NodeVerifyResult) -> Text:
    """Each check the node ran, marked passed or failed: the "check" column."""
    text = Text()
    for index, check in enumerate(result.checks):
        text.append(", " if index else "")
        text.append("✓ " if check.passed else "✗ ", style="green" if check.passed else "red")
        text.append(check.kind)
    return text or Text("-", style="dim")


def outcome_text(result: NodeVerifyResult) -> str:
    """What the other columns do not say already: the failing check's error, the digest pulled.

    ``result.message`` repeats the check kinds ("passed: docker pull", "docker pull: x509...")
    that the check column shows, so it is used only for a node that ran no check (skipped,
    unreachable).
    """
    failing = next((check for check in result.checks if not check.passed), None)
    if failing is not None:
        return failing.detail
    if not result.checks:
        return result.message
    # The short digest is enough to compare with the push line; the node log has it whole.
    digests = sorted({check.digest[:19] for check in result.checks if check.digest})
    return f"digest {', '.join(digests)}" if digests else "ok"


def node_lines(result: NodeVerifyResult) -> list[str]:
    lines = [f"state: {result.state.value}",
             f"runtimes: {', '.join(result.runtimes) or 'none'}"]
    for check in result.checks:
        lines.append(f"{'✓' if check.passed else '✗'} {check.kind}: {check.command}")
        lines.append(f"    {check.detail}")
        if check.digest:
            lines.append(f"    digest {check.digest}")
        if check.hint:
            lines.append(f"    hint: {check.hint}")
    if result.message:
        lines.append(result.message)
    if result.hint:
        lines.append(f"hint: {result.hint}")
    return [plain_text(line) for line in lines]


class VerifyScreen(WizardScreen):
    STEP = "verify"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "verify", "Verify"),
        Binding("escape", "cancel", "Cancel job", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report: VerifyReport | None = None
        self.cancel_asked = False  # Cancel was pressed during the current run

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="button-row", id="verify-controls"):
            yield Button("Verify", id="verify", variant="primary", compact=True)
            yield Button("Cancel", id="cancel-job", disabled=True, compact=True)
            yield Checkbox("push from this machine's Docker", False, id="from-local",
                           compact=True)
        yield Static(push_pull_text(None), id="push-pull", classes="summary")
        yield Static(id="verify-header", classes="rows-header")
        yield NodeRows(COLUMNS, id="verify-table")

    def on_mount(self) -> None:
        # regwiz pushes nothing to a registry it did not deploy: nodes pull the plan's image
        self.query_one("#from-local", Checkbox).display = self.wizard.require_plan(
            ).registry.managed
        rows = self.query_one(NodeRows)
        self.query_one("#verify-header", Static).update(rows.header())
        rows.set_rows([(node.host, {"host": Text(node.host),
                                    "state": state_text(CheckState.PENDING)})
                       for node in self.wizard.require_plan().resolved_nodes()])
        last = self.wizard.session.verify
        if last is not None:
            self.show_report(last)

    # --- controls -------------------------------------------------------------------------------

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {"verify": self.action_verify, "cancel-job": self.action_cancel}

    def action_verify(self) -> None:
        if self.wizard.busy_workers():
            return
        self.set_running(True)
        self.query_one("#push-pull", Static).update(
            push_pull_text(None, CheckState.RUNNING, "building and pushing the self-test image"
                           if self.wizard.require_plan().registry.managed
                           else "looking up the image every node will pull"))
        self.run_verify(self.query_one("#from-local", Checkbox).value)

    def action_cancel(self) -> None:
        if self.workers.cancel_group(self, JOB):
            self.cancel_asked = True  # the report then names the nodes not checked
            self.notify("Cancelling: checks already running finish first.")

    def set_running(self, running: bool) -> None:
        # Disabling the focused Verify button would pass the focus to Cancel: Enter stopped it.
        self.set_focus(self.query_one(NodeRows))  # also under a modal (see onboarding)
        if running:
            self.cancel_asked = False
        self.query_one("#verify", Button).disabled = running
        self.query_one("#cancel-job", Button).disabled = not running
        self.query_one("#from-local", Checkbox).disabled = running

    # --- the job --------------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group=JOB, name="Verify")
    def run_verify(self, from_local: bool) -> None:
        from app import verify

        worker = get_current_worker()
        plan = self.wizard.require_plan()
        policy = ask_host_key_policy(self.wizard)

        def progress(event: VerifyProgress) -> None:
            self.post_message(VerifyProgressed(event))

        def run() -> VerifyReport:
            # Every unknown node host key on one screen first, not one question per node.
            rejected = review_host_keys(self.wizard, plan.resolved_nodes(), policy)
            return verify.verify(
                plan, self.wizard.secrets, host_key_policy=policy, from_local=from_local,
                credentials=saved_credentials(self.wizard.plan_path), on_progress=progress,
                should_stop=lambda: worker.is_cancelled, rejected_host_keys=rejected)

        self.report_job(JOB, run, VerifyFinished)

    def on_verify_progressed(self, message: VerifyProgressed) -> None:
        event = message.progress
        if event.target == "registry":
            self.query_one("#push-pull", Static).update(
                push_pull_text(None, event.state, event.message))
            return
        rows = self.query_one(NodeRows)
        if event.state is CheckState.PASSED:
            # "passed: docker pull" would say "passed" twice: the kinds go to the check column.
            rows.update_row(event.target, state=state_text(event.state), outcome="",
                            check=plain_text(event.message.removeprefix(f"{event.state.value}: ")))
            return
        rows.update_row(event.target, state=state_text(event.state),
                        outcome=Text(plain_text(event.message)))

    def on_job_failed(self, message: JobFailed) -> None:
        self.set_running(False)
        hint = f"\n  hint: {message.hint}" if message.hint else ""
        self.query_one("#push-pull", Static).update(
            push_pull_text(None, CheckState.FAILED, f"{message.error}{hint}"))

    def on_verify_finished(self, message: VerifyFinished) -> None:
        cancelled = self.cancel_asked
        self.set_running(False)
        self.wizard.session.verify = message.report
        self.show_report(message.report)
        unchecked = [node.host for node in message.report.nodes if not node.checks]
        if cancelled and unchecked:
            status = self.query_one("#push-pull", Static)
            text = push_pull_text(message.report.push_pull)
            text.append(f"\ncancelled: not checked: {', '.join(unchecked)}", style="bold")
            status.update(text)

    def show_report(self, report: VerifyReport) -> None:
        self.report = report
        self.query_one("#push-pull", Static).update(push_pull_text(report.push_pull))
        rows = self.query_one(NodeRows)
        for result in report.nodes:
            rows.update_row(result.host, state=state_text(result.state),
                            check=checks_text(result),
                            outcome=Text(plain_text(outcome_text(result))))

    def worker_failed(self, worker: Worker[object]) -> None:
        self.set_running(False)

    def on_list_view_selected(self, event: NodeRows.Selected) -> None:
        if not isinstance(event.item, NodeRow):
            return
        host = event.item.host
        results = self.report.nodes if self.report else []
        result = next((r for r in results if r.host == host), None)
        self.app.push_screen(NodeLogModal(host, node_lines(result) if result else []))

    def palette_actions(self) -> list[PaletteAction]:
        return [("Verify push and pull", "Push the self-test image and pull it on every node",
                 self.action_verify)]
