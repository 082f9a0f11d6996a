"""Node onboarding: install the registry's CA wherever each node's runtime reads it.

Per node: connect, probe (OS family, runtimes and what their adapters read), decide the file
writes and restarts (``plan_node_actions``, pure, asking each runtime adapter in
``app.runtimes``), then run them as ``app.steps.Step`` objects. Nodes run in parallel in a
bounded thread pool; one failing node never stops the others. Every write is idempotent
(``Transport.write_file`` skips identical files) and restarts happen only when a file they depend
on really changed (or an earlier run left the restart owed). Only ``ca.crt`` ever leaves the
operator's machine.

Restarts are rolled (``app.runtimes.restarts``): once every node's files are written, the nodes
that owe a restart restart in waves: the first alone (the canary), then at most
``max_restarts`` at a time, k3s/RKE2 servers never two at once. A service not active after its
restart gets its previous files back and is restarted again; the node is reported failed, and
no later wave runs.
"""

from __future__ import annotations

import contextlib
import enum
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from app.address import RegistryAddress
from app.errors import RegwizError, UsageError
from app.node_credentials import pull_credential
from app.plan import Plan, ResolvedNode, Secrets
from app.runtimes import registry as runtimes
from app.runtimes.base import (
    BACKUP_INFIX,
    REGWIZ_MARK,
    CommandAction,
    CredentialAction,
    FileAction,
    MergeAction,
    MirrorJob,
    NodeAction,
    NodeCredential,
    NodeMirror,
    NodeSetupError,
    NoteAction,
    RegistriesYamlAction,
    RemoveAction,
    RuntimeAdapter,
    would_change,
)
from app.runtimes.credentials import (
    FORMAT_REGISTRIES_YAML,
    merge_docker_config,
    merge_registries_auth,
)
from app.runtimes.probe import NodeFacts, probe_node
from app.runtimes.rancher import merge_registries_yaml
from app.runtimes.restarts import (
    RESTART_TIMEOUT,
    OwedRestart,
    RestartCandidate,
    RestartWave,
    SavedFile,
    drop_record,
    owed_restarts,
    plan_waves,
    recorded_restarts,
    restart,
    restart_details,
    write_record,
)
from app.steps import Outcome, Outcomes, Step, StepResult, run_steps
from app.transport.base import Transport, TransportError
from app.transport.hostkeys import HostKeyPolicy
from app.user_waits import Stopwatch, UserWaits

DEFAULT_PARALLEL = 16
DEFAULT_NODE_TIMEOUT = 300.0
COMMAND_TIMEOUT = 60.0


class NodeState(str, enum.Enum):
    """A node's state in NodeProgress.state and NodeResult.status; the value is what the
    results file and the CLI show."""

    PENDING = "pending"
    CONNECTING = "connecting"
    DETECTING = "detecting"
    RUNNING = "running"
    WAITING = "waiting"  # files written; its restart waits for its wave
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PLANNED = "planned"

    # Printed and formatted as the bare value ("changed"), as the plain strings were.
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# The states by their former module-level names, still used by the CLI and the TUI.
PENDING, CONNECTING, DETECTING, RUNNING, WAITING = (
    NodeState.PENDING, NodeState.CONNECTING, NodeState.DETECTING, NodeState.RUNNING,
    NodeState.WAITING,
)
CHANGED, UNCHANGED, FAILED, CANCELLED, PLANNED = (
    NodeState.CHANGED, NodeState.UNCHANGED, NodeState.FAILED, NodeState.CANCELLED,
    NodeState.PLANNED,
)
FINAL_STATES = (CHANGED, UNCHANGED, FAILED, CANCELLED, PLANNED)

# Readable causes for the summary, keyed by TransportError/NodeSetupError kind.
REASONS = {
    "unreachable": "unreachable",
    "auth": "auth failed",
    "host-key-unknown": "host key unknown",
    "host-key-changed": "host key changed",
    "host-key-rejected": "host key rejected",
    "sudo-password": "sudo password wrong or missing",
    "permission": "permission denied",
    "disk-full": "disk full",
    "timeout": "timed out",
    "command": "command failed",
    "io": "transfer failed",
    "unknown-runtime": "unknown runtime",
    "unknown-os": "unknown OS",
    "config": "node config problem",
    "restart-failed": "restart failed",
    "mirror-auth": "mirror needs a login",
    "not-restarted": "not restarted",
    "cancelled": "cancelled",
    "internal": "internal error",
}


@dataclass(frozen=True)
class NodeProgress:
    """One live event for one node, delivered from a worker thread to ``on_progress``."""

    host: str
    state: NodeState  # pending/connecting/detecting/running, or a final state
    runtime: str  # comma-separated runtimes being configured ("" until known)
    message: str
    changed_files: tuple[str, ...]
    seconds: float


ProgressHandler = Callable[[NodeProgress], None]


@dataclass
class NodeResult:
    """The outcome of one node; ``to_dict`` is what the results file keeps (no secrets)."""

    host: str
    ssh_user: str
    ssh_port: int
    status: NodeState
    reason: str = ""  # short cause when failed (a REASONS value)
    message: str = ""
    hint: str | None = None
    runtimes: list[str] = field(default_factory=list)
    os_family: str = ""
    changed_files: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    dry_run_lines: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the node's own time: waits for the user's answers are left out
    waited: float = 0.0  # seconds the node waited for the user (a host-key question)
    finished_at: str = ""
    # The pull credential this run left on the node: its fingerprint, "removed", or "" (not
    # managed, or not known because the run failed). Never the credential itself.
    credential: str = ""
    notes: list[str] = field(default_factory=list)  # what the run decided on its own
    kind: str = ""  # the error kind of a failure (app.errors), for callers that decide on it

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["steps"] = [step.to_dict() for step in self.steps]
        data["seconds"] = round(self.seconds, 3)
        data["waited"] = round(self.waited, 3)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeResult:
        """The result ``to_dict`` saved; raises ValueError when ``data`` is not one."""
        try:
            return cls(
                host=_text(data, "host"),
                ssh_user=_text(data, "ssh_user"),
                ssh_port=int(data["ssh_port"]),
                status=NodeState(data["status"]),
                reason=_text(data, "reason", ""),
                message=_text(data, "message", ""),
                hint=data.get("hint") if isinstance(data.get("hint"), str) else None,
                runtimes=_texts(data, "runtimes"),
                os_family=_text(data, "os_family", ""),
                changed_files=_texts(data, "changed_files"),
                restarted=_texts(data, "restarted"),
                steps=[_step_from_dict(step) for step in data.get("steps") or []],
                dry_run_lines=_texts(data, "dry_run_lines"),
                notes=_texts(data, "notes"),
                kind=_text(data, "kind", ""),
                seconds=float(data.get("seconds") or 0.0),
                waited=float(data.get("waited") or 0.0),
                finished_at=_text(data, "finished_at", ""),
                credential=_text(data, "credential", ""),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a saved node result: {error!r}") from None


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected text, got {value!r}")
    return value


def _texts(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key}: expected a list of text, got {value!r}")
    return list(value)


def _step_from_dict(data: dict[str, Any]) -> StepResult:
    """A StepResult as StepResult.to_dict wrote it."""
    return StepResult(
        what=_text(data, "what"),
        where=_text(data, "where"),
        outcome=Outcome(data["outcome"]),
        message=_text(data, "message", ""),
        hint=data.get("hint") if isinstance(data.get("hint"), str) else None,
        seconds=float(data.get("seconds") or 0.0),
    )


@dataclass
class OnboardReport(Outcomes):
    results: list[NodeResult]
    registry: str
    ca_fingerprint: str
    dry_run: bool
    seconds: float
    waves: list[RestartWave] = field(default_factory=list)  # the restart waves, in order

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if r.status in (FAILED, CANCELLED)]

    def counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in FINAL_STATES}
        for result in self.results:
            status = NodeState(result.status).value
            counts[status] = counts.get(status, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "ca_fingerprint": self.ca_fingerprint,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
            "restart_waves": [{"wave": w.number, "canary": w.canary, "hosts": list(w.hosts)}
                              for w in self.waves],
            "nodes": [r.to_dict() for r in self.results],
        }


# --------------------------------------------------------------------------- the CA to install


@dataclass(frozen=True)
class CaCertificate:
    pem: bytes
    fingerprint: str  # SHA-256, "AB:CD:..."


def load_ca_certificate(plan: Plan) -> CaCertificate:
    """Read the CA nodes trust (``Plan.trusted_ca_path``: one certificate, or a CA rotation's
    bundle of two), refusing key material and anything that is not PEM certificates."""
    from cryptography import x509

    from app.certs import fingerprint

    path = plan.trusted_ca_path
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        how = ("create it first: regwiz certs --plan FILE" if plan.registry.managed else
               "fetch the registry's CA: regwiz certs fetch-ca --plan FILE (or set "
               "registry.ca_file to the CA file its administrator gave you)")
        raise RegwizError(f"the CA certificate {path} does not exist", how) from None
    except OSError as error:
        raise RegwizError(f"cannot read the CA certificate {path}: {error.strerror}") from None
    if b"PRIVATE KEY" in pem:
        # Only the certificate may travel to nodes, never key material.
        raise RegwizError(f"{path} contains a private key; refusing to send it to any node",
                          "keep ca.crt certificate-only (the key belongs in ca.key)")
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise RegwizError(f"{path} is not a PEM certificate",
                          "regenerate it with regwiz certs, or import the right file") from None
    return CaCertificate(pem, fingerprint(cert))


# --------------------------------------------------------------------------- actions (pure)


def plan_node_actions(facts: NodeFacts, *, address: RegistryAddress, ca_pem: bytes,
                      os_trust_store: bool, credential: NodeCredential | None = None,
                      mirrors: MirrorJob | None = None) -> list[NodeAction]:
    """Every write and command one node needs, in order; raises NodeSetupError when impossible.

    With ``credential``, the pull credential is installed (or removed) too: in each runtime's
    own files before that runtime's restarts, then in the kubelet's config.json (every node).
    With ``mirrors``, each runtime's mirror files follow (before its restarts, which then also
    trigger on them); what a runtime refuses (a private cache it cannot log in to) fails last,
    after every file the node can have.
    """
    if not facts.runtimes and not os_trust_store:
        found = ", ".join(facts.detected) or "none"
        choices = "/".join(f'"{name}"' for name in runtimes.plan_runtimes())
        raise NodeSetupError(
            f"no container runtime to configure was found (detected: {found})",
            f"set runtime = {choices} for this node, or "
            "os_trust_store = true to trust the CA system-wide",
            kind="unknown-runtime",
        )
    actions: list[NodeAction] = []
    refusals: list[NodeAction] = []
    for adapter, name in _configured(facts.runtimes):
        trust = adapter.trust_actions(name, facts, address, ca_pem)
        if credential is not None:
            _before_commands(trust, adapter.credential_actions(name, facts, address, credential))
        if mirrors is not None:
            extra = adapter.mirror_actions(name, facts, mirrors)
            refused = [a for a in extra if isinstance(a, NoteAction) and a.refuse]
            _before_commands(trust, [a for a in extra if not isinstance(a, CommandAction)
                                     and a not in refused])
            trust += [a for a in extra if isinstance(a, CommandAction)]
            refusals += refused
        actions += trust
    for store, name in runtimes.stores_in_use(os_trust_store):
        actions += store.trust_actions(name, facts, address, ca_pem)
    if credential is not None:
        actions += runtimes.node_wide_credential_actions(credential)
    return actions + refusals


def _before_commands(actions: list[NodeAction], more: list[NodeAction]) -> None:
    """Insert ``more`` before the first command of ``actions`` (its restarts read them)."""
    first = next((i for i, a in enumerate(actions) if isinstance(a, CommandAction)), len(actions))
    actions[first:first] = more


def mirror_job(plan: Plan, node: ResolvedNode, ca_pem: bytes,
               credential: NodeCredential | None) -> MirrorJob:
    """The plan's mirrors as ``node`` uses them."""
    mirrors = tuple(NodeMirror(m.upstream, plan.mirror_address(m), m.private)
                    for m in plan.mirrors)
    login = credential if credential is not None and not credential.remove else None
    return MirrorJob(mirrors, plan.registry_address, ca_pem, node.mirror_only, login)


def _configured(names: Iterable[str]) -> list[tuple[RuntimeAdapter, str]]:
    """Each runtime to configure once, in order: an adapter may fold names that share files."""
    chosen = list(dict.fromkeys(names))
    unknown = [name for name in chosen if runtimes.adapter_for(name) is None]
    if unknown:
        choices = ", ".join(runtimes.plan_runtimes())
        raise NodeSetupError(f"unknown runtime {unknown[0]!r}",
                             f"use auto, {choices} or none", kind="unknown-runtime")
    grouped: dict[RuntimeAdapter, list[str]] = {}
    for adapter, name in runtimes.in_use(chosen):
        grouped.setdefault(adapter, []).append(name)
    return [(adapter, name) for adapter, group in grouped.items()
            for name in adapter.configured(group)]


# --------------------------------------------------------------------------- steps on a node


class _Deadline:
    """The node's time budget; time spent waiting for the user's answer does not use it up."""

    def __init__(self, seconds: float, stopwatch: Stopwatch) -> None:
        self.seconds, self.stopwatch = seconds, stopwatch

    def timeout(self, wanted: float) -> float:
        remaining = self.seconds - self.stopwatch.elapsed()
        if remaining <= 0:
            raise TransportError("the node's time budget ran out", "raise --timeout",
                                 kind="timeout")
        return max(1.0, min(wanted, remaining))


@dataclass
class _NodeRun:
    """Shared by a node's steps: what changed so far decides whether restarts are needed."""

    transport: Transport
    node: ResolvedNode
    deadline: _Deadline
    changed_files: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    # How to put back each file this run backed up before changing it (restart rollback).
    saved: dict[str, SavedFile] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what a runtime cannot do as asked

    def save(self, path: str, backup: str | None, mode: int) -> None:
        self.saved.setdefault(path, SavedFile(backup, mode))  # the first copy: the node's own


def split_restarts(actions: list[NodeAction]) -> tuple[list[NodeAction], list[CommandAction]]:
    """The file writes (and other commands) a node runs at once, and its service restarts,
    which wait for their wave."""
    restarts = [a for a in actions if isinstance(a, CommandAction) and a.is_restart]
    return [a for a in actions if not (isinstance(a, CommandAction) and a.is_restart)], restarts


def build_node_steps(run: _NodeRun, actions: list[NodeAction]) -> list[Step]:
    return [_step_for(run, action) for action in actions]


def restart_step(run: _NodeRun, owed: OwedRestart) -> Step:
    action = owed.action
    return Step(action.what, run.node.host, action.why, lambda: _restart(run, owed),
                [f"run {' '.join(action.argv)} (only if {', '.join(action.triggers)} changed, "
                 "or an earlier run left the restart owed)", *restart_details(action)])


def _step_for(run: _NodeRun, action: NodeAction) -> Step:
    where = run.node.host
    if isinstance(action, FileAction):
        details = [f"write {action.path} (mode {action.mode:o})"]
        if action.backup:
            details.append(f"keep the current file, if any, as {action.path}.regwiz-backup-<time>")
        return Step(action.what, where, action.why, lambda: _write(run, action), details)
    if isinstance(action, RegistriesYamlAction):
        return Step(action.what, where, action.why, lambda: _merge_yaml(run, action),
                    [f"merge into {action.path} (mode 600)"])
    if isinstance(action, MergeAction):
        return Step(action.what, where, action.why, lambda: _merge(run, action),
                    [f"merge into {action.path} (other entries kept; the old file backed up)"])
    if isinstance(action, RemoveAction):
        keep = f"regwiz's kept as {action.path}{BACKUP_INFIX}<time>"
        done = (f"put back the operator's own {action.path} from {action.restore_from}"
                if action.restore_from else f"remove {action.path}")
        return Step(action.what, where, action.why, lambda: _remove(run, action),
                    [f"{done} ({keep})"])
    if isinstance(action, NoteAction):
        return Step(action.what, where, action.note, lambda: _note(run, action),
                    [f"{'fails' if action.refuse else 'changes nothing'}: {action.note}"])
    if isinstance(action, CredentialAction):
        verb = "remove regwiz's entry for" if action.credential.remove else "set the entry for"
        return Step(action.what, where, action.why, lambda: _merge_credential(run, action),
                    [f"{verb} {action.credential.registry} in {action.path} "
                     f"(mode {action.mode:o}; other entries kept; content not shown)"])
    only_if = ", ".join(action.triggers)
    return Step(action.what, where, action.why, lambda: _command(run, action),
                [f"run {' '.join(action.argv)} (only if {only_if} changed)"])


def _write(run: _NodeRun, action: FileAction) -> Outcome:
    t, sudo = run.transport, run.node.sudo
    if action.backup:
        current = t.read_file(action.path, sudo=sudo, timeout=run.deadline.timeout(COMMAND_TIMEOUT))
        if current == action.content:
            return Outcome.UNCHANGED
        run.save(action.path, _backup(run, action.path, current), action.mode)
    changed = t.write_file(action.path, action.content, mode=action.mode, sudo=sudo,
                           timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    if changed:
        run.changed_files.append(action.path)
    return Outcome.CHANGED if changed else Outcome.UNCHANGED


def _merge_yaml(run: _NodeRun, action: RegistriesYamlAction) -> Outcome:
    current = _read(run, action.path)
    merged = _merged_yaml(current, action)
    return _write_merged(run, action.path, current,
                         merged.encode() if merged is not None else None, 0o600, backup=True)


def _read(run: _NodeRun, path: str) -> bytes | None:
    return run.transport.read_file(path, sudo=run.node.sudo,
                                   timeout=run.deadline.timeout(COMMAND_TIMEOUT))


def _write_merged(run: _NodeRun, path: str, current: bytes | None, merged: bytes | None,
                  mode: int, *, backup: bool) -> Outcome:
    """Write ``merged`` (None: nothing to change), first backing up ``current`` when asked."""
    if merged is None:
        return Outcome.UNCHANGED
    if backup:
        run.save(path, _backup(run, path, current), mode)
    run.transport.write_file(path, merged, mode=mode, sudo=run.node.sudo,
                             timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    run.changed_files.append(path)
    return Outcome.CHANGED


def _merged_yaml(current: bytes | None, action: RegistriesYamlAction) -> str | None:
    """The node's registries.yaml with our entry added; None when it is already there.

    Both the real run and the dry run use this, so a preview never disagrees with a run.
    """
    text = current.decode("utf-8", errors="replace") if current is not None else None
    return merge_registries_yaml(text, action.address, action.ca_path)


def _merge_credential(run: _NodeRun, action: CredentialAction) -> Outcome:
    """Merge the pull credential into the node's file; no backup (it would keep an old
    secret around), no rewrite when the parsed content already matches."""
    current = _read(run, action.path)
    return _write_merged(run, action.path, current, _merged_credential(current, action),
                         action.mode, backup=False)


def _merge(run: _NodeRun, action: MergeAction) -> Outcome:
    """A file merged from its current content (its mode and a symlink kept by write_file)."""
    current = _read(run, action.path)
    return _write_merged(run, action.path, current, action.merge(current), action.mode,
                         backup=action.backup)


def _remove(run: _NodeRun, action: RemoveAction) -> Outcome:
    t, sudo = run.transport, run.node.sudo
    current = _read(run, action.path)
    if not would_change(action, current):
        return Outcome.UNCHANGED
    original = _read(run, action.restore_from) if action.restore_from else None
    if original is not None and original.startswith(REGWIZ_MARK):
        original = None  # never "restore" one of regwiz's own files
    run.save(action.path, _backup(run, action.path, current), 0o644)
    if original is not None:  # mode and owner stay those of the file it replaced
        t.write_file(action.path, original, mode=0o644, sudo=sudo,
                     timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    else:
        t.run(["rm", "-f", "--", action.path], sudo=sudo,
              timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    run.changed_files.append(action.path)
    return Outcome.CHANGED


def _note(run: _NodeRun, action: NoteAction) -> Outcome:
    """What the runtime cannot do: a note on the node's result, or its failure."""
    if action.refuse:
        raise NodeSetupError(f"node {run.node.host}: {action.note}", action.hint,
                             kind=action.kind)
    if action.note not in run.notes:
        run.notes.append(action.note)
    return Outcome.UNCHANGED


def _merged_credential(current: bytes | None, action: CredentialAction) -> bytes | None:
    """The file with the credential merged in (or taken out); None when nothing changes."""
    if action.location.format == FORMAT_REGISTRIES_YAML:
        text = current.decode("utf-8", errors="replace") if current is not None else None
        merged = merge_registries_auth(text, action.credential)
        return merged.encode("utf-8") if merged is not None else None
    return merge_docker_config(current, action.credential, action.path)


def _backup(run: _NodeRun, path: str, current: bytes | None) -> str | None:
    """Keep the node's current file, if any, as ``<path>.regwiz-backup-<UTC time>`` (0600);
    the copy's path, None when there was no file."""
    if current is None:
        return None
    # Microseconds: two backups of one file in the same second (a rewrite right after the
    # first write) must not overwrite the first, which may be the operator's own file.
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
    backup = f"{path}{BACKUP_INFIX}{stamp}"
    run.transport.write_file(backup, current, mode=0o600,
                             sudo=run.node.sudo, timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    return backup


def _command(run: _NodeRun, action: CommandAction) -> Outcome:
    """A command that is not a restart (e.g. the OS bundle rebuild), when its files changed."""
    if not set(action.triggers) & set(run.changed_files):
        return Outcome.UNCHANGED
    run.transport.run(list(action.argv), sudo=run.node.sudo,
                      timeout=run.deadline.timeout(RESTART_TIMEOUT))
    return Outcome.CHANGED


def _restart(run: _NodeRun, owed: OwedRestart) -> Outcome:
    """An owed restart, in its wave; rolled back when the service does not come back."""
    restart(run.transport, owed, sudo=run.node.sudo, timeout=run.deadline.timeout)
    run.restarted.append(owed.service)
    return Outcome.CHANGED


def _record_owed(run: _NodeRun, restarts: list[CommandAction], facts: NodeFacts
                 ) -> list[OwedRestart]:
    """After the file steps: the restarts this node owes, recorded on the node before any
    restart runs anywhere (so a run stopped before them is finished by the next run)."""
    plan = owed_restarts(restarts, recorded_restarts(facts.probe), run.changed_files, run.saved,
                         facts.probe.active_services)
    sudo = run.node.sudo
    for owed in plan.record:
        write_record(run.transport, owed, sudo=sudo, timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    for stale in plan.drop:  # its service no longer runs: it reads its files when it starts
        drop_record(run.transport, stale, sudo=sudo, timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    return plan.owed


# --------------------------------------------------------------------------- dry run


def preview_actions(run: _NodeRun, actions: list[NodeAction], facts: NodeFacts
                    ) -> tuple[list[str], list[OwedRestart]]:
    """What a real run would do on this node, read-only: pending steps in full, the rest named;
    and the restarts it would owe (for the waves)."""
    lines: list[str] = []
    would_change: set[str] = set()
    writes, restarts = split_restarts(actions)
    for action, step in zip(writes, build_node_steps(run, writes), strict=True):
        if isinstance(action, NoteAction) and not action.refuse:
            lines.append(f"[{step.where}] {step.what}: {action.note}")
        elif _would_change(run, action, would_change):
            lines.append(step.describe())
        else:
            lines.append(f"[{step.where}] {step.what}: already in place")
    owed = owed_restarts(restarts, recorded_restarts(facts.probe), would_change, {},
                         facts.probe.active_services).owed
    lines += [restart_step(run, item).describe() for item in owed]
    services = {item.service for item in owed}
    lines += [f"[{run.node.host}] {action.what}: already in place"
              for action in restarts if action.service not in services]
    return lines, owed


def _would_change(run: _NodeRun, action: NodeAction, changing: set[str]) -> bool:
    t, sudo = run.transport, run.node.sudo
    timeout = run.deadline.timeout(COMMAND_TIMEOUT)
    if isinstance(action, CommandAction):
        return bool(set(action.triggers) & changing)
    if isinstance(action, NoteAction):
        return action.refuse
    current = t.read_file(action.path, sudo=sudo, timeout=timeout)
    if isinstance(action, FileAction | MergeAction | RemoveAction):
        changes = would_change(action, current)
    elif isinstance(action, CredentialAction):
        changes = _merged_credential(current, action) is not None
    else:
        changes = _merged_yaml(current, action) is not None
    if changes:
        changing.add(action.path)
    return changes


# --------------------------------------------------------------------------- one node


Connector = Callable[[ResolvedNode], Transport]


@dataclass
class _Job:
    """Everything a worker needs, shared read-only by all nodes of one onboarding run."""

    address: RegistryAddress
    ca: CaCertificate
    credential: NodeCredential | None
    connect: Connector
    dry_run: bool
    timeout: float
    on_progress: ProgressHandler | None
    should_stop: Callable[[], bool]
    waits: UserWaits = field(default_factory=UserWaits)
    max_restarts: int = DEFAULT_PARALLEL  # nodes restarting at once after the canary
    plan: Plan | None = None  # for its mirrors (None: mirrors are left alone)


class _Reporter:
    """Sends NodeProgress events for one node and times it (without its waits for the user:
    create it on the thread that runs the node)."""

    def __init__(self, job: _Job, node: ResolvedNode) -> None:
        self.job, self.node = job, node
        self.stopwatch = Stopwatch(job.waits)
        self.runtime = ""
        self.changed: tuple[str, ...] = ()
        # The node's time before it waited for its restart wave (that wait is not its own).
        self.earlier, self.earlier_waited = 0.0, 0.0
        self.paused = False

    def elapsed(self) -> float:
        return self.earlier + (0.0 if self.paused else self.stopwatch.elapsed())

    def waited(self) -> float:
        return self.earlier_waited + (0.0 if self.paused else self.stopwatch.waited())

    def pause(self) -> None:
        """The node waits for its restart wave (called on the thread that ran it so far)."""
        self.earlier, self.earlier_waited = self.elapsed(), self.waited()
        self.paused = True

    def resume(self) -> None:
        """Its wave runs: time it on the calling thread (waits for the user are per thread)."""
        self.stopwatch, self.paused = Stopwatch(self.job.waits), False

    def emit(self, state: NodeState, message: str = "") -> None:
        if self.job.on_progress is None:
            return
        event = NodeProgress(self.node.host, state, self.runtime, message, self.changed,
                             round(self.elapsed(), 3))
        with contextlib.suppress(Exception):  # a broken display must not break onboarding
            self.job.on_progress(event)


@dataclass
class NodeWork:
    """One node through the run: its result so far, and the restarts it still owes (run in
    its wave; a node that owes none is finished)."""

    node: ResolvedNode
    result: NodeResult
    reporter: _Reporter
    owed: list[OwedRestart] = field(default_factory=list)

    @property
    def quorum(self) -> bool:
        return any(owed.action.quorum for owed in self.owed)

    def finish(self) -> None:
        """The node's outcome is final: time it and tell the caller."""
        result = self.result
        result.seconds, result.waited = self.reporter.elapsed(), self.reporter.waited()
        result.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.reporter.changed = tuple(result.changed_files)
        self.reporter.emit(result.status, _final_message(result))


@contextlib.contextmanager
def _node_failures(result: NodeResult) -> Iterator[None]:
    """Every problem inside becomes this node's failure, never the run's."""
    try:
        yield
    except RegwizError as error:
        _fail(result, getattr(error, "kind", "config"), error.message, error.hint)
    except Exception as error:  # a bug or an unexpected library error: still only this node
        _fail(result, "internal", f"{type(error).__name__}: {error}",
              "this is a regwiz bug; please report it with the message above")


def onboard_node(job: _Job, node: ResolvedNode) -> NodeWork:
    """Write one node's files; never raises: every problem becomes a failed NodeResult. A node
    that owes a restart waits for its wave (``run_restart_waves``), any other is finished."""
    work = NodeWork(node, NodeResult(node.host, node.ssh_user, node.ssh_port, status=FAILED),
                    _Reporter(job, node))
    with _node_failures(work.result):
        if job.should_stop():
            _cancel(work.result, "cancelled before it started")
        else:
            work.owed = _onboard_connected(job, node, work.result, work.reporter)
    if work.result.status in (FAILED, CANCELLED):
        work.owed = []
    if work.owed and not job.dry_run:
        work.reporter.pause()
        work.reporter.emit(WAITING, "files in place; waiting for its restart wave")
    else:
        work.finish()
    return work


def _onboard_connected(job: _Job, node: ResolvedNode, result: NodeResult,
                       reporter: _Reporter) -> list[OwedRestart]:
    deadline = _Deadline(job.timeout, reporter.stopwatch)
    reporter.emit(CONNECTING, f"connecting as {node.ssh_user} on port {node.ssh_port}")
    with job.connect(node) as transport:
        if node.sudo:
            reporter.emit(CONNECTING, "checking sudo")
            transport.run(["true"], sudo=True, timeout=deadline.timeout(COMMAND_TIMEOUT))
        reporter.emit(DETECTING, "detecting the OS and container runtimes")
        facts = probe_node(transport, sudo=node.sudo, runtime=node.runtime,
                              timeout=deadline.timeout(COMMAND_TIMEOUT))
        result.runtimes, result.os_family = list(facts.runtimes), facts.os_family
        os_store = runtimes.trusts_system_store(node.runtime, node.os_trust_store, facts)
        if os_store and not node.os_trust_store:
            result.notes.append("no container runtime found: the CA goes into the OS trust "
                                "store (runtime = \"auto\")")
        reporter.runtime = ",".join(facts.runtimes) or ("none" if os_store else "")
        mirrors = (mirror_job(job.plan, node, job.ca.pem, job.credential)
                   if job.plan is not None else None)
        actions = plan_node_actions(facts, address=job.address, ca_pem=job.ca.pem,
                                    os_trust_store=os_store, credential=job.credential,
                                    mirrors=mirrors)
        run = _NodeRun(transport, node, deadline)
        if job.dry_run:
            result.dry_run_lines, owed = preview_actions(run, actions, facts)
            result.status = PLANNED
            return owed
        writes, restarts = split_restarts(actions)
        try:
            _run_steps(job, run, build_node_steps(run, writes), result, reporter)
        except RegwizError:
            with contextlib.suppress(RegwizError):  # best effort: the next run restarts it
                _record_owed(run, restarts, facts)
            raise
        return _record_owed(run, restarts, facts)


def _restart_node(job: _Job, work: NodeWork) -> None:
    """Run a node's owed restarts (its wave's turn), over a new connection."""
    work.reporter.resume()
    # A budget of its own: a restart cut short by the files' time could leave the service down.
    deadline = _Deadline(job.timeout, work.reporter.stopwatch)
    with _node_failures(work.result), job.connect(work.node) as transport:
        run = _NodeRun(transport, work.node, deadline,
                       changed_files=list(work.result.changed_files))
        steps = [restart_step(run, owed) for owed in work.owed]
        _run_steps(job, run, steps, work.result, work.reporter)
    work.finish()


def _run_steps(job: _Job, run: _NodeRun, steps: list[Step], result: NodeResult,
               reporter: _Reporter) -> None:
    """app.steps.run_steps, plus what onboarding adds: live node events, each step's result
    recorded as soon as it is known, the failing error re-raised (its ``kind`` names the
    node's failure reason) and a stop request reported as a cancelled node."""
    errors: list[RegwizError] = []

    def progress(step: StepResult) -> None:
        if step.outcome is Outcome.RUNNING:
            reporter.emit(NodeState.RUNNING, step.what)
            return
        result.steps.append(step)  # kept even if a later step raises something unexpected
        if step.outcome not in (Outcome.FAILED, Outcome.SKIPPED):
            reporter.changed = tuple(run.changed_files)

    run_steps([_keeping_error(step, errors) for step in steps], progress, job.should_stop)
    if errors:
        _collect(result, run)
        raise errors[0]
    skipped = next((s for s in result.steps if s.outcome is Outcome.SKIPPED), None)
    if skipped is not None:  # nothing failed, so a stop request skipped the rest
        _cancel(result, f"cancelled before: {skipped.what}")
        return
    _collect(result, run)
    result.status = CHANGED if run.changed_files or run.restarted else UNCHANGED
    if job.credential is not None:
        result.credential = job.credential.fingerprint or "removed"


def _keeping_error(step: Step, errors: list[RegwizError]) -> Step:
    """The same step, remembering the RegwizError it raises (run_steps keeps only its text)."""

    def run() -> Outcome:
        try:
            return step.run()
        except RegwizError as error:
            errors.append(error)
            raise

    return Step(step.what, step.where, step.why, run, step.details)


def _collect(result: NodeResult, run: _NodeRun) -> None:
    result.changed_files, result.restarted = list(run.changed_files), list(run.restarted)
    result.notes += [note for note in run.notes if note not in result.notes]


def _skip_rest(result: NodeResult, steps: list[Step]) -> None:
    result.steps += [StepResult(s.what, s.where, Outcome.SKIPPED, "not run") for s in steps]


def _fail(result: NodeResult, kind: str, message: str, hint: str | None) -> None:
    from app.errors import kind_category

    result.status, result.kind = FAILED, kind
    # The two sudo kinds keep their own words; other specific kinds (e.g. "login-refused")
    # read as their category ("auth failed") in the summary.
    sudo = {"sudo-password-missing": "sudo password missing",
            "sudo-password-wrong": "sudo password wrong"}
    result.reason = sudo.get(kind) or REASONS.get(kind) or REASONS.get(kind_category(kind), kind)
    result.message, result.hint = message, hint


def _cancel(result: NodeResult, message: str) -> None:
    result.status, result.reason, result.message = CANCELLED, REASONS["cancelled"], message


def _final_message(result: NodeResult) -> str:
    if result.status in (FAILED, CANCELLED):
        return f"{result.reason}: {result.message}"
    if result.status == PLANNED:
        pending = [line for line in result.dry_run_lines if not line.endswith("already in place")]
        return f"dry run: {len(pending)} step(s) would change something"
    if result.status == UNCHANGED:
        return "already set up" + "".join(f"; {note}" for note in result.notes)
    restarted = f"; restarted {', '.join(result.restarted)}" if result.restarted else ""
    notes = "".join(f"; {note}" for note in result.notes)
    return f"{len(result.changed_files)} file(s) written{restarted}{notes}"


# --------------------------------------------------------------------------- many nodes


def onboard_nodes(
    plan: Plan,
    secrets: Secrets,
    *,
    only: Iterable[str] | None = None,
    parallel: int = DEFAULT_PARALLEL,
    dry_run: bool = False,
    host_key_policy: HostKeyPolicy,
    on_progress: ProgressHandler | None = None,
    should_stop: Callable[[], bool] | None = None,
    timeout: float = DEFAULT_NODE_TIMEOUT,
    connect: Connector | None = None,
    save: bool = True,
    credential_revoked: bool = False,
    rejected_host_keys: Collection[str] = (),
    max_restarts: int | None = None,
) -> OnboardReport:
    """Onboard the plan's nodes (or ``only`` those hosts) in parallel; never raises per node.

    Files are written on up to ``parallel`` nodes at once; then the nodes that owe a restart
    restart in waves: the first alone, then up to ``max_restarts`` at a time (default and
    ceiling: ``parallel``), k3s/RKE2 servers one per wave (app.runtimes.restarts).

    ``on_progress`` is called from worker threads (the TUI must hop to its event loop).
    ``should_stop`` is polled before each node and between steps. Results are saved next to the
    plan (``results_path``) unless ``dry_run`` or ``save=False``.

    The pull account's credential (``credentials/cluster.json``, app.node_credentials) is
    installed on every node too, or removed when the account is revoked
    (``credential_revoked``, or the file gone).

    ``rejected_host_keys``: hosts whose key the user already rejected (the wizard's one
    host-key screen): not connected to, reported failed "host key rejected". A node's
    ``seconds`` leave out the time the policy's questions waited for the user
    (``host_key_policy.waits``, also the clock nodes are timed with).
    """
    if parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {parallel}")
    if max_restarts is not None and max_restarts < 1:
        raise UsageError(f"--max-restarts must be at least 1, got {max_restarts}")
    nodes = select_nodes(plan, only)
    job = _Job(
        address=plan.registry_address,
        ca=load_ca_certificate(plan),
        credential=pull_credential(plan, revoked=credential_revoked),
        connect=_refusing(connect or default_connector(secrets, host_key_policy),
                          frozenset(rejected_host_keys)),
        dry_run=dry_run,
        timeout=timeout,
        on_progress=on_progress,
        should_stop=should_stop or (lambda: False),
        # tests with a fake connector pass no policy
        waits=host_key_policy.waits if host_key_policy is not None else UserWaits(),
        max_restarts=min(max_restarts or parallel, parallel),
        plan=plan,
    )
    started = time.monotonic()
    for node in nodes:
        _Reporter(job, node).emit(PENDING, "waiting")
    with _interruptible(job):
        works = _in_pool(lambda node: onboard_node(job, node), nodes, parallel)
        waves = run_restart_waves(job, works)
    report = OnboardReport([work.result for work in works], job.address.reference,
                           job.ca.fingerprint, dry_run, time.monotonic() - started, waves)
    if save and not dry_run:
        save_results(plan, report)
    return report


def update_node_credentials(
    plan: Plan,
    secrets: Secrets,
    *,
    host_key_policy: HostKeyPolicy,
    revoked: bool = False,
    on_progress: ProgressHandler | None = None,
    parallel: int = DEFAULT_PARALLEL,
    timeout: float = DEFAULT_NODE_TIMEOUT,
) -> OnboardReport:
    """Bring every node's pull credential up to date after ``regwiz accounts rotate|revoke
    cluster``: an onboarding run of all nodes (the CA steps report unchanged), results saved.

    Nodes that fail (e.g. down) are in ``report.failed``; ``regwiz status`` shows them stale
    until a later ``regwiz onboard`` reaches them.
    """
    return onboard_nodes(plan, secrets, host_key_policy=host_key_policy, on_progress=on_progress,
                         parallel=parallel, timeout=timeout, credential_revoked=revoked)


_T = TypeVar("_T")
_R = TypeVar("_R")


@contextlib.contextmanager
def _interruptible(job: _Job) -> Iterator[None]:
    """On Ctrl-C (or any exception) inside, the other workers stop between steps."""
    interrupted = threading.Event()
    asked_to_stop = job.should_stop
    job.should_stop = lambda: interrupted.is_set() or asked_to_stop()
    try:
        yield
    except BaseException:
        interrupted.set()
        raise


def _in_pool(work: Callable[[_T], _R], items: list[_T], parallel: int) -> list[_R]:
    """``work`` on every item in a bounded pool, results in order; on an exception here (e.g.
    Ctrl-C) the pending items are dropped and the running ones finish first."""
    pool = ThreadPoolExecutor(max_workers=min(parallel, max(1, len(items))),
                              thread_name_prefix="onboard")
    try:
        futures = [pool.submit(work, item) for item in items]
        return [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def run_restart_waves(job: _Job, works: list[NodeWork]) -> list[RestartWave]:
    """Restart the nodes that owe it, wave after wave; a wave with a failed node stops the rest
    (their files stay written and their restarts recorded: the next run does them). In a dry
    run, only the waves."""
    owing = [work for work in works if work.owed]
    waves = plan_waves([RestartCandidate(w.node.host, w.quorum) for w in owing],
                       job.max_restarts)
    if job.dry_run:
        return waves
    by_host = {work.node.host: work for work in owing}
    for wave in waves:
        for host in wave.hosts:
            by_host[host].reporter.emit(WAITING, f"files in place; restart in {_wave_name(wave)}"
                                                 f" of {len(waves)}")
    stopped_by = ""
    for wave in waves:
        members = [by_host[host] for host in wave.hosts]
        if stopped_by or job.should_stop():
            for work in members:
                _hold(work, stopped_by)
            continue
        _in_pool(lambda work: _restart_node(job, work), members, len(members))
        failed = next((w for w in members if w.result.status is FAILED), None)
        if failed is not None:
            host = failed.node.host
            stopped_by = (f"canary node {host} failed" if wave.canary
                          else f"{host} failed its restart in wave {wave.number}")
    return waves


def _wave_name(wave: RestartWave) -> str:
    return "wave 1 (the canary)" if wave.canary else f"wave {wave.number}"


def _hold(work: NodeWork, stopped_by: str) -> None:
    """A node whose wave does not run: failed (``stopped_by`` a failed wave) or cancelled."""
    result = work.result
    result.steps += [StepResult(owed.action.what, work.node.host, Outcome.SKIPPED,
                                f"not run: {stopped_by or 'cancelled'}") for owed in work.owed]
    if stopped_by:
        _fail(result, "not-restarted",  # the reason reads "not restarted"
              f"{stopped_by}; its files are written and the restart is recorded on the node",
              "fix that node first, then run regwiz onboard again (or --retry-failed): it "
              "restarts this one too")
    else:
        _cancel(result, "cancelled before its restart; its files are written and the restart "
                        "is recorded on the node, so the next run does it")
    work.finish()


def _refusing(connect: Connector, rejected: frozenset[str]) -> Connector:
    """``connect``, except for the hosts whose key was rejected: those fail without a connection
    (connecting would only ask about the same key again)."""
    if not rejected:
        return connect

    def checked(node: ResolvedNode) -> Transport:
        if node.host in rejected:
            from app.connections import rejected_host_key_error

            raise rejected_host_key_error(node.host)
        return connect(node)

    return checked


def select_nodes(plan: Plan, only: Iterable[str] | None) -> list[ResolvedNode]:
    nodes = plan.resolved_nodes()
    if not nodes:
        raise UsageError("the plan lists no nodes",
                         "add [[nodes.hosts]] entries, or use --nodes-file / --from-kubectl")
    if only is None:
        return nodes
    wanted = dict.fromkeys(only)  # ordered, without repeats, O(1) membership
    known = {node.host for node in nodes}
    unknown = [host for host in wanted if host not in known]
    if unknown:
        raise UsageError(f"not a node of this plan: {', '.join(unknown)}",
                         f"known nodes: {', '.join(sorted(known))}")
    return [node for node in nodes if node.host in wanted]


def default_connector(secrets: Secrets, host_key_policy: HostKeyPolicy) -> Connector:
    """Open a node's transport the same way deploy opens the registry host's."""

    def connect(node: ResolvedNode) -> Transport:
        from app.connections import open_node_transport

        return open_node_transport(node, secrets, host_key_policy)

    return connect


# --------------------------------------------------------------------------- results file

_results_lock = threading.Lock()


def results_path(plan: Plan) -> Path:
    """``<plan>.onboard-results.json`` next to the plan, or under the user state dir."""
    if plan.path is not None:
        return plan.path.with_name(plan.path.stem + ".onboard-results.json")
    import platformdirs

    return Path(platformdirs.user_state_dir("regwiz")) / "onboard-results.json"


def load_results(plan: Plan) -> dict[str, dict[str, Any]]:
    """host -> the latest saved result for it ({} when nothing was saved yet)."""
    path = results_path(plan)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise RegwizError(f"cannot read the onboarding results {path}: {error}",
                          "delete the file and run regwiz onboard again") from None
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list):
        return {}
    return {n["host"]: n for n in nodes if isinstance(n, dict) and isinstance(n.get("host"), str)}


def load_node_results(plan: Plan) -> dict[str, NodeResult]:
    """host -> the latest saved result as a NodeResult; entries that do not parse are left out."""
    typed: dict[str, NodeResult] = {}
    for host, data in load_results(plan).items():
        try:
            typed[host] = NodeResult.from_dict(data)
        except ValueError:
            continue  # a hand-edited or older entry: the raw dict is still in load_results
    return typed


class ResultsNotSaved(RegwizError):
    """The nodes were onboarded, but the results file could not be written.

    ``report`` is the run's outcome all the same, for callers that want to show it.
    """

    def __init__(self, report: OnboardReport, path: Path, reason: str) -> None:
        done = ", ".join(f"{n} {state}" for state, n in report.counts().items() if n)
        super().__init__(
            f"the nodes were onboarded ({done or 'no nodes'}), but the results could not be "
            f"saved to {path}: {reason}; the previous results there are unchanged, so "
            "--retry-failed does not know about this run",
            "free some space (or fix the folder's permissions), then run regwiz onboard "
            "again: nodes already set up are left as they are",
        )
        self.report = report
        self.path = path


def save_results(plan: Plan, report: OnboardReport) -> Path:
    """Merge this run's node results into the results file (nodes not run keep theirs).

    Written atomically: on failure (e.g. a full disk) the previous file stays as it was, no temp
    file is left, and ResultsNotSaved carries the report.
    """
    from app.certs import os_reason
    from app.plan import atomic_write

    with _results_lock:
        merged = load_results(plan)
        merged.update({r.host: r.to_dict() for r in report.results})
        data = report.to_dict()
        data["nodes"] = list(merged.values())
        data["saved_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        path = results_path(plan)
        try:
            atomic_write(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), 0o644)
        except OSError as error:
            raise ResultsNotSaved(report, path, os_reason(error)) from None
        return path


def failed_hosts(plan: Plan) -> list[dict[str, Any]]:
    """Saved results of the nodes whose last run failed or was cancelled."""
    return [r for r in load_results(plan).values() if r.get("status") in (FAILED, CANCELLED)]
