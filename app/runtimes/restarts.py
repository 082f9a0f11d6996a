"""Rolling restarts: which nodes restart together (waves), the restarts a node still owes, and
one restart that puts the previous config back when the service does not come back.

Onboarding writes every node's files first, then restarts the runtimes in waves
(``plan_waves``, pure): the first node that needs a restart alone (the canary), then at most
``limit`` nodes at a time, never two quorum members (k3s/RKE2 servers: embedded etcd) in one
wave.

A restart a node owes (a file it reads at start changed, it was not restarted yet) is recorded
on the node in ``/run/regwiz/restart-owed/<service>.json`` before any restart runs. A run that
stops before the restart (a failed canary, a cancel, a lost connection) is finished by the next
run although the files are unchanged by then: the probe lists the records (``PROBE_LINES``).
``/run`` is emptied at boot, when the service reads its files anyway. The record also names the
backups of the changed files, which ``restart`` puts back when the service is not active after
its restart.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.errors import RegwizError
from app.runtimes.base import BACKUP_INFIX, CommandAction, NodeSetupError, TrustProblem
from app.terminal_text import one_line
from app.transport.base import TransportError, display_command

if TYPE_CHECKING:
    from app.runtimes.facts import ProbeResult
    from app.transport.base import Transport

OWED_DIR = "/run/regwiz/restart-owed"
RESTART_TIMEOUT = 120.0
CHECK_TIMEOUT = 60.0
ACTIVE_CHECK_INTERVAL = 1.0  # seconds between two `systemctl is-active`
ACTIVE_CHECKS = 30  # after a restart that reported success
ACTIVE_CHECKS_AFTER_FAILURE = 3  # a service manager may still bring it back by itself
_PROBE_KEY = "restart-owed."
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,100}")

# For the probe script: each record as one KEY=VALUE line (records are one-line JSON, 0644).
PROBE_LINES = f"""for f in {OWED_DIR}/*.json; do
  [ -f "$f" ] && printf '{_PROBE_KEY}%s=%s\\n' "$(basename "$f" .json)" "$(head -n 1 "$f")"
done
"""

Timeout = Callable[[float], float]  # the time to allow a command, within the node's budget


# --------------------------------------------------------------------------- waves (pure)


@dataclass(frozen=True)
class RestartCandidate:
    host: str
    quorum: bool  # one of its restarts takes a member out of a cluster quorum


@dataclass(frozen=True)
class RestartWave:
    number: int  # from 1; wave 1 is the canary
    hosts: tuple[str, ...]

    @property
    def canary(self) -> bool:
        return self.number == 1


def plan_waves(candidates: Sequence[RestartCandidate], limit: int) -> list[RestartWave]:
    """The nodes needing a restart (plan order) in waves: the first alone, then at most
    ``limit`` per wave, in order, with at most one quorum member per wave."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    waves: list[list[RestartCandidate]] = []
    for candidate in candidates:
        current = waves[-1] if len(waves) > 1 else None  # wave 1 (the canary) stays alone
        if current is None or len(current) >= limit or (
                candidate.quorum and any(member.quorum for member in current)):
            waves.append([candidate])
        else:
            current.append(candidate)
    return [RestartWave(number, tuple(c.host for c in wave))
            for number, wave in enumerate(waves, start=1)]


def wave_lines(waves: Sequence[RestartWave]) -> list[str]:
    """The waves for a report: a heading, then one line per wave."""
    if not waves:
        return []
    lines = [f"restarts in {len(waves)} wave(s), one wave after the other:"]
    for wave in waves:
        label = "wave 1 (canary)" if wave.canary else f"wave {wave.number}"
        lines.append(f"  {label}: {', '.join(wave.hosts)}")
    return lines


def wave_summary(waves: Sequence[RestartWave]) -> str:
    """One line: how many waves, and the canary ("" without restarts)."""
    if not waves:
        return ""
    return f"restarts in {len(waves)} wave(s), canary {waves[0].hosts[0]}"


# --------------------------------------------------------------------------- owed restarts


@dataclass(frozen=True)
class SavedFile:
    """How to put a changed file back as it was before regwiz changed it."""

    backup: str | None  # its copy (<path>.regwiz-backup-<time>); None: it did not exist
    mode: int


@dataclass(frozen=True)
class OwedRestart:
    """A restart a node owes, with the files to put back if the service does not come back."""

    action: CommandAction
    restore: Mapping[str, SavedFile] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.action.service

    @property
    def record_path(self) -> str:
        return f"{OWED_DIR}/{self.service}.json"

    def record(self) -> bytes:
        """The on-node record: no commands, only names the restart is rebuilt from."""
        data = {
            "service": self.service, "runtime": self.action.runtime,
            "triggers": list(self.action.triggers), "quorum": self.action.quorum,
            "restore": {path: {"backup": saved.backup, "mode": saved.mode}
                        for path, saved in self.restore.items()},
        }
        return (json.dumps(data, separators=(",", ":")) + "\n").encode()


def restart_action(service: str, runtime: str, triggers: Sequence[str],
                   quorum: bool) -> CommandAction:
    """The restart an earlier run recorded as owed, rebuilt from its names."""
    return CommandAction(
        ("systemctl", "restart", service), runtime, f"restart {service}",
        f"an earlier run changed {', '.join(triggers)} but did not restart {service}",
        triggers=tuple(triggers), service=service, wait_active=service, quorum=quorum,
    )


def recorded_restarts(probe: ProbeResult) -> list[OwedRestart]:
    """The records the probe found; one that does not parse is left out (and stays)."""
    found = []
    for key, value in probe.values.items():
        if key.startswith(_PROBE_KEY):
            owed = _from_record(key[len(_PROBE_KEY):], value)
            if owed is not None:
                found.append(owed)
    return found


def _from_record(service: str, text: str) -> OwedRestart | None:
    try:
        data = json.loads(text)
        triggers = [str(path) for path in data["triggers"]]
        restore = {path: SavedFile(_backup_of(path, saved["backup"]), int(saved["mode"]))
                   for path, saved in data["restore"].items() if path in triggers}
        action = restart_action(service, str(data["runtime"]), triggers, bool(data["quorum"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not _SERVICE_NAME.fullmatch(service) or data.get("service") != service or not triggers \
            or not all(path.startswith("/") for path in triggers):
        return None
    return OwedRestart(action, restore)


def _backup_of(path: str, backup: object) -> str | None:
    """A recorded backup, only if it is one of ``path``'s (nothing else is ever copied back)."""
    if backup is None:
        return None
    if not isinstance(backup, str) or not backup.startswith(f"{path}{BACKUP_INFIX}"):
        raise ValueError(f"not a backup of {path}: {backup!r}")
    return backup


@dataclass(frozen=True)
class OwedPlan:
    owed: list[OwedRestart]  # to restart in this run's waves
    record: list[OwedRestart]  # owed because of this run's changes: record before restarting
    drop: list[OwedRestart]  # recorded earlier, but the service no longer runs


def owed_restarts(restarts: Sequence[CommandAction], recorded: Sequence[OwedRestart],
                  changed: Collection[str], saved: Mapping[str, SavedFile],
                  active: Collection[str]) -> OwedPlan:
    """Which restarts a node owes after its file steps (pure).

    ``restarts``: the adapters' restarts for this node; ``recorded``: records an earlier run
    left; ``changed``: files this run changed; ``saved``: how to put each back; ``active``: the
    services running now. A recorded restart with no restart planned this time (e.g. containerd
    whose config.toml already has what regwiz wrote) is still owed while its service runs.
    """
    by_service = {owed.service: owed for owed in recorded}
    plan = OwedPlan([], [], [])
    for action in restarts:
        earlier = by_service.pop(action.service, None)
        now = [path for path in action.triggers if path in changed]
        if not now and earlier is None:
            continue
        restore = {path: saved[path] for path in now if path in saved}
        if earlier is not None:  # its copies are older: what the service last ran with
            restore.update(earlier.restore)
        owed = OwedRestart(action, restore)
        plan.owed.append(owed)
        if now:
            plan.record.append(owed)
    for earlier in by_service.values():
        (plan.owed if earlier.service in active else plan.drop).append(earlier)
    return plan


def owed_problem(owed: OwedRestart) -> TrustProblem:
    """For status and verify: a runtime still running its old config (``trust_problems``)."""
    service, files = owed.service, ", ".join(owed.action.triggers)
    return TrustProblem(
        path=owed.action.triggers[0],
        summary=f"{service} has not been restarted since regwiz changed this file",
        check=f"{service} restart",
        detail=f"{service} still runs with its old configuration: regwiz changed {files} but "
               "has not restarted it yet (a run stopped before its restart wave)",
        hint="run regwiz onboard: it restarts it in its wave",
    )


def write_record(transport: Transport, owed: OwedRestart, *, sudo: bool, timeout: float) -> None:
    transport.write_file(owed.record_path, owed.record(), mode=0o644, sudo=sudo, timeout=timeout)


def drop_record(transport: Transport, owed: OwedRestart, *, sudo: bool, timeout: float) -> None:
    transport.run(["rm", "-f", "--", owed.record_path], sudo=sudo, timeout=timeout)


# --------------------------------------------------------------------------- one restart


def restart(transport: Transport, owed: OwedRestart, *, sudo: bool, timeout: Timeout) -> None:
    """Restart the service and wait until it is active; the record goes once nothing is owed.

    When it is not active afterwards, the files in ``owed.restore`` are put back and it is
    restarted again; raises NodeSetupError (kind "restart-failed") saying both. A failure to
    reach the node or to use sudo is raised as it is (the service was not touched).
    """
    problem = _restart_problem(transport, owed.action, sudo, timeout)
    if problem is None:
        drop_record(transport, owed, sudo=sudo, timeout=timeout(CHECK_TIMEOUT))
        return
    service = owed.service
    try:
        restored = _put_back(transport, owed.restore, sudo, timeout)
    except RegwizError as error:
        raise _failed(owed, problem, f"could not restore the previous files: {error.message}; "
                      f"{service} is still not active") from None
    again = _restart_problem(transport, owed.action, sudo, timeout) is None
    missing = [path for path in owed.action.triggers if path not in owed.restore]
    if not missing:
        drop_record(transport, owed, sudo=sudo, timeout=timeout(CHECK_TIMEOUT))
    raise _failed(owed, problem, _rollback_text(service, restored, missing, again))


def _restart_problem(transport: Transport, action: CommandAction, sudo: bool,
                     timeout: Timeout) -> str | None:
    """None when the service is active after the restart, else what went wrong."""
    allowed = timeout(RESTART_TIMEOUT)
    try:
        transport.run(list(action.argv), sudo=sudo, timeout=allowed)
    except TransportError as error:
        if error.kind not in ("command", "timeout"):
            raise  # unreachable, sudo, permission: the restart did not run
        # the kind decided above; the message is only shown, as one line of the node's reason
        failed = one_line(error.message)
        active = _active(transport, action, sudo, timeout, ACTIVE_CHECKS_AFTER_FAILURE)
        return None if active else failed
    if _active(transport, action, sudo, timeout, ACTIVE_CHECKS):
        return None
    waited = ACTIVE_CHECKS * ACTIVE_CHECK_INTERVAL
    return f"still not active {waited:g} s after `{display_command(list(action.argv))}`"


def _active(transport: Transport, action: CommandAction, sudo: bool, timeout: Timeout,
            checks: int) -> bool:
    """Whether systemd reports the service active, asked once a second (bounded)."""
    if not action.wait_active:
        return True
    for check in range(checks):
        if check:
            time.sleep(ACTIVE_CHECK_INTERVAL)
        result = transport.run(["systemctl", "is-active", action.wait_active], sudo=sudo,
                               timeout=timeout(CHECK_TIMEOUT), check=False)
        if result.stdout.strip() == "active":
            return True
    return False


def _put_back(transport: Transport, restore: Mapping[str, SavedFile], sudo: bool,
              timeout: Timeout) -> list[str]:
    """Each file as it was before regwiz changed it (removed if it did not exist)."""
    for path, saved in restore.items():
        if saved.backup is None:
            transport.run(["rm", "-f", "--", path], sudo=sudo, timeout=timeout(CHECK_TIMEOUT))
            continue
        content = transport.read_file(saved.backup, sudo=sudo, timeout=timeout(CHECK_TIMEOUT))
        if content is None:
            raise RegwizError(f"its backup {saved.backup} is gone")
        transport.write_file(path, content, mode=saved.mode, sudo=sudo,
                             timeout=timeout(CHECK_TIMEOUT))
    return list(restore)


def _rollback_text(service: str, restored: list[str], missing: list[str], again: bool) -> str:
    state = f"{service} is {'active again' if again else 'still not active'}"
    parts = []
    if restored:
        parts.append(f"restored the previous {', '.join(restored)}")
    if missing:
        parts.append(f"regwiz kept no copy of {', '.join(missing)} to restore")
    if not restored:
        parts.append("restarted it again")
    return f"{'; '.join(parts)} and {state}"


def _failed(owed: OwedRestart, problem: str, rollback: str) -> NodeSetupError:
    service = owed.service
    return NodeSetupError(
        f"{service} did not come back after the restart: {problem}; {rollback}",
        f"look at `journalctl -u {service}` on the node, fix the cause, then run regwiz "
        "onboard again (it writes the files and restarts once more)",
        kind="restart-failed",
    )


def restart_details(action: CommandAction) -> list[str]:
    """What the dry run says about a restart beyond its command."""
    files = ", ".join(action.triggers)
    return [f"in its restart wave; if {action.service} is not active afterwards, the previous "
            f"{files} is put back (from its backup) and {action.service} restarted again"]

