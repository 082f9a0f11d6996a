"""``deploy()``: run a plan's deploy steps and say what happened in one typed report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.address import RegistryAddress
from app.deploy.deployment import Deployment, DeployOptions
from app.htpasswd import Credentials
from app.plan import Plan, Secrets
from app.steps import Outcome, Outcomes, StepResult, dry_run_lines, run_steps, summarize
from app.transport.base import Transport

PlannedCallback = Callable[[list[tuple[str, str]]], None]


@dataclass
class DeployReport(Outcomes):
    """The outcome of one deploy (or dry run), for the CLI and the TUI alike."""

    results: list[StepResult]  # one per step, in order ([] for a dry run)
    planned: list[tuple[str, str]]  # (what, where) of every step, in order
    dry_run: bool
    dry_run_lines: list[str]  # app.steps.dry_run_lines(steps) for a dry run, else []
    container_id: str  # "" when no container
    log_tail: str  # the container's log tail when a step failed, else ""
    generated_password: bool  # a registry password was generated (and saved if a file is kept)
    credentials_file: Path | None  # where the registry credentials are kept, if anywhere
    registry: RegistryAddress
    seconds: float
    #: the generated credentials, to be shown exactly once (None unless generated_password)
    new_credentials: Credentials | None = field(default=None, repr=False)
    #: accounts created by this deploy (names; their credentials are credentials/NAME.json)
    created_accounts: list[str] = field(default_factory=list)
    #: the pin of the image the registry runs after this deploy (``registry.image_digest``)
    image_digest: str | None = None
    #: this deploy wrote the pin into the plan (the first deploy of an unpinned plan)
    pin_recorded: bool = False
    #: what the operator should know although nothing failed (e.g. the tag moved on the host)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[StepResult]:
        return [result for result in self.results if result.outcome is Outcome.FAILED]

    def image_lines(self) -> list[str]:
        """The notes and the pin this run recorded, one line each (CLI and wizard alike)."""
        lines = [f"note: {note}" for note in self.notes]
        if self.pin_recorded:
            lines.append("pinned the registry image: registry.image_digest = "
                         f"\"{self.image_digest}\" (later deploys run this exact image)")
        return lines

    def counts(self) -> dict[str, int]:
        """``{"changed": n, "unchanged": n, "failed": n}`` like ``app.steps.summarize``."""
        return summarize(self.results)


def deploy(
    plan: Plan,
    secrets: Secrets,
    options: DeployOptions | None,
    *,
    connect: Callable[[], Transport],
    dry_run: bool = False,
    on_planned: PlannedCallback | None = None,
    on_progress: Callable[[StepResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DeployReport:
    """Deploy ``plan``'s registry (or, with ``dry_run``, only list the steps: nothing is
    connected to). ``on_planned`` gets the (what, where) of every step before the first runs;
    ``on_progress`` and ``should_stop`` are ``run_steps``'s."""
    from app.plan import require_managed

    require_managed(plan, "deploy")
    options = options or DeployOptions()
    started = time.monotonic()
    with Deployment(plan, secrets, options, connect=connect) as deployment:
        steps = deployment.steps()
        planned = [(step.what, step.where) for step in steps]
        if on_planned is not None:
            on_planned(planned)
        report = DeployReport(
            results=[], planned=planned, dry_run=dry_run, dry_run_lines=[], container_id="",
            log_tail="", generated_password=False, credentials_file=options.credentials_file,
            registry=plan.registry_address, seconds=0.0,
        )
        if dry_run:
            report.dry_run_lines = list(dry_run_lines(steps))
        else:
            report.results = run_steps(steps, on_progress=on_progress, should_stop=should_stop)
            report.log_tail = deployment.container_log_tail() if report.failed else ""
            report.container_id = deployment.container_id or ""
            report.new_credentials = deployment.new_credentials
            report.created_accounts = list(deployment.created_accounts)
            report.generated_password = deployment.new_credentials is not None
            report.notes = list(deployment.notes)
            if (rolled_back := deployment.roll_back_unfinished()) is not None:
                report.notes.append(rolled_back)
            report.image_digest = deployment.pin
            if report.ok and options.record_pin:
                report.pin_recorded = _record_pin(plan, report)
    report.seconds = time.monotonic() - started
    return report


def _record_pin(plan: Plan, report: DeployReport) -> bool:
    """Pin an unpinned plan to the image its registry now runs (saved when the plan has a
    file). A save that fails leaves the deploy successful, with a note saying so."""
    from app.errors import RegwizError
    from app.plan import save_plan

    if report.image_digest is None or plan.registry.image_digest is not None:
        return False
    plan.registry.image_digest = report.image_digest
    if plan.path is None:
        return True
    try:
        save_plan(plan)
    except RegwizError as error:
        report.notes.append(f"the pin {report.image_digest} could not be saved in the plan: "
                            f"{error.message.splitlines()[0]}")
        return False
    return True
