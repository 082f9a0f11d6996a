"""CA rotation with nodes pulling throughout: every node trusts the new CA before the registry
serves a certificate from it, and stops trusting the old one only after.

Three phases, each safe to run again; the one to run next is recorded in ``ca-rotation.json``
in the certificate folder, beside the new CA (``ca-next.crt``/``ca-next.key``) until the finish:

- **add**: a new CA (the plan's subject settings, a new key; encrypted like ca.key), the bundle
  ``ca-bundle.crt`` (old + new), and every node onboarded: ``Plan.trusted_ca_path`` names the
  bundle while it exists, so each runtime adapter writes both CAs unchanged.
- **switch**: tls.crt from the new CA, deployed (the registry host's Docker gets the bundle too),
  and the certificate the registry serves read back, as ``regwiz renew`` does.
- **finish**: the new CA becomes ca.crt/ca.key (the old pair kept as ``*.old-<time>``), every
  node onboarded again with it alone, and the registry redeployed so its host trusts only it.

A phase that fails stops the rotation and leaves the record naming it: running again resumes
there. No key material ever leaves this machine or appears in a message.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import RegwizError, UsageError

if TYPE_CHECKING:
    from app.onboard import NodeProgress
    from app.plan import Plan, Secrets
    from app.steps import StepResult
    from app.transport.base import Transport
    from app.transport.hostkeys import HostKeyPolicy

PHASES = ("add", "switch", "finish")
STATE_NAME = "ca-rotation.json"
PHASE_TITLES = {
    "add": "add the new CA: every node trusts both CAs",
    "switch": "switch: the registry serves a certificate from the new CA",
    "finish": "finish: the new CA replaces the old one; nodes trust only it",
}


class RotationError(RegwizError):
    """A phase could not complete; ``phase`` names it (the run resumes there)."""

    def __init__(self, phase: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.phase = phase


# --------------------------------------------------------------------------- the record


@dataclass
class RotationState:
    """What ``ca-rotation.json`` keeps (no key material): the phase to run next."""

    phase: str
    started: str
    new_ca: str = ""  # the new CA's SHA-256 fingerprint, once made

    @classmethod
    def from_dict(cls, data: object) -> RotationState:
        if not isinstance(data, dict) or data.get("phase") not in PHASES:
            raise ValueError("no known phase")
        return cls(str(data["phase"]), str(data.get("started", "")), str(data.get("new_ca", "")))


def state_path(plan: Plan) -> Path:
    return plan.cert_dir / STATE_NAME


def load_state(plan: Plan) -> RotationState | None:
    """The rotation under way, or None."""
    path = state_path(plan)
    try:
        return RotationState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read the CA rotation record {path}: {error}",
                         "restore it, or remove it (and ca-next.*, ca-bundle.crt) to start "
                         "over") from None


def save_state(plan: Plan, state: RotationState) -> None:
    from app.certs import os_reason
    from app.plan import atomic_write

    path = state_path(plan)
    try:
        atomic_write(path, json.dumps(asdict(state), indent=2).encode() + b"\n", 0o644)
    except OSError as error:
        raise RegwizError(f"cannot record the CA rotation's phase in {path}: "
                          f"{os_reason(error)}", "free some space or fix the certificate "
                          "folder's permissions, then run again") from None


def clear_state(plan: Plan) -> None:
    state_path(plan).unlink(missing_ok=True)


def rotation_note(plan: Plan) -> str | None:
    """A note while a CA rotation is under way (None when none is, or for an unmanaged plan)."""
    if not plan.registry.managed:
        return None
    try:
        state = load_state(plan)
    except RegwizError as error:
        return error.message
    if state is None:
        return None
    return (f"a CA rotation is under way (next: phase {state.phase} of add, switch, finish): "
            "run regwiz rotate-ca --plan FILE (or Rotate CA… on the Status step) to go on")


# --------------------------------------------------------------------------- resuming (pure)


@dataclass(frozen=True)
class CaFacts:
    """What the certificate folder says, for ``phases_to_run``."""

    promoted: bool  # ca.crt already is the new CA (the finish swapped the pair)
    tls_from_new: bool  # tls.crt is signed by the new CA


def phases_to_run(state: RotationState | None, facts: CaFacts) -> list[str]:
    """The phases still to run, in order: all for a new rotation, else from the recorded one.
    A finish whose tls.crt is not (or no longer) from the new CA switches again first: nodes
    must never drop the old CA while the registry may still serve its certificate."""
    if state is None:
        return list(PHASES)
    start = state.phase
    if start == "finish" and not facts.promoted and not facts.tls_from_new:
        start = "switch"
    return list(PHASES[PHASES.index(start):])


def ca_facts(plan: Plan, state: RotationState | None) -> CaFacts:
    from app.certs import CertFiles, certificate_signed_by, inspect_certificate

    files = CertFiles(plan.cert_dir)
    try:
        current = inspect_certificate(files.ca_crt).fingerprint
    except RegwizError:
        current = ""
    promoted = state is not None and bool(state.new_ca) and current == state.new_ca
    new_ca = files.ca_crt if promoted else files.ca_next_crt
    return CaFacts(promoted, certificate_signed_by(files.tls_crt, new_ca))


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class RotationEvent:
    """Progress for the caller: phase ``number`` of 3 ``started`` (``text`` its title), or
    says ``text`` (what it does now, "done", "failed: ...")."""

    phase: str
    number: int
    text: str
    started: bool = False


@dataclass
class PhaseOutcome:
    phase: str
    ok: bool
    lines: list[str] = field(default_factory=list)


@dataclass
class RotationReport:
    phases: list[PhaseOutcome] = field(default_factory=list)
    resumed_at: str | None = None  # the phase an earlier, interrupted run had reached
    failed_phase: str | None = None
    error: str | None = None
    hint: str | None = None
    backups: list[str] = field(default_factory=list)  # the old CA's files, kept

    @property
    def ok(self) -> bool:
        return self.failed_phase is None

    def lines(self) -> list[str]:
        lines = [f"resumed at phase {self.resumed_at}"] if self.resumed_at else []
        for outcome in self.phases:
            lines += [f"{outcome.phase}: {line}" for line in outcome.lines]
        if self.failed_phase:
            lines.append(f"CA rotation stopped in phase {self.failed_phase}: {self.error}")
            if self.hint:
                lines.append(f"hint: {self.hint}")
            lines.append(f"run regwiz rotate-ca again to resume at phase {self.failed_phase} "
                         "(nodes keep trusting the CA the registry serves meanwhile)")
        else:
            lines.append("CA rotated: every node trusts only the new CA, and the registry "
                         "serves a certificate from it")
        return lines


# --------------------------------------------------------------------------- running


@dataclass
class RotationJob:
    """Everything the phases need; callbacks are called from the calling thread or, for
    ``on_node``, from onboarding's worker threads."""

    plan: Plan
    secrets: Secrets
    host_key_policy: HostKeyPolicy
    connect: Callable[[], Transport]  # the registry host
    on_event: Callable[[RotationEvent], None] = lambda event: None
    on_node: Callable[[NodeProgress], None] | None = None
    on_step: Callable[[StepResult], None] | None = None
    should_stop: Callable[[], bool] = lambda: False
    parallel: int = 16
    max_restarts: int | None = None
    state: RotationState = field(default_factory=lambda: RotationState("add", _now()))


def dry_run_lines(plan: Plan) -> list[str]:
    """What a run would do from where the rotation stands; nothing is changed or connected."""
    state = load_state(plan)
    phases = phases_to_run(state, ca_facts(plan, state))
    nodes = len(plan.nodes)
    what = {
        "add": [f"create {plan.cert_dir}/ca-next.crt + ca-next.key (unless there) and "
                "ca-bundle.crt (old + new CA)",
                f"onboard {nodes} node(s) with the bundle (as regwiz onboard)"],
        "switch": ["issue tls.crt + tls.key from the new CA",
                   f"deploy to {plan.registry.host} (as regwiz deploy) and read back the "
                   "served certificate"],
        "finish": ["ca-next.* become ca.crt/ca.key; the old pair is kept as *.old-<time>",
                   f"onboard {nodes} node(s) with the new CA alone; deploy again"],
    }
    lines = [f"resuming at phase {phases[0]}"] if state is not None else []
    for number, phase in enumerate(phases, start=PHASES.index(phases[0]) + 1):
        lines.append(f"phase {number}/3 {PHASE_TITLES[phase]}")
        lines += [f"    {line}" for line in what[phase]]
    return lines


def rotate_ca(job: RotationJob) -> RotationReport:
    """Run the phases still to run; a failing one stops the rotation (``report.ok`` False) and
    stays recorded, so the next run resumes there. UsageError (a bad plan) is raised."""
    from app.plan import require_managed

    plan = job.plan
    require_managed(plan, "rotate-ca")
    state = load_state(plan)
    report = RotationReport(resumed_at=state.phase if state else None)
    job.state = state or RotationState("add", _now())
    for phase in phases_to_run(state, ca_facts(plan, state)):
        number = PHASES.index(phase) + 1
        job.on_event(RotationEvent(phase, number, PHASE_TITLES[phase], started=True))
        try:
            if job.should_stop():
                raise RotationError(phase, "stopped before this phase began")
            job.state.phase = phase
            save_state(plan, job.state)
            outcome = _PHASE_RUNNERS[phase](job, report)
        except UsageError:
            raise
        except RegwizError as error:
            report.failed_phase, report.error, report.hint = phase, error.message, error.hint
            report.phases.append(PhaseOutcome(phase, False))
            job.on_event(RotationEvent(phase, number, f"failed: {error.message}"))
            return report
        report.phases.append(outcome)
        job.on_event(RotationEvent(phase, number, "done"))
    clear_state(plan)
    return report


def _add(job: RotationJob, report: RotationReport) -> PhaseOutcome:
    from app.certs import prepare_next_ca

    old, new = prepare_next_ca(job.plan, job.secrets.ca_key_passphrase)
    job.state.new_ca = new.fingerprint
    save_state(job.plan, job.state)
    job.on_event(RotationEvent("add", 1, f"new CA {_short(new.fingerprint)}; onboarding the "
                                         "nodes with both CAs"))
    count = _onboard(job, "add", "trust both CAs")
    return PhaseOutcome("add", True, [
        f"new CA {_short(new.fingerprint)} beside the old {_short(old.fingerprint)}",
        f"{count} node(s) trust both CAs"])


def _switch(job: RotationJob, report: RotationReport) -> PhaseOutcome:
    from app.certs import issue_from_next_ca

    summary = issue_from_next_ca(job.plan, job.secrets.ca_key_passphrase)
    job.on_event(RotationEvent("switch", 2, f"tls.crt {summary.leaf_action} from the new CA; "
                                            "deploying"))
    served = _deploy(job, "switch")
    job.state.phase = "finish"  # the registry serves the new CA's certificate from now on
    save_state(job.plan, job.state)
    return PhaseOutcome("switch", True, [
        f"tls.crt {summary.leaf_action} from the new CA; the registry serves it "
        f"({_short(served)})"])


def _finish(job: RotationJob, report: RotationReport) -> PhaseOutcome:
    from app.certs import CertFiles, promote_next_ca

    files = CertFiles(job.plan.cert_dir)
    if not ca_facts(job.plan, job.state).promoted:
        _require_served_from_new(job)
    report.backups = promote_next_ca(job.plan)
    kept = (f"the old CA is kept as {', '.join(report.backups)} in {files.directory}"
            if report.backups else "the new CA already is ca.crt (an earlier run kept the "
                                   "old one)")
    job.on_event(RotationEvent("finish", 3, f"{kept}; onboarding the nodes with the new CA "
                                            "alone"))
    count = _onboard(job, "finish", "trust only the new CA")
    _deploy(job, "finish")  # the registry host's own Docker trusts the new CA alone too
    return PhaseOutcome("finish", True, [kept, f"{count} node(s) trust only the new CA"])


_PHASE_RUNNERS: dict[str, Callable[[RotationJob, RotationReport], PhaseOutcome]] = {
    "add": _add, "switch": _switch, "finish": _finish}


def _require_served_from_new(job: RotationJob) -> None:
    """Before any node drops the old CA: the registry serves tls.crt, and the new CA signed it."""
    from app.certs import CertFiles, certificate_signed_by, inspect_certificate
    from app.status import served_certificate

    files = CertFiles(job.plan.cert_dir)
    served = served_certificate(job.plan.registry.address, job.plan.registry.port).fingerprint
    local = inspect_certificate(files.tls_crt).fingerprint
    if served != local or not certificate_signed_by(files.tls_crt, files.ca_next_crt):
        job.state.phase = "switch"  # the next run switches again before finishing
        save_state(job.plan, job.state)
        raise RotationError("finish", "the registry does not serve a certificate from the new "
                                      "CA, so the nodes keep the old one",
                            "a renew or deploy from elsewhere may have replaced it; the next "
                            "run switches again first")


def _onboard(job: RotationJob, phase: str, goal: str) -> int:
    """Onboard every node of the plan; a node that fails stops the phase."""
    from app import onboard

    if not job.plan.nodes:
        return 0  # a registry alone: its own host's trust is the deploy's
    result = onboard.onboard_nodes(
        job.plan, job.secrets, host_key_policy=job.host_key_policy, on_progress=job.on_node,
        should_stop=job.should_stop, parallel=job.parallel, max_restarts=job.max_restarts)
    if result.failed:
        named = ", ".join(f"{r.host} ({r.reason or r.message})" for r in result.failed[:5])
        raise RotationError(phase, f"{len(result.failed)} of {len(result.results)} node(s) "
                                   f"could not {goal}: {named}",
                            "fix those nodes (the onboarding results name why)")
    return len(result.results)


def _deploy(job: RotationJob, phase: str) -> str:
    """Deploy the certificate folder as it is; the served certificate must be tls.crt."""
    from app.certs import CertFiles, inspect_certificate
    from app.renewal import deploy_and_read_back

    deployed, served = deploy_and_read_back(job.plan, job.secrets, None, connect=job.connect,
                                            on_progress=job.on_step,
                                            should_stop=job.should_stop)
    if not deployed.ok:
        failed = deployed.failed[0]
        raise RotationError(phase, f"the deploy failed at {failed.what!r}: {failed.message}",
                            failed.hint)
    local = inspect_certificate(CertFiles(job.plan.cert_dir).tls_crt).fingerprint
    if served != local:
        raise RotationError(phase, f"the registry serves {served or 'nothing readable'}, not "
                                   f"the new tls.crt {local}",
                            "check the registry container (regwiz status)")
    return local


def _short(fingerprint: str) -> str:
    return f"{fingerprint[:23]}…"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
