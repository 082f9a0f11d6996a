"""Step 7: install the CA on every node, in parallel, with a live row per node.

app.onboard.onboard_nodes does the work in a thread worker; its NodeProgress events arrive as
NodeProgressed messages, which are coalesced per host and drawn at most every FLUSH_SECONDS (30
nodes send ~240 events in a few seconds; drawing each one stalled the event loop). Cancel
stops between steps; Retry failed re-runs only the failed nodes;
Enter on a row opens that node's log. Restarts come in waves once every node's files are
written: a node waiting for its wave shows "waiting", the summary names the waves and the
canary (app.runtimes.restarts). Rows are widgets of their own (screens.widgets.node_rows)
so one node's update never re-renders the others. The report arrives as OnboardFinished.
Before the nodes start, all their host keys are read and the unknown ones decided on one screen
(screens.host_key_prompt.review_host_keys); a node's time leaves out its waits for the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

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
from app.runtimes.restarts import wave_summary
from app.steps import Outcome, format_result
from app.terminal_text import plain_text
from screens.host_key_prompt import ask_host_key_policy, review_host_keys
from screens.messages import JobFailed, NodeProgressed, OnboardFinished
from screens.node_log import NodeLogModal
from screens.secret_flow import ask_missing_secrets, secret_needs
from screens.widgets.node_rows import Column, NodeRow, NodeRows
from screens.wizard_screen import PaletteAction, WizardScreen

JOB = "onboarding"
FLUSH_SECONDS = 0.1  # live rows lag at most this much; fast enough to read as live
# Narrow fixed columns leave the detail room at 80 columns; longer values wrap in their cell.
COLUMNS = (Column("host", "host", 15), Column("state", "state", 10),
           Column("runtime", "runtime", 10), Column("changed", "changed", 7),
           Column("time", "time", 6), Column("detail", "detail", None))
STATE_STYLE = {
    onboard.CHANGED: "bold yellow", onboard.UNCHANGED: "green", onboard.FAILED: "bold red",
    onboard.CANCELLED: "red", onboard.PLANNED: "cyan", onboard.PENDING: "dim", "not run": "dim",
    onboard.WAITING: "cyan",
}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, "bold cyan"))


def result_lines(result: onboard.NodeResult) -> list[str]:
    """A saved or fresh node result as log lines for the node log modal."""
    lines = [f"status: {result.status}" + (f" ({result.reason})" if result.reason else "")]
    if result.os_family or result.runtimes:
        lines.append(f"os: {result.os_family or '?'}, "
                     f"runtimes: {', '.join(result.runtimes) or 'none'}")
    lines += [format_result(step) for step in result.steps]
    lines += [f"would: {line}" for line in result.dry_run_lines]
    lines += [f"wrote {path}" for path in result.changed_files]
    lines += [f"restarted {name}" for name in result.restarted]
    if result.message:
        lines.append(result.message)
    if result.hint:
        lines.append(f"hint: {result.hint}")
    if result.waited:
        lines.append(f"time: {result.seconds:.1f}s, not counting {result.waited:.1f}s waiting "
                     "for your answer")
    return lines


def cancel_summary(report: onboard.OnboardReport) -> str:
    """What a cancel stopped: the nodes stopped part-way (before which step) and those never
    started; "" when nothing was cancelled."""
    cancelled = [r for r in report.results if r.status == onboard.CANCELLED]
    stopped = [f"{r.host} stopped before {_first_skipped(r)}" for r in cancelled if r.steps]
    not_started = [r.host for r in cancelled if not r.steps]
    parts = stopped + ([f"not started: {', '.join(not_started)}"] if not_started else [])
    return f"\ncancelled: {'; '.join(parts)}" if parts else ""


def _first_skipped(result: onboard.NodeResult) -> str:
    step = next((s for s in result.steps if s.outcome is Outcome.SKIPPED), None)
    return step.what if step else "its next step"


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
        self.open_log: NodeLogModal | None = None  # the node log being shown, which follows

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
            saved = onboard.load_node_results(plan)
        except RegwizError as error:
            saved = {}
            self.notify(error.message, severity="warning")
        detected = self.detected_runtimes(saved)
        rows: list[tuple[str, dict[str, Text]]] = []
        for node in plan.resolved_nodes():
            last = saved.get(node.host)
            values = {"host": Text(node.host), "state": state_text("not run"),
                      "runtime": Text(detected.get(node.host) or node.runtime)}
            if last:
                self.node_logs[node.host] = ["(last run)", *result_lines(last)]
                values.update(
                    state=state_text(str(last.status)),
                    changed=Text(str(len(last.changed_files))),
                    time=Text(f"{last.seconds:.1f}s"),
                    detail=Text(last.reason or last.message),
                )
            rows.append((node.host, values))
        self.query_one(NodeRows).set_rows(rows)
        self.query_one("#retry-failed", Button).disabled = not any(
            r.status in (onboard.FAILED, onboard.CANCELLED) for r in saved.values()
        )
        count = len(plan.nodes)
        # A determinate bar from the start: an indeterminate one animates (and never settles).
        self.query_one(ProgressBar).update(total=max(count, 1), progress=0)
        self.query_one("#onboard-summary", Static).update(
            f"{count} node(s); registry {plan.registry_reference}" if count
            else "No nodes in the plan: add them on the Nodes step."
        )
        self.query_one("#onboard-all", Button).disabled = count == 0

    def detected_runtimes(self, saved: dict[str, onboard.NodeResult]) -> dict[str, str]:
        """host -> the runtimes a run detected: this session's last run (dry runs are not
        saved), else the results file; a session run that detected none keeps the file's."""
        found = {host: ", ".join(r.runtimes) for host, r in saved.items()}
        if (report := self.wizard.session.onboarding) is not None:
            found.update({r.host: ", ".join(r.runtimes) for r in report.results if r.runtimes})
        return {host: runtimes for host, runtimes in found.items() if runtimes}

    def on_node_progressed(self, message: NodeProgressed) -> None:
        """Log every event now; keep only the newest per host for the next flush."""
        progress = message.progress
        if progress.host not in self.query_one(NodeRows).by_host:
            return
        self.log_line(progress.host, plain_text(f"{progress.state}: {progress.message}"))
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
        if self.open_log is not None:
            self.open_log.run_ended()

    def log_line(self, host: str, line: str) -> None:
        """Keep ``line`` in the host's log, and show it now if that log is open."""
        self.node_logs.setdefault(host, []).append(line)
        if self.open_log is not None and self.open_log.host == host:
            self.open_log.follow(line)

    # --- controls ------------------------------------------------------------------------------

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {"onboard-all": self.action_onboard_all,
                "retry-failed": self.action_retry_failed,
                "cancel-job": self.action_cancel}

    def action_onboard_all(self) -> None:
        self.start(None)

    def action_retry_failed(self) -> None:
        try:
            saved = onboard.load_node_results(self.wizard.require_plan())
            failed = [host for host, r in saved.items()
                      if r.status in (onboard.FAILED, onboard.CANCELLED)]
        except RegwizError as error:
            self.wizard.show_error("Cannot read the last results", error)
            return
        if not failed:
            self.notify("No failed nodes to retry.")
            return
        self.start(failed)

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, JOB)
        self.notify("Cancelling: running steps finish first; the summary says what stopped.")

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
        # The rows get the focus both ways: disabling the focused "Onboard all" passed it to
        # Cancel (Enter stopped the run), and after a run Down+Enter on the button re-ran all.
        # set_focus, not focus(): it also works under a modal (a node log open as the run ends).
        self.set_focus(self.query_one(NodeRows))
        self.query_one("#onboard-all", Button).disabled = running
        self.query_one("#retry-failed", Button).disabled = running
        self.query_one("#cancel-job", Button).disabled = not running
        self.query_one("#dry-run", Checkbox).disabled = running

    @work(thread=True, exit_on_error=False, group=JOB, name="Onboarding")
    def run_onboarding(self, only: list[str] | None, dry_run: bool) -> None:
        worker = get_current_worker()
        policy = ask_host_key_policy(self.wizard)
        plan = self.wizard.require_plan()

        def progress(event: onboard.NodeProgress) -> None:
            self.post_message(NodeProgressed(event))

        def run() -> onboard.OnboardReport:
            # Every unknown host key on one screen first, not one question per node.
            nodes = onboard.select_nodes(plan, only)
            for node in nodes:
                progress(onboard.NodeProgress(node.host, onboard.PENDING, "",
                                              "reading its SSH host key", (), 0.0))
            rejected = review_host_keys(self.wizard, nodes, policy)
            return onboard.onboard_nodes(
                plan, self.wizard.secrets, only=only, dry_run=dry_run, host_key_policy=policy,
                on_progress=progress, should_stop=lambda: worker.is_cancelled,
                rejected_host_keys=rejected)

        self.report_job(JOB, run, OnboardFinished)

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
            for line in result_lines(result):
                self.log_line(result.host, line)
        counts = report.counts()
        text = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        waves = f"; {wave_summary(report.waves)}" if report.waves else ""
        summary.update(f"{'dry run: ' if report.dry_run else ''}{text or 'no nodes'} "
                       f"in {report.seconds:.1f} s{waves}{cancel_summary(report)}")
        self.query_one("#retry-failed", Button).disabled = not report.failed or report.dry_run
        needs = secret_needs([(r.host, r.kind) for r in report.failed])
        if needs and not report.dry_run:
            ask_missing_secrets(self.wizard, needs, "install the registry CA on it",
                                self.retry_with_secrets)

    def retry_with_secrets(self, hosts: list[str]) -> None:
        """Onboard again the nodes that just got the secret they lacked."""
        if hosts:
            self.start(hosts)

    def worker_failed(self, worker: Worker[object]) -> None:
        self.stop_flushing()
        self.set_running(False)

    def on_list_view_selected(self, event: NodeRows.Selected) -> None:
        if not isinstance(event.item, NodeRow):
            return
        host = event.item.host
        running = not self.query_one("#cancel-job", Button).disabled
        modal = NodeLogModal(host, self.node_logs.get(host, []), live=running)
        self.open_log = modal

        def closed(_: None) -> None:
            if self.open_log is modal:
                self.open_log = None

        self.app.push_screen(modal, closed)

    def palette_actions(self) -> list[PaletteAction]:
        return [("Onboard all nodes", "Install the CA on every node", self.action_onboard_all),
                ("Retry failed nodes", "Run only the nodes that failed last time",
                 self.action_retry_failed),
                ("Cancel onboarding", "Stop between steps", self.action_cancel)]
