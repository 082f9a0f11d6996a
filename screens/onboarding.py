"""Step 7: install the CA on every node, in parallel, with a live row per node.

app.onboard.onboard_nodes does the work in a thread worker; its NodeProgress events arrive as
NodeProgressed messages, which are coalesced per host and drawn at most every FLUSH_SECONDS (30
nodes send ~240 events in a few seconds; drawing each one stalled the event loop). Cancel
stops between steps; Retry failed re-runs only the failed nodes;
Enter on a row opens that node's log. Rows are widgets of their own (screens.widgets.node_rows)
so one node's update never re-renders the others. The report arrives as OnboardFinished.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Button, Checkbox, ProgressBar, Static
from textual.worker import Worker, get_current_worker

from app import onboard
from app.errors import RegwizError
from app.steps import Outcome, StepResult, format_result
from app.terminal_text import plain_text
from screens.host_key_prompt import ask_host_key_policy
from screens.messages import JobFailed, NodeProgressed, OnboardFinished
from screens.node_log import NodeLogModal
from screens.widgets.node_rows import Column, NodeRow, NodeRows
from screens.wizard_screen import PaletteAction, WizardScreen

JOB = "onboarding"
FLUSH_SECONDS = 0.1  # live rows lag at most this much; fast enough to read as live
COLUMNS = (Column("host", "host", 17), Column("state", "state", 10),
           Column("runtime", "runtime", 13), Column("changed", "changed", 7),
           Column("time", "time", 6), Column("detail", "detail", None))
STATE_STYLE = {
    onboard.CHANGED: "bold yellow", onboard.UNCHANGED: "green", onboard.FAILED: "bold red",
    onboard.CANCELLED: "red", onboard.PLANNED: "cyan", onboard.PENDING: "dim", "not run": "dim",
}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, "bold cyan"))


# INTEGRATOR: once app.onboard has NodeResult.from_dict (runtimes branch), load_results gives
# typed NodeResults: result_lines and _outcome below then read NodeResult fields (or go), and
# fill_rows / action_retry_failed read attributes instead of dict keys. Do not parse here.
def result_lines(result: dict[str, Any]) -> list[str]:
    """A saved or fresh NodeResult (as a dict) as log lines for the node log modal."""
    lines = [f"status: {result.get('status', '?')}"
             + (f" ({result['reason']})" if result.get("reason") else "")]
    if result.get("os_family") or result.get("runtimes"):
        lines.append(f"os: {result.get('os_family') or '?'}, "
                     f"runtimes: {', '.join(result.get('runtimes') or []) or 'none'}")
    for step in result.get("steps") or []:
        if isinstance(step, dict):
            lines.append(format_result(StepResult(
                step.get("what", ""), step.get("where", ""), _outcome(step.get("outcome")),
                step.get("message", ""), step.get("hint"), float(step.get("seconds") or 0))))
    lines += [f"would: {line}" for line in result.get("dry_run_lines") or []]
    lines += [f"wrote {path}" for path in result.get("changed_files") or []]
    lines += [f"restarted {name}" for name in result.get("restarted") or []]
    if result.get("message"):
        lines.append(str(result["message"]))
    if result.get("hint"):
        lines.append(f"hint: {result['hint']}")
    return lines


def _outcome(value: object) -> Outcome:
    try:
        return Outcome(str(value))
    except ValueError:
        return Outcome.FAILED


class OnboardingScreen(WizardScreen):
    STEP = "onboarding"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "onboard_all", "Onboard all"),
        Binding("f6", "retry_failed", "Retry failed"),
        Binding("escape", "cancel", "Cancel job", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.node_logs: dict[str, list[str]] = {}
        self.finished: set[str] = set()
        # The newest not yet drawn event per host, and runtimes an older event reported.
        self.pending: dict[str, onboard.NodeProgress] = {}
        self.pending_runtimes: dict[str, str] = {}
        self.flush_timer: Timer | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="button-row", id="onboard-controls"):
            yield Button("Onboard all", id="onboard-all", variant="primary", compact=True)
            yield Button("Retry failed", id="retry-failed", disabled=True, compact=True)
            yield Button("Cancel", id="cancel-job", disabled=True, compact=True)
            yield Checkbox("dry run", False, id="dry-run", compact=True)
        yield ProgressBar(id="onboard-progress", show_eta=False)
        yield Static(id="onboard-header", classes="rows-header")
        yield NodeRows(COLUMNS, id="onboard-table")
        yield Static("", id="onboard-summary", markup=False)

    def on_mount(self) -> None:
        rows = self.query_one(NodeRows)
        self.query_one("#onboard-header", Static).update(rows.header())
        self.fill_rows()
        self.flush_timer = self.set_interval(FLUSH_SECONDS, self.flush_progress, pause=True)

    # --- rows ----------------------------------------------------------------------------------

    def fill_rows(self) -> None:
        """One row per plan node, showing the last saved result when there is one."""
        plan = self.wizard.require_plan()
        try:
            saved = onboard.load_results(plan)  # raw dicts: see INTEGRATOR above result_lines
        except RegwizError as error:
            saved = {}
            self.notify(error.message, severity="warning")
        rows: list[tuple[str, dict[str, Text]]] = []
        for node in plan.resolved_nodes():
            last = saved.get(node.host)
            values = {"host": Text(node.host), "state": state_text("not run"),
                      "runtime": Text(node.runtime)}
            if last:
                self.node_logs[node.host] = ["(last run)", *result_lines(last)]
                values.update(
                    state=state_text(str(last.get("status", "?"))),
                    runtime=Text(", ".join(last.get("runtimes") or []) or node.runtime),
                    changed=Text(str(len(last.get("changed_files") or []))),
                    time=Text(f"{float(last.get('seconds') or 0):.1f}s"),
                    detail=Text(str(last.get("reason") or last.get("message") or "")),
                )
            rows.append((node.host, values))
        self.query_one(NodeRows).set_rows(rows)
        self.query_one("#retry-failed", Button).disabled = not any(
            r.get("status") in (onboard.FAILED, onboard.CANCELLED) for r in saved.values()
        )
        count = len(plan.nodes)
        # A determinate bar from the start: an indeterminate one animates (and never settles).
        self.query_one(ProgressBar).update(total=max(count, 1), progress=0)
        self.query_one("#onboard-summary", Static).update(
            f"{count} node(s); registry {plan.registry_reference}" if count
            else "No nodes in the plan: add them on the Nodes step."
        )
        self.query_one("#onboard-all", Button).disabled = count == 0

    def on_node_progressed(self, message: NodeProgressed) -> None:
        """Log every event now; keep only the newest per host for the next flush."""
        progress = message.progress
        if progress.host not in self.query_one(NodeRows).by_host:
            return
        self.node_logs.setdefault(progress.host, []).append(
            plain_text(f"{progress.state}: {progress.message}"))  # remote text
        self.pending[progress.host] = progress
        if progress.runtime:
            self.pending_runtimes[progress.host] = progress.runtime
        if progress.state in onboard.FINAL_STATES:
            self.finished.add(progress.host)

    def flush_progress(self) -> None:
        """Draw the newest event of each host that reported since the last flush."""
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        runtimes, self.pending_runtimes = self.pending_runtimes, {}
        rows = self.query_one(NodeRows)
        for host, progress in pending.items():
            values: dict[str, Text | str] = {
                "state": state_text(progress.state), "changed": str(len(progress.changed_files)),
                "time": f"{progress.seconds:.1f}s", "detail": Text(plain_text(progress.message))}
            if host in runtimes:
                values["runtime"] = runtimes[host]
            rows.update_row(host, **values)
        self.query_one(ProgressBar).update(progress=len(self.finished))

    def stop_flushing(self) -> None:
        """The job ended: draw what is left now and let the timer sleep until the next job."""
        if self.flush_timer is not None:
            self.flush_timer.pause()
        self.flush_progress()

    # --- controls ------------------------------------------------------------------------------

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {"onboard-all": self.action_onboard_all,
                "retry-failed": self.action_retry_failed,
                "cancel-job": self.action_cancel}

    def action_onboard_all(self) -> None:
        self.start(None)

    def action_retry_failed(self) -> None:
        try:
            failed = [r["host"] for r in onboard.failed_hosts(self.wizard.require_plan())]
        except RegwizError as error:
            self.wizard.show_error("Cannot read the last results", error)
            return
        if not failed:
            self.notify("No failed nodes to retry.")
            return
        self.start(failed)

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, JOB)
        self.notify("Cancelling: running steps finish first.")

    def start(self, only: list[str] | None) -> None:
        if self.wizard.busy_workers() or not self.wizard.save_plan():
            return
        plan = self.wizard.require_plan()
        hosts = only or [node.host for node in plan.nodes]
        self.finished = set()
        for host in hosts:
            self.node_logs[host] = []
        bar = self.query_one(ProgressBar)
        bar.update(total=len(hosts), progress=0)
        self.set_running(True)
        if self.flush_timer is not None:
            self.flush_timer.resume()
        self.run_onboarding(only, self.query_one("#dry-run", Checkbox).value)

    def set_running(self, running: bool) -> None:
        self.query_one("#onboard-all", Button).disabled = running
        self.query_one("#retry-failed", Button).disabled = running
        self.query_one("#cancel-job", Button).disabled = not running
        self.query_one("#dry-run", Checkbox).disabled = running

    @work(thread=True, exit_on_error=False, group=JOB, name="Onboarding")
    def run_onboarding(self, only: list[str] | None, dry_run: bool) -> None:
        worker = get_current_worker()
        policy = ask_host_key_policy(self.wizard)

        def progress(event: onboard.NodeProgress) -> None:
            self.post_message(NodeProgressed(event))

        try:
            report = onboard.onboard_nodes(
                self.wizard.require_plan(), self.wizard.secrets, only=only, dry_run=dry_run,
                host_key_policy=policy, on_progress=progress,
                should_stop=lambda: worker.is_cancelled,
            )
        except RegwizError as error:
            self.post_message(JobFailed(JOB, error.message, error.hint))
            return
        self.post_message(OnboardFinished(report))

    def on_job_failed(self, message: JobFailed) -> None:
        self.stop_flushing()
        self.set_running(False)
        hint = f"\nhint: {message.hint}" if message.hint else ""
        self.query_one("#onboard-summary", Static).update(f"✗ {message.error}{hint}")

    def on_onboard_finished(self, message: OnboardFinished) -> None:
        self.stop_flushing()
        self.set_running(False)
        summary = self.query_one("#onboard-summary", Static)
        report = message.report
        self.wizard.session.onboarding = report
        for result in report.results:
            self.node_logs.setdefault(result.host, []).extend(result_lines(result.to_dict()))
        counts = report.counts()
        text = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        summary.update(f"{'dry run: ' if report.dry_run else ''}{text or 'no nodes'} "
                       f"in {report.seconds:.1f} s")
        self.query_one("#retry-failed", Button).disabled = not report.failed or report.dry_run

    def worker_failed(self, worker: Worker[object]) -> None:
        self.stop_flushing()
        self.set_running(False)

    def on_list_view_selected(self, event: NodeRows.Selected) -> None:
        if isinstance(event.item, NodeRow):
            host = event.item.host
            self.app.push_screen(NodeLogModal(host, self.node_logs.get(host, [])))

    def palette_actions(self) -> list[PaletteAction]:
        return [("Onboard all nodes", "Install the CA on every node", self.action_onboard_all),
                ("Retry failed nodes", "Run only the nodes that failed last time",
                 self.action_retry_failed),
                ("Cancel onboarding", "Stop between steps", self.action_cancel)]
