"""Messages that worker threads post to screens (``post_message`` is thread-safe).

Small dataclasses, one per outcome, each carrying its concrete type: a worker never touches
widgets; it reports, and the screen updates itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # annotations only: the domain modules load with the job that needs them
    from app.ca_fetch import PresentedChain
    from app.ca_rotation import RotationEvent, RotationReport
    from app.deploy import DeployReport
    from app.gc import GcReport
    from app.images.copy import ImageEvent, ImagesReport
    from app.nodes_import import NodeEntry
    from app.onboard import NodeProgress, OnboardReport
    from app.renewal import RenewalReport
    from app.retention import DeleteResult, PrunePlan, PruneReport
    from app.status import StatusReport
    from app.steps import StepResult
    from app.verify import VerifyProgress, VerifyReport


# --- any job ------------------------------------------------------------------------------------


@dataclass
class JobFailed(Message):
    """A job stopped before it produced its report: ``error`` says why, ``hint`` how to fix it."""

    job: str
    error: str
    hint: str | None = None


# --- deploy -------------------------------------------------------------------------------------


@dataclass
class StepsPlanned(Message):
    """The steps a job will run, as (what, where) pairs, before the first one starts."""

    job: str
    steps: list[tuple[str, str]]


@dataclass
class StepProgress(Message):
    """A step changed state (RUNNING before it starts, the final outcome after)."""

    result: StepResult
    job: str = ""


@dataclass
class DeployFinished(Message):
    """The deploy job ran (or, for a dry run, listed) its steps."""

    report: DeployReport


# --- onboarding ---------------------------------------------------------------------------------


@dataclass
class NodeProgressed(Message):
    """A node's onboarding row changed."""

    progress: NodeProgress


@dataclass
class OnboardFinished(Message):
    """Onboarding ended for every node it ran on (failed nodes are in the report too)."""

    report: OnboardReport


# --- verify -------------------------------------------------------------------------------------


@dataclass
class VerifyProgressed(Message):
    """The push/pull check or a node's pull check changed state."""

    progress: VerifyProgress


@dataclass
class VerifyFinished(Message):
    """Verification ended: the push/pull result and every node's checks."""

    report: VerifyReport


# --- status -------------------------------------------------------------------------------------


@dataclass
class StatusReady(Message):
    """A fresh status snapshot from app.status."""

    status: StatusReport


@dataclass
class AccountsChanged(Message):
    """Progress or outcome of an accounts change (screens/accounts.py); never a password."""

    text: str
    done: bool


@dataclass
class PrunePreviewed(Message):
    """What prune would delete and keep (screens/prune.py); nothing was changed."""

    prune: PrunePlan


@dataclass
class PruneProgressed(Message):
    """One manifest was deleted (or skipped, or failed) during a prune."""

    result: DeleteResult


@dataclass
class PruneFinished(Message):
    """The prune's deletions ended (every one, or stopped early: ``report.stopped``)."""

    report: PruneReport


# --- registry host, certificates, nodes ---------------------------------------------------------


@dataclass
class ConnectionChecked(Message):
    """Result of the registry host's "Test connection"."""

    ok: bool
    summary: str
    hint: str | None = None
    kind: str = ""  # TransportError.kind when it failed, e.g. "host-key-changed"
    host: str = ""


@dataclass
class CertificatesChanged(Message):
    """Certificates were generated, renewed, imported or a CSR was exported."""

    summary: str


@dataclass
class NodesFound(Message):
    """Nodes read from a file or from kubectl, ready to be added to the plan."""

    entries: list[NodeEntry]
    source: str


# --- a registry regwiz did not deploy -------------------------------------------------------


@dataclass
class CaChainFetched(Message):
    """The certificates a registry presented (read before anything trusts them)."""

    chain: PresentedChain


# --- images -------------------------------------------------------------------------------------


@dataclass
class ImageProgressed(Message):
    """One step of one image's copy (a manifest read, a blob sent or already there, the end)."""

    event: ImageEvent


@dataclass
class ImagesFinished(Message):
    report: ImagesReport


@dataclass
class RenewalFinished(Message):
    """The server certificate was renewed, deployed and read back (``report.ok``)."""

    report: RenewalReport


@dataclass
class GarbageCollected(Message):
    """The read-only window closed: what was freed, and whether the registry is read-write."""

    report: GcReport


@dataclass
class CaRotationProgressed(Message):
    """A CA rotation's phase started (``event.started``) or says what it does now."""

    event: RotationEvent


@dataclass
class CaRotationFinished(Message):
    """The CA rotation ran every phase, or stopped at one (``report.failed_phase``)."""

    report: RotationReport
