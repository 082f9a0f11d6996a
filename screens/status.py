"""Step 9: the live status panel.

app.status.collect_status runs in a background thread worker on an interval (configurable here)
and on ``r``; the panel shows registry up/down and latency, certificate days left coloured by
threshold, the catalog, the container, disk use and each node's trust in the current CA.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Static
from textual.worker import get_current_worker

from app.errors import RegwizError
from app.status import CertificateStatus, DiskStatus, StatusReport, TrustState, format_bytes
from screens import validators
from screens.deploy import saved_credentials
from screens.host_key_prompt import ask_host_key_policy
from screens.messages import (
    CaRotationFinished,
    CaRotationProgressed,
    GarbageCollected,
    JobFailed,
    NodeProgressed,
    RenewalFinished,
    StatusReady,
    StepProgress,
)
from screens.wizard_screen import PaletteAction, WizardScreen

if TYPE_CHECKING:
    from textual.message import Message

    from app.ca_rotation import RotationEvent
    from app.onboard import NodeProgress
    from app.plan import Plan, Secrets
    from app.steps import StepResult
    from app.transport.base import Transport

    # A day-two job: (plan, secrets, connect, on_progress) -> its report
    RegistryJob = Callable[[Plan, Secrets, Callable[[], Transport],
                            Callable[[StepResult], None]], Any]

JOB = "background-status"  # "background" groups never block navigation or quitting
RENEW_JOB = "renew"
ROTATE_JOB = "rotate-ca"
GC_JOB = "gc"
DEFAULT_INTERVAL = 30
TRUST_STYLE = {TrustState.MATCH: "bold green", TrustState.MISMATCH: "bold red",
               TrustState.MISSING: "bold yellow", TrustState.ERROR: "red"}


def days_style(days: int | None) -> str:
    """Green with more than 30 days left, yellow from 8 to 30, red at 7 or fewer (or unknown)."""
    if days is None or days <= 7:
        return "bold red"
    return "yellow" if days <= 30 else "green"


def human_bytes(count: int | None) -> str:
    return "?" if count is None else format_bytes(count)


def certificate_line(label: str, cert: CertificateStatus) -> Text:
    text = Text(f"{label:<13}", style="bold")
    if cert.error:
        return text.append(cert.error, style="red")
    text.append(f"{cert.days_left} days left", style=days_style(cert.days_left))
    text.append(f"  (until {(cert.not_after or '?')[:10]})", style="dim")
    return text


def render_report(report: StatusReport) -> Text:
    """The panel's text; no clock values, so the same report always renders the same."""
    registry = report.registry
    text = Text(f"{'registry':<13}", style="bold")
    if registry.reachable:
        text.append("UP", style="bold green")
        latency = f" {registry.latency_ms:.0f} ms" if registry.latency_ms is not None else ""
        text.append(f"{latency}  https://{report.registry_reference}/v2/ "
                    f"→ {registry.http_status}")
        text.append("  TLS ok" if registry.tls_valid else "  TLS NOT verified",
                    style="green" if registry.tls_valid else "bold red")
    else:
        text.append("DOWN", style="bold red")
        text.append(f"  {registry.error or 'no answer'}")
        if registry.hint:
            text.append(f"\n{'':<13}hint: {registry.hint}", style="dim")
    if report.auth:
        text.append(f"\n{'auth':<13}", style="bold")
        text.append(report.auth, style="bold red" if report.auth == "none" else "")
    for index, account in enumerate(report.accounts):
        text.append(f"\n{'accounts' if index == 0 else '':<13}", style="bold")
        text.append(f"{account.name} ({account.role}), created {account.created[:10]}, "
                    f"rotated {account.rotated[:10] or 'never'}")
    text.append("\n").append_text(certificate_line("server cert", report.server_certificate))
    if report.served_matches_local is False:
        text.append("  served cert is not the plan's tls.crt: redeploy", style="bold yellow")
    if report.server_certificate.out_of_date:
        text.append(f"\n{'':<13}out of date with the plan (reissue on Review, then deploy):",
                    style="bold red")
        for difference in report.server_certificate.plan_differences:
            text.append(f"\n{'':<15}{difference}", style="red")
    text.append("\n").append_text(certificate_line("CA cert", report.ca_certificate))
    if report.managed:
        text.append_text(registry_host_text(report))
    else:
        text.append(f"\n{'host':<13}", style="bold")
        text.append("yours (not deployed by regwiz): its own tools report the server")
    catalog = report.catalog
    text.append(f"\n{'catalog':<13}", style="bold")
    if catalog.error:
        text.append(catalog.error, style="red")
    else:
        text.append(f"{catalog.repository_count} repositor"
                    f"{'y' if catalog.repository_count == 1 else 'ies'}")
        text.append_text(repositories_text(report))
    return text


SHOWN_REPOSITORIES = 6


def repositories_text(report: StatusReport) -> Text:
    """One line per repository: its tags, how many, and the unique size of its blobs."""
    catalog = report.catalog
    sizes = {size.name: size for size in catalog.sizes}
    text = Text()
    names = list(catalog.repositories)
    for name in names[:SHOWN_REPOSITORIES]:
        tags = catalog.repositories[name]
        text.append(f"\n{'':<13}  {name}", style="bold")
        size = sizes.get(name)
        if size is not None:
            text.append(f"  {size.tag_count} tag{'s' if size.tag_count != 1 else ''}, "
                        f"{format_bytes(size.unique_bytes)}")
            if size.unsized_tags:
                text.append(f" (+{size.unsized_tags} not sized)", style="yellow")
            if size.error:
                text.append(f"  {size.error}", style="red")
        shown = ", ".join(tags[:3]) + ("…" if len(tags) > 3 else "")
        text.append(f"  ({shown or 'no tags'})", style="dim")
    more = catalog.repository_count - min(len(names), SHOWN_REPOSITORIES)
    if more > 0:
        text.append(f"\n{'':<13}  … and {more} more", style="dim")
    return text


def volume_text(disk: DiskStatus) -> Text:
    """The data volume's used and free space, red with a warning at the plan's threshold."""
    text = Text(f"\n{'volume':<13}", style="bold")
    if disk.volume_used_bytes is None or disk.volume_free_bytes is None:
        return text.append(disk.volume_error or "unknown", style="red")
    text.append(f"{format_bytes(disk.volume_used_bytes)} used, "
                f"{format_bytes(disk.volume_free_bytes)} free of "
                f"{format_bytes(disk.volume_bytes or 0)} ")
    text.append(f"({disk.used_percent}%)", style="bold red" if disk.too_full else "green")
    if disk.too_full:
        text.append(f"\n{'':<13}⚠ at or above disk_warn_percent ({disk.warn_percent}%): "
                    "prune old tags, then collect garbage",
                    style="bold red")
    return text


class StatusScreen(WizardScreen):
    STEP = "status"
    SHOW_NEXT = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh_now", "Refresh")]

    def __init__(self, *, live: bool = True) -> None:
        super().__init__()
        self.live = live  # collect on mount and on the interval (off: only show_report)
        self.timer: Timer | None = None
        self.rotation_lines: list[str] = []  # one line per phase of a running CA rotation

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="button-row", id="status-controls"):
            yield Button("Refresh", id="refresh", variant="primary", compact=True)
            yield Label("every", classes="switch-label")
            yield Input(str(DEFAULT_INTERVAL), id="interval", compact=True,
                        validators=[validators.Checked(_check_interval)])
            yield Label("s", classes="switch-label")
            yield Checkbox("check nodes", True, id="include-nodes", compact=True)
        with Horizontal(classes="button-row", id="status-actions"):
            yield Button("Accounts…", id="accounts", compact=True)
            yield Button("Images…", id="images", compact=True)
            yield Button("Prune…", id="prune", compact=True)
            yield Button("Renew cert…", id="renew", compact=True)
            yield Button("Rotate CA…", id="rotate-ca", compact=True)
            yield Button("Collect garbage…", id="gc", compact=True)
        with Vertical(id="status-panel"):
            yield Static("", id="status-notes", markup=False)
            yield Static("collecting…", id="status-text", classes="summary")
            yield DataTable(id="trust-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="status-state", markup=False)
            yield Static("", id="action-result", markup=False)

    def show_notes(self) -> None:
        """The plan's warnings that need no connection: no auth, an unencrypted CA key."""
        from app.ca_rotation import rotation_note
        from app.plan import auth_warning
        from app.status import ca_key_note

        plan = self.wizard.plan
        notes = [] if plan is None else [
            n for n in (auth_warning(plan), ca_key_note(plan), rotation_note(plan)) if n]
        shown = self.query_one("#status-notes", Static)
        shown.update("\n".join(f"⚠ {n}" for n in notes))
        shown.display = bool(notes)
        managed = plan is not None and plan.registry.managed  # a registry of its own: its tools
        self.query_one("#accounts", Button).display = (
            managed and plan is not None and plan.registry.auth == "htpasswd")
        self.query_one("#prune", Button).display = managed
        self.query_one("#renew", Button).display = managed
        self.query_one("#rotate-ca", Button).display = managed
        self.query_one("#gc", Button).display = managed

    def action_images(self) -> None:
        """Copy images into the registry (a modal with live progress per image)."""
        from screens.images import ImagesModal

        self.app.push_screen(ImagesModal(self.wizard.require_plan(), self.wizard.secrets))

    def action_accounts(self) -> None:
        from screens.accounts import AccountsModal

        plan = self.wizard.require_plan()
        self.app.push_screen(AccountsModal(plan, self.wizard.secrets, self.wizard))

    def action_prune(self) -> None:
        from app.plan import require_managed
        from screens.prune import PruneModal

        plan = self.wizard.require_plan()
        try:
            require_managed(plan, "prune")
        except RegwizError as error:
            self.query_one("#status-state", Static).update(f"✗ {error.message}")
            return

        def closed(deleted: bool | None) -> None:
            if deleted:
                self.action_refresh_now()

        self.app.push_screen(PruneModal(plan, self.wizard.secrets,
                                        saved_credentials(self.wizard.plan_path), self.wizard),
                             closed)

    def on_mount(self) -> None:
        self.show_notes()
        table = self.query_one("#trust-table", DataTable)
        for key, label in (("host", "node"), ("trust", "CA trust"), ("runtimes", "runtimes"),
                           ("detail", "detail")):
            table.add_column(label, key=key)
        if self.live:
            self.action_refresh_now()
            self.schedule(DEFAULT_INTERVAL)

    def schedule(self, seconds: int) -> None:
        if self.timer is not None:
            self.timer.stop()
        self.timer = self.set_interval(seconds, self.action_refresh_now)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "interval":
            valid = event.validation_result is None or event.validation_result.is_valid
            state = self.query_one("#status-state", Static)
            if not valid and event.validation_result is not None:
                state.update(f"interval: {event.validation_result.failure_descriptions[0]}")
            elif self.live:
                self.schedule(int(event.value))
                state.update("")

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {"refresh": self.action_refresh_now, "accounts": self.action_accounts,
                "images": self.action_images, "prune": self.action_prune,
                "renew": self.action_renew, "rotate-ca": self.action_rotate_ca,
                "gc": self.action_gc}

    # --- day-two jobs on the registry host (confirmed first, run in a worker) ------------------

    def confirm_then(self, title: str, body: str, label: str, run: Callable[[], object]) -> None:
        """Ask ``title`` and run ``run`` when confirmed; nothing while another job runs."""
        if self.wizard.busy_workers():
            self.notify("A job is still running", severity="warning")
            return
        from screens.confirm import ConfirmModal

        def decide(confirmed: bool | None) -> None:
            if confirmed:
                run()

        self.app.push_screen(ConfirmModal(title, body, confirm_label=label,
                                          cancel_label="Not now"), decide)

    def action_renew(self) -> None:
        """Renew tls.crt from the same CA and deploy it, after a confirmation."""
        self.confirm_then(
            "Renew the server certificate?",
            "A new tls.crt from the same CA, deployed now: the old container is kept until the "
            "new one answers; pulls pause for a few seconds. Nodes need nothing: they trust the "
            "CA, and it is unchanged.", "Renew and deploy", self.renew)

    def action_rotate_ca(self) -> None:
        """Replace the CA in three phases, nodes pulling throughout, after a confirmation."""
        self.confirm_then(
            "Rotate the CA?",
            "Three phases, each safe to run again (a failed one is resumed by rotating again):\n"
            "1 add: a new CA, and every node onboarded to trust the old and the new CA;\n"
            "2 switch: a server certificate from the new CA, deployed (the old container is "
            "kept until the new one answers);\n"
            "3 finish: the new CA replaces ca.crt/ca.key (the old pair is kept, dated) and every "
            "node is onboarded again to trust only the new CA.\n"
            "Nodes keep pulling throughout.", "Rotate the CA", self.rotate_ca)

    def action_gc(self) -> None:
        """Garbage collection in a read-only window, after a confirmation."""
        self.confirm_then(
            "Collect garbage now?",
            "The registry is redeployed read-only (pulls go on, pushes are refused), "
            "Distribution's garbage-collect frees what deleted images left, and the registry is "
            "redeployed read-write. Multi-platform images are kept whole.",
            "Collect garbage", self.collect_garbage)

    @work(thread=True, exit_on_error=False, group=RENEW_JOB, name="Renew")
    def renew(self) -> None:
        from app.renewal import renew_and_deploy

        worker = get_current_worker()
        self.run_on_registry_host(RENEW_JOB, lambda plan, secrets, connect, progress:
                                  renew_and_deploy(plan, secrets, None, connect=connect,
                                                   on_progress=progress,
                                                   should_stop=lambda: worker.is_cancelled),
                                  RenewalFinished)

    @work(thread=True, exit_on_error=False, group=ROTATE_JOB, name="CA rotation")
    def rotate_ca(self) -> None:
        from app.ca_rotation import RotationJob, rotate_ca
        from app.connections import open_registry_transport

        worker = get_current_worker()
        plan, secrets = self.wizard.require_plan(), self.wizard.secrets
        policy = ask_host_key_policy(self.wizard)

        def progressed(event: RotationEvent) -> None:
            self.post_message(CaRotationProgressed(event))

        def stepped(result: StepResult) -> None:
            self.post_message(StepProgress(result, ROTATE_JOB))

        def onboarding(progress: NodeProgress) -> None:
            self.post_message(NodeProgressed(progress))

        job = RotationJob(plan, secrets, policy,
                          lambda: open_registry_transport(plan, secrets, policy),
                          on_event=progressed, on_node=onboarding, on_step=stepped,
                          should_stop=lambda: worker.is_cancelled)
        self.rotation_lines = []
        self.report_job(ROTATE_JOB, lambda: rotate_ca(job), CaRotationFinished)

    @work(thread=True, exit_on_error=False, group=GC_JOB, name="Garbage collection")
    def collect_garbage(self) -> None:
        from app.gc import collect_garbage

        self.run_on_registry_host(GC_JOB, lambda plan, secrets, connect, progress:
                                  collect_garbage(plan, secrets, connect=connect,
                                                  on_progress=progress), GarbageCollected)

    def run_on_registry_host(self, job: str, run: RegistryJob,
                             finished: Callable[[Any], Message]) -> None:
        """From a worker: ``run`` with the plan, secrets, a registry-host connector (host keys
        asked through the wizard) and a progress callback posting each step as it goes."""
        from app.connections import open_registry_transport

        plan, secrets = self.wizard.require_plan(), self.wizard.secrets
        policy = ask_host_key_policy(self.wizard)

        def progress(result: StepResult) -> None:
            self.post_message(StepProgress(result, job))

        self.report_job(job, lambda: run(
            plan, secrets, lambda: open_registry_transport(plan, secrets, policy), progress),
            finished)

    def on_garbage_collected(self, message: GarbageCollected) -> None:
        report = message.report
        self.query_one("#action-result", Static).update("\n".join(report.lines()))
        self.notify(report.lines()[-1], severity="information" if report.ok else "error")
        self.action_refresh_now()

    def on_step_progress(self, message: StepProgress) -> None:
        if message.job == GC_JOB:
            self.query_one("#action-result", Static).update(
                f"garbage collection: {message.result.what} — {message.result.outcome.value}")
        if message.job == RENEW_JOB:
            self.query_one("#action-result", Static).update(
                f"renewing: {message.result.what} — {message.result.outcome.value}")
        if message.job == ROTATE_JOB:
            self.show_rotation(f"deploy: {message.result.what} — "
                               f"{message.result.outcome.value}")

    def on_ca_rotation_progressed(self, message: CaRotationProgressed) -> None:
        event: RotationEvent = message.event
        if event.started:
            self.rotation_lines.append(f"phase {event.number}/3 {event.text}")
            self.show_rotation("")
        else:
            self.show_rotation(event.text)

    def on_node_progressed(self, message: NodeProgressed) -> None:
        """Only a CA rotation onboards nodes from this step."""
        progress = message.progress
        self.show_rotation(f"node {progress.host}: {progress.state.value}"
                           + (f" — {progress.message}" if progress.message else ""))

    def show_rotation(self, now: str) -> None:
        """Every phase begun so far, and what the current one does now."""
        lines = [*self.rotation_lines, f"  {now}" if now else ""]
        self.query_one("#action-result", Static).update("\n".join(lines).rstrip())

    def on_ca_rotation_finished(self, message: CaRotationFinished) -> None:
        report = message.report
        self.show_notes()  # the "rotation under way" note comes or goes
        mark = "✓ " if report.ok else "✗ "
        self.query_one("#action-result", Static).update(
            "\n".join(mark + line for line in report.lines()))
        self.notify(report.lines()[-1] if report.ok else f"CA rotation stopped in phase "
                    f"{report.failed_phase}", severity="information" if report.ok else "error")
        self.action_refresh_now()

    def on_renewal_finished(self, message: RenewalFinished) -> None:
        report = message.report
        text = "\n".join(("✓ " if report.ok else "✗ ") + line for line in report.lines())
        self.query_one("#action-result", Static).update(text)
        self.notify(report.lines()[0], severity="information" if report.ok else "error")
        self.action_refresh_now()

    def action_refresh_now(self) -> None:
        if any(w.group == JOB and not w.is_finished for w in self.workers):
            return  # the previous refresh is still collecting
        self.query_one("#status-state", Static).update("refreshing…")
        self.collect(self.query_one("#include-nodes", Checkbox).value)

    @work(thread=True, exit_on_error=False, group=JOB, name="Status")
    def collect(self, include_nodes: bool) -> None:
        from app.status import collect_status

        policy = ask_host_key_policy(self.wizard)
        # Without a saved login file, collect_status reads the operator account's own file.
        self.report_job(JOB, lambda: collect_status(
            self.wizard.require_plan(), self.wizard.secrets, host_key_policy=policy,
            include_nodes=include_nodes, credentials=saved_credentials(self.wizard.plan_path)),
            StatusReady)

    def on_status_ready(self, message: StatusReady) -> None:
        self.show_report(message.status)

    def on_job_failed(self, message: JobFailed) -> None:
        hint = f" (hint: {message.hint})" if message.hint else ""
        day_two = (RENEW_JOB, GC_JOB, ROTATE_JOB)
        where = "#action-result" if message.job in day_two else "#status-state"
        self.query_one(where, Static).update(f"✗ {message.error}{hint}")

    def show_report(self, report: StatusReport) -> None:
        self.query_one("#status-text", Static).update(render_report(report))
        table = self.query_one("#trust-table", DataTable)
        table.clear()
        for node in report.nodes or []:
            detail = node.message or "; ".join(
                f"{f.runtime}: {f.path} {f.state.value}" for f in node.files)
            if node.credential_state is not None:
                detail += f"; pull credential {node.credential_state.value}"
            if node.mirrors:
                detail += f"; mirrors: {node.mirrors_text}"
            table.add_row(node.host, Text(node.state.value, style=TRUST_STYLE[node.state]),
                          ", ".join(node.runtimes) or "-", Text(detail), key=node.host)
        healthy = "healthy" if report.healthy else "NOT healthy"
        mirrors = any(n.mirrors_stale for n in report.nodes or [])
        self.query_one("#status-state", Static).update(
            f"{healthy}; {len(report.stale_nodes)} node(s) not trusting the current CA"
            f"{' or not using the mirrors' if mirrors else ''}"
            if report.nodes is not None else healthy)

    def palette_actions(self) -> list[PaletteAction]:
        actions: list[PaletteAction] = [
            ("Refresh status", "Collect the status now", self.action_refresh_now),
            ("Copy images in", "Push images into the registry (references, an archive or "
             "an OCI layout) with live progress", self.action_images)]
        plan = self.wizard.plan
        if plan is not None and plan.registry.managed:
            actions.append(("Prune old tags…", "Keep the newest N tags of each repository, "
                            "delete the rest (preview first)", self.action_prune))
            actions.append(("Renew certificate", "A new server certificate from the same CA, "
                            "deployed and checked", self.action_renew))
            actions.append(("Rotate the CA…", "A new CA in three phases (add, switch, finish), "
                            "nodes pulling throughout", self.action_rotate_ca))
            actions.append(("Collect garbage", "Free the disk of deleted images in a read-only "
                            "window", self.action_gc))
        return actions



def registry_host_text(report: StatusReport) -> Text:
    """The registry container and its disk, on a registry regwiz deployed."""
    container = report.container
    text = Text()
    text.append(f"\n{'container':<13}", style="bold")
    if container.error:
        text.append(container.error, style="red")
    elif not container.found:
        text.append(f"{container.name} not found", style="bold red")
    else:
        text.append(container.state or "?", style="green" if container.running else "bold red")
        text.append(f"  {container.name}, {container.restart_count or 0} restart(s), "
                    f"{container.image or ''}")
    text.append(f"\n{'image pin':<13}", style="bold")
    text.append(container.pin_line(full=False), style="bold red" if container.off_pin else "")
    text.append(f"\n{'disk used':<13}", style="bold")
    disk = report.disk
    text.append(disk.error or f"{human_bytes(disk.used_bytes)} in {disk.path}",
                style="red" if disk.error else "")
    return text.append_text(volume_text(disk)).append_text(mirrors_text(report))


def mirrors_text(report: StatusReport) -> Text:
    """One row per pull-through cache: upstream, address, container, answer, disk use."""
    from app.status import mirror_summary

    text = Text()
    for index, mirror in enumerate(report.mirrors):
        text.append(f"\n{'mirrors' if index == 0 else '':<13}", style="bold")
        text.append(mirror_summary(mirror), style="" if mirror.healthy else "bold red")
    return text


def _check_interval(value: str) -> str | None:
    text = value.strip()
    if not text.isdigit() or not 2 <= int(text) <= 3600:
        return "expected a number of seconds from 2 to 3600"
    return None
