"""Node onboarding: install the registry's CA wherever each node's runtime reads it.

Per node: connect, probe (OS family, runtimes, containerd config), decide the file writes and
restarts (``plan_node_actions``, pure), then run them as ``app.steps.Step`` objects. Nodes run in
parallel in a bounded thread pool; one failing node never stops the others. Every write is
idempotent (``Transport.write_file`` skips identical files) and restarts happen only when a file
they depend on really changed. Only ``ca.crt`` ever leaves the operator's machine.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from app import runtimes as rt
from app.errors import RegwizError, UsageError
from app.plan import Plan, ResolvedNode, Secrets
from app.steps import Outcome, Step, StepResult
from app.transport.base import Transport, TransportError
from app.transport.hostkeys import HostKeyPolicy

DEFAULT_PARALLEL = 16
DEFAULT_NODE_TIMEOUT = 300.0
COMMAND_TIMEOUT = 60.0
RESTART_TIMEOUT = 120.0

# Node states carried by NodeProgress.state and NodeResult.status.
PENDING, CONNECTING, DETECTING, RUNNING = "pending", "connecting", "detecting", "running"
CHANGED, UNCHANGED, FAILED, CANCELLED, PLANNED = (
    "changed", "unchanged", "failed", "cancelled", "planned",
)
FINAL_STATES = (CHANGED, UNCHANGED, FAILED, CANCELLED, PLANNED)

# Readable causes for the summary, keyed by TransportError/NodeSetupError kind.
REASONS = {
    "unreachable": "unreachable",
    "auth": "auth failed",
    "host-key-unknown": "host key unknown",
    "host-key-changed": "host key changed",
    "sudo-password": "sudo password wrong or missing",
    "permission": "permission denied",
    "disk-full": "disk full",
    "timeout": "timed out",
    "command": "command failed",
    "io": "transfer failed",
    "unknown-runtime": "unknown runtime",
    "unknown-os": "unknown OS",
    "config": "node config problem",
    "cancelled": "cancelled",
    "internal": "internal error",
}


@dataclass(frozen=True)
class NodeProgress:
    """One live event for one node, delivered from a worker thread to ``on_progress``."""

    host: str
    state: str  # pending/connecting/detecting/running, or a final state
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
    status: str
    reason: str = ""  # short cause when failed (a REASONS value)
    message: str = ""
    hint: str | None = None
    runtimes: list[str] = field(default_factory=list)
    os_family: str = ""
    changed_files: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    dry_run_lines: list[str] = field(default_factory=list)
    seconds: float = 0.0
    finished_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [step.to_dict() for step in self.steps]
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class OnboardReport:
    results: list[NodeResult]
    registry: str
    ca_fingerprint: str
    dry_run: bool
    seconds: float

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if r.status in (FAILED, CANCELLED)]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FINAL_STATES, 0)
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "ca_fingerprint": self.ca_fingerprint,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
            "nodes": [r.to_dict() for r in self.results],
        }


# --------------------------------------------------------------------------- the CA to install


@dataclass(frozen=True)
class CaCertificate:
    pem: bytes
    fingerprint: str  # SHA-256, "AB:CD:..."


def load_ca_certificate(plan: Plan) -> CaCertificate:
    """Read ca.crt from the plan's cert dir, refusing anything that is not a lone certificate."""
    from cryptography import x509

    from app.certs import fingerprint

    path = plan.cert_dir / "ca.crt"
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise RegwizError(f"the CA certificate {path} does not exist",
                          "create it first: regwiz certs --plan FILE") from None
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


@dataclass(frozen=True)
class FileAction:
    path: str
    content: bytes
    runtime: str  # which runtime (or "os") reads it
    what: str
    why: str
    mode: int = 0o644
    backup: bool = False  # keep a copy of the current file before replacing it


@dataclass(frozen=True)
class CommandAction:
    argv: tuple[str, ...]
    runtime: str
    what: str
    why: str
    triggers: tuple[str, ...]  # run only when one of these files changed in this run
    service: str = ""  # a restarted service, for the report
    wait_active: str = ""  # service to wait for after the command


@dataclass(frozen=True)
class RegistriesYamlAction:
    """k3s/RKE2 registries.yaml, merged with the node's current file when the step runs."""

    path: str
    registry: str
    ca_path: str
    runtime: str


NodeAction = FileAction | CommandAction | RegistriesYamlAction


def plan_node_actions(facts: rt.NodeFacts, *, registry: str, ca_pem: bytes,
                      os_trust_store: bool) -> list[NodeAction]:
    """Every write and command one node needs, in order; raises NodeSetupError when impossible."""
    if not facts.runtimes and not os_trust_store:
        found = ", ".join(facts.detected) or "none"
        raise rt.NodeSetupError(
            f"no container runtime to configure was found (detected: {found})",
            'set runtime = "docker"/"containerd"/"cri-o"/"k3s"/"rke2" for this node, or '
            "os_trust_store = true to trust the CA system-wide",
            kind="unknown-runtime",
        )
    actions: list[NodeAction] = []
    for runtime in _dedupe_paths(facts.runtimes):
        actions += _runtime_actions(runtime, facts, registry, ca_pem)
    if os_trust_store:
        actions += _os_store_actions(facts, registry, ca_pem)
    return actions


def _dedupe_paths(runtimes: Iterable[str]) -> list[str]:
    """podman and CRI-O read the same directory: configure it once."""
    chosen = list(dict.fromkeys(runtimes))
    if "podman" in chosen and "cri-o" in chosen:
        chosen.remove("podman")
    return chosen


def _ca_file(path: str, runtime: str, ca_pem: bytes, reader: str) -> FileAction:
    return FileAction(path, ca_pem, runtime, f"install the registry CA for {runtime}",
                      f"{reader} reads trusted CAs for this registry from here")


def _runtime_actions(runtime: str, facts: rt.NodeFacts, registry: str,
                     ca_pem: bytes) -> list[NodeAction]:
    if runtime == "docker":
        return [_ca_file(rt.docker_ca_path(registry), runtime, ca_pem,
                         "dockerd (on every pull and push, no restart)")]
    if runtime in ("cri-o", "podman"):
        return [_ca_file(rt.containers_ca_path(registry), runtime, ca_pem,
                         "CRI-O, podman and skopeo (no restart)")]
    if runtime == "containerd":
        return _containerd_actions(facts, registry, ca_pem)
    if runtime in ("k3s", "rke2"):
        return _rancher_actions(runtime, facts, registry, ca_pem)
    raise rt.NodeSetupError(f"unknown runtime {runtime!r}",
                            "use auto, docker, containerd, cri-o, k3s, rke2 or none",
                            kind="unknown-runtime")


def _containerd_actions(facts: rt.NodeFacts, registry: str, ca_pem: bytes) -> list[NodeAction]:
    state = facts.containerd_state or rt.parse_containerd_config(None)
    hosts_dir = rt.effective_hosts_dir(state, facts.probe.containerd_version)
    actions: list[NodeAction] = []
    if hosts_dir is None:
        hosts_dir = rt.DEFAULT_CONTAINERD_HOSTS_DIR
        new_config = rt.enable_config_path(facts.containerd_config_text, state, hosts_dir)
        actions.append(FileAction(
            rt.CONTAINERD_CONFIG, new_config.encode(), "containerd",
            "enable containerd's registry hosts directory (config_path)",
            "containerd ignores certs.d until config_path is set; the old file is backed up",
            mode=facts.probe.containerd_config_mode, backup=True,
        ))
        actions.append(CommandAction(
            ("systemctl", "restart", "containerd"), "containerd", "restart containerd",
            "containerd reads config.toml only at start (needed once, for config_path)",
            triggers=(rt.CONTAINERD_CONFIG,), service="containerd", wait_active="containerd",
        ))
    ca_path = rt.containerd_ca_path(registry, hosts_dir)
    hosts_toml = rt.render_hosts_toml(registry, ca_path).encode()
    # CA first, then hosts.toml: containerd never sees a hosts.toml naming a missing CA file.
    actions.insert(0, _ca_file(ca_path, "containerd", ca_pem, "containerd (via hosts.toml)"))
    actions.insert(1, FileAction(
        rt.containerd_hosts_toml_path(registry, hosts_dir), hosts_toml, "containerd",
        "point containerd at the registry CA (hosts.toml)",
        "containerd reads hosts.toml on every pull, no restart needed",
        backup=True,  # a hand-written hosts.toml for this registry is kept as a backup
    ))
    return actions


def _rancher_actions(runtime: str, facts: rt.NodeFacts, registry: str,
                     ca_pem: bytes) -> list[NodeAction]:
    ca_path = rt.rancher_ca_path(runtime, registry)
    yaml_path = rt.rancher_registries_path(runtime)
    actions: list[NodeAction] = [
        _ca_file(ca_path, runtime, ca_pem, f"{runtime} (named in registries.yaml)"),
        RegistriesYamlAction(yaml_path, registry, ca_path, runtime),
    ]
    service = rt.rancher_service(runtime, facts.probe)
    if service:
        actions.append(CommandAction(
            ("systemctl", "restart", service), runtime, f"restart {service}",
            f"{runtime} renders its containerd registry config from registries.yaml at start",
            triggers=(yaml_path,), service=service, wait_active=service,
        ))
    return actions


def _os_store_actions(facts: rt.NodeFacts, registry: str, ca_pem: bytes) -> list[NodeAction]:
    store = rt.os_trust_store(facts.os_family, registry)
    return [
        FileAction(store.anchor_path, ca_pem, "os", "add the registry CA to the OS trust store",
                   "curl, openssl and other programs using the system CA bundle trust it"),
        CommandAction(tuple(store.update_command), "os", "rebuild the OS CA bundle",
                      "the anchor is only used once the bundle is regenerated",
                      triggers=(store.anchor_path,)),
    ]


# --------------------------------------------------------------------------- steps on a node


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def timeout(self, wanted: float) -> float:
        remaining = self.end - time.monotonic()
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


def build_node_steps(run: _NodeRun, actions: list[NodeAction]) -> list[Step]:
    return [_step_for(run, action) for action in actions]


def _step_for(run: _NodeRun, action: NodeAction) -> Step:
    where = run.node.host
    if isinstance(action, FileAction):
        details = [f"write {action.path} (mode {action.mode:o})"]
        if action.backup:
            details.append(f"keep the current file, if any, as {action.path}.regwiz-backup-<time>")
        return Step(action.what, where, action.why, lambda: _write(run, action), details)
    if isinstance(action, RegistriesYamlAction):
        return Step(f"add the registry to {action.runtime}'s registries.yaml", where,
                    "k3s/RKE2 configure their containerd from this file; other entries are kept",
                    lambda: _merge_yaml(run, action), [f"merge into {action.path} (mode 600)"])
    only_if = ", ".join(action.triggers)
    return Step(action.what, where, action.why, lambda: _command(run, action),
                [f"run {' '.join(action.argv)} (only if {only_if} changed)"])


def _write(run: _NodeRun, action: FileAction) -> Outcome:
    t, sudo = run.transport, run.node.sudo
    if action.backup:
        current = t.read_file(action.path, sudo=sudo, timeout=run.deadline.timeout(COMMAND_TIMEOUT))
        if current == action.content:
            return Outcome.UNCHANGED
        _backup(run, action.path, current)
    changed = t.write_file(action.path, action.content, mode=action.mode, sudo=sudo,
                           timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    if changed:
        run.changed_files.append(action.path)
    return Outcome.CHANGED if changed else Outcome.UNCHANGED


def _merge_yaml(run: _NodeRun, action: RegistriesYamlAction) -> Outcome:
    t, sudo = run.transport, run.node.sudo
    current = t.read_file(action.path, sudo=sudo, timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    merged = _merged_yaml(current, action)
    if merged is None:
        return Outcome.UNCHANGED
    _backup(run, action.path, current)
    t.write_file(action.path, merged.encode(), mode=0o600, sudo=sudo,
                 timeout=run.deadline.timeout(COMMAND_TIMEOUT))
    run.changed_files.append(action.path)
    return Outcome.CHANGED


def _merged_yaml(current: bytes | None, action: RegistriesYamlAction) -> str | None:
    """The node's registries.yaml with our entry added; None when it is already there.

    Both the real run and the dry run use this, so a preview never disagrees with a run.
    """
    text = current.decode("utf-8", errors="replace") if current is not None else None
    return rt.merge_registries_yaml(text, action.registry, action.ca_path)


def _backup(run: _NodeRun, path: str, current: bytes | None) -> None:
    """Keep the node's current file, if any, as ``<path>.regwiz-backup-<UTC time>`` (0600)."""
    if current is None:
        return
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    run.transport.write_file(f"{path}.regwiz-backup-{stamp}", current, mode=0o600,
                             sudo=run.node.sudo, timeout=run.deadline.timeout(COMMAND_TIMEOUT))


def _command(run: _NodeRun, action: CommandAction) -> Outcome:
    if not set(action.triggers) & set(run.changed_files):
        return Outcome.UNCHANGED
    run.transport.run(list(action.argv), sudo=run.node.sudo,
                      timeout=run.deadline.timeout(RESTART_TIMEOUT))
    if action.wait_active:
        _wait_active(run, action.wait_active)
    if action.service:
        run.restarted.append(action.service)
    return Outcome.CHANGED


def _wait_active(run: _NodeRun, service: str, attempts: int = 30) -> None:
    """After a restart, wait (bounded) until systemd reports the service active again."""
    for _ in range(attempts):
        result = run.transport.run(["systemctl", "is-active", service], sudo=run.node.sudo,
                                   timeout=run.deadline.timeout(COMMAND_TIMEOUT), check=False)
        if result.stdout.strip() == "active":
            return
        time.sleep(1.0)
    raise rt.NodeSetupError(f"{service} did not come back after the restart",
                            f"check `journalctl -u {service}` on the node", kind="command")


# --------------------------------------------------------------------------- dry run


def preview_actions(run: _NodeRun, actions: list[NodeAction]) -> list[str]:
    """What a real run would do on this node, read-only: pending steps in full, the rest named."""
    lines: list[str] = []
    would_change: set[str] = set()
    for action, step in zip(actions, build_node_steps(run, actions), strict=True):
        if _would_change(run, action, would_change):
            lines.append(step.describe())
        else:
            lines.append(f"[{step.where}] {step.what}: already in place")
    return lines


def _would_change(run: _NodeRun, action: NodeAction, would_change: set[str]) -> bool:
    t, sudo = run.transport, run.node.sudo
    timeout = run.deadline.timeout(COMMAND_TIMEOUT)
    if isinstance(action, CommandAction):
        return bool(set(action.triggers) & would_change)
    current = t.read_file(action.path, sudo=sudo, timeout=timeout)
    if isinstance(action, FileAction):
        changes = current != action.content
    else:
        changes = _merged_yaml(current, action) is not None
    if changes:
        would_change.add(action.path)
    return changes


# --------------------------------------------------------------------------- one node


Connector = Callable[[ResolvedNode], Transport]


@dataclass
class _Job:
    """Everything a worker needs, shared read-only by all nodes of one onboarding run."""

    registry: str
    ca: CaCertificate
    connect: Connector
    dry_run: bool
    timeout: float
    on_progress: ProgressHandler | None
    should_stop: Callable[[], bool]


class _Reporter:
    """Sends NodeProgress events for one node and times it."""

    def __init__(self, job: _Job, node: ResolvedNode) -> None:
        self.job, self.node = job, node
        self.started = time.monotonic()
        self.runtime = ""
        self.changed: tuple[str, ...] = ()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def emit(self, state: str, message: str = "") -> None:
        if self.job.on_progress is None:
            return
        event = NodeProgress(self.node.host, state, self.runtime, message, self.changed,
                             round(self.elapsed(), 3))
        with contextlib.suppress(Exception):  # a broken display must not break onboarding
            self.job.on_progress(event)


def onboard_node(job: _Job, node: ResolvedNode) -> NodeResult:
    """Onboard one node; never raises: every problem becomes a failed NodeResult."""
    reporter = _Reporter(job, node)
    result = NodeResult(node.host, node.ssh_user, node.ssh_port, status=FAILED)
    try:
        if job.should_stop():
            _cancel(result, "cancelled before it started")
        else:
            _onboard_connected(job, node, result, reporter)
    except RegwizError as error:
        kind = getattr(error, "kind", "config")
        _fail(result, kind, error.message, error.hint)
    except Exception as error:  # a bug or an unexpected library error: still only this node
        _fail(result, "internal", f"{type(error).__name__}: {error}",
              "this is a regwiz bug; please report it with the message above")
    result.seconds = reporter.elapsed()
    result.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    reporter.changed = tuple(result.changed_files)
    reporter.emit(result.status, _final_message(result))
    return result


def _onboard_connected(job: _Job, node: ResolvedNode, result: NodeResult,
                       reporter: _Reporter) -> None:
    deadline = _Deadline(job.timeout)
    reporter.emit(CONNECTING, f"connecting as {node.ssh_user} on port {node.ssh_port}")
    with job.connect(node) as transport:
        if node.sudo:
            reporter.emit(CONNECTING, "checking sudo")
            transport.run(["true"], sudo=True, timeout=deadline.timeout(COMMAND_TIMEOUT))
        reporter.emit(DETECTING, "detecting the OS and container runtimes")
        facts = rt.probe_node(transport, sudo=node.sudo, runtime=node.runtime,
                              timeout=deadline.timeout(COMMAND_TIMEOUT))
        result.runtimes, result.os_family = list(facts.runtimes), facts.os_family
        reporter.runtime = ",".join(facts.runtimes) or ("none" if node.os_trust_store else "")
        actions = plan_node_actions(facts, registry=job.registry, ca_pem=job.ca.pem,
                                    os_trust_store=node.os_trust_store)
        run = _NodeRun(transport, node, deadline)
        if job.dry_run:
            result.dry_run_lines = preview_actions(run, actions)
            result.status = PLANNED
            return
        _run_steps(job, run, build_node_steps(run, actions), result, reporter)


def _run_steps(job: _Job, run: _NodeRun, steps: list[Step], result: NodeResult,
               reporter: _Reporter) -> None:
    for index, step in enumerate(steps):
        if job.should_stop():
            _skip_rest(result, steps[index:])
            _cancel(result, f"cancelled before: {step.what}")
            return
        reporter.emit(RUNNING, step.what)
        started = time.monotonic()
        try:
            outcome = step.run()
        except RegwizError as error:
            failed = StepResult(step.what, step.where, Outcome.FAILED, error.message, error.hint,
                                time.monotonic() - started)
            result.steps.append(failed)
            _skip_rest(result, steps[index + 1:])
            _collect(result, run)
            raise
        result.steps.append(StepResult(step.what, step.where, outcome,
                                       seconds=time.monotonic() - started))
        reporter.changed = tuple(run.changed_files)
    _collect(result, run)
    result.status = CHANGED if run.changed_files or run.restarted else UNCHANGED


def _collect(result: NodeResult, run: _NodeRun) -> None:
    result.changed_files, result.restarted = list(run.changed_files), list(run.restarted)


def _skip_rest(result: NodeResult, steps: list[Step]) -> None:
    result.steps += [StepResult(s.what, s.where, Outcome.SKIPPED, "not run") for s in steps]


def _fail(result: NodeResult, kind: str, message: str, hint: str | None) -> None:
    from app.errors import kind_category

    result.status = FAILED
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
        return "already set up"
    restarted = f"; restarted {', '.join(result.restarted)}" if result.restarted else ""
    return f"{len(result.changed_files)} file(s) written{restarted}"


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
) -> OnboardReport:
    """Onboard the plan's nodes (or ``only`` those hosts) in parallel; never raises per node.

    ``on_progress`` is called from worker threads (the TUI must hop to its event loop).
    ``should_stop`` is polled before each node and between steps. Results are saved next to the
    plan (``results_path``) unless ``dry_run`` or ``save=False``.
    """
    if parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {parallel}")
    nodes = select_nodes(plan, only)
    job = _Job(
        registry=plan.registry_reference,
        ca=load_ca_certificate(plan),
        connect=connect or default_connector(secrets, host_key_policy),
        dry_run=dry_run,
        timeout=timeout,
        on_progress=on_progress,
        should_stop=should_stop or (lambda: False),
    )
    started = time.monotonic()
    for node in nodes:
        _Reporter(job, node).emit(PENDING, "waiting")
    results = _run_pool(job, nodes, parallel)
    report = OnboardReport(results, job.registry, job.ca.fingerprint, dry_run,
                           time.monotonic() - started)
    if save and not dry_run:
        save_results(plan, report)
    return report


def _run_pool(job: _Job, nodes: list[ResolvedNode], parallel: int) -> list[NodeResult]:
    """Run every node in a bounded pool; on Ctrl-C, stop the others between steps and re-raise."""
    interrupted = threading.Event()
    asked_to_stop = job.should_stop
    job.should_stop = lambda: interrupted.is_set() or asked_to_stop()
    pool = ThreadPoolExecutor(max_workers=min(parallel, max(1, len(nodes))),
                              thread_name_prefix="onboard")
    try:
        futures = [pool.submit(onboard_node, job, node) for node in nodes]
        return [future.result() for future in futures]
    except BaseException:
        interrupted.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


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
