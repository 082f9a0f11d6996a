"""Messages that worker threads post to screens (``post_message`` is thread-safe).

Small dataclasses: a worker never touches widgets; it reports, and the screen updates itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from app.steps import StepResult


@dataclass
class StepProgress(Message):
    """A step changed state (RUNNING before it starts, the final outcome after)."""

    result: StepResult
    job: str = ""


@dataclass
class StepsPlanned(Message):
    """The steps a job will run, as (what, where) pairs, before the first one starts."""

    job: str
    steps: list[tuple[str, str]]


@dataclass
class LogLine(Message):
    """A line for a log pane (never holds secrets: it comes from app/ messages)."""

    text: str


@dataclass
class JobDone(Message):
    """A job finished; ``results`` are its step results, ``error`` a fatal problem if any."""

    job: str
    results: list[StepResult] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    extra: Any = None


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
class NodeUpdate(Message):
    """A node's onboarding or verification row changed (``progress`` is app/'s event object)."""

    job: str
    progress: Any


@dataclass
class NodesFound(Message):
    """Nodes read from a file or from kubectl, ready to be added to the plan."""

    entries: list[Any]
    source: str


@dataclass
class StatusReady(Message):
    """A fresh status snapshot from app.status."""

    status: Any
