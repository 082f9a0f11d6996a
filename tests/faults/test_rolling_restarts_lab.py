"""Rolling restarts with rollback (issue 12, item 4), on real containerd daemons in the lab.

Onboarding a containerd without ``config_path`` rewrites ``config.toml`` and restarts
containerd. A lab fault hook (``LabHost.refuse_config``) makes one node's containerd fail at
start-up while its config contains a given text, as containerd does with a config it cannot
load. Promises: that node ends with its old config restored and containerd running, reported
failed with both facts; a failed canary stops every later restart (the other nodes keep their
written files and are restarted by the next run); restarts never overlap beyond
``max_restarts``, as the systemctl stand-in's log on every host shows.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import onboard
from app.plan import Plan, Secrets
from app.status import TrustState, node_trust_status
from tests.faults.conftest import policy_for, private_known_hosts
from tests.lab.lab import Lab, LabHost, ServiceEvent
from tests.lab.plans import node_plan

CONFIG = "/etc/containerd/config.toml"
NEW_SETTING = "config_path"  # what onboarding adds to config.toml; the faulty node refuses it


@pytest.fixture
def ctrd(lab: Lab) -> Iterator[list[LabHost]]:
    """Three containerd hosts whose config.toml sets no config_path; put back as found."""
    nodes = lab.containerd_nodes(3)
    originals = {node.name: node.host_path(CONFIG).read_bytes() for node in nodes}
    for node in nodes:
        assert NEW_SETTING.encode() not in originals[node.name]
    yield nodes
    for node in nodes:
        node.refuse_config("containerd", None)
        node.host_path(CONFIG).write_bytes(originals[node.name])
        for leftover in node.host_path("/etc/containerd").glob("config.toml.regwiz-*"):
            leftover.unlink()
        shutil.rmtree(node.host_path("/etc/containerd/certs.d"), ignore_errors=True)
        if node.daemon_pid("containerd") is None:
            node.start_daemon("containerd")


def _run(plan: Plan, known_hosts: Path, **options: int) -> dict[str, onboard.NodeResult]:
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=policy_for(known_hosts),
                                   timeout=120, **options)  # type: ignore[arg-type]
    return {r.host: r for r in report.results}


def _restarts(nodes: list[LabHost], since: float) -> list[ServiceEvent]:
    return [e for node in nodes for e in node.service_log()
            if e.began >= since and e.verb in ("restart", "start")]


def _most_at_once(events: list[ServiceEvent]) -> int:
    """The largest number of restarts running at the same moment (an end before a start at
    the same instant)."""
    edges = sorted([(e.began, 1) for e in events] + [(e.ended, -1) for e in events])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def _alone(event: ServiceEvent, events: list[ServiceEvent]) -> bool:
    return all(other.ended <= event.began or other.began >= event.ended
               for other in events if other is not event)


def _config(node: LabHost) -> bytes:
    return node.host_path(CONFIG).read_bytes()


def test_a_failed_canary_is_rolled_back_and_stops_the_other_restarts(
    lab: Lab, ctrd: list[LabHost], tmp_path: Path
) -> None:
    victim, others = ctrd[0], ctrd[1:]  # first in plan order: the canary
    plan = node_plan(tmp_path, lab, ctrd, port=18621, runtime="containerd")
    known_hosts = private_known_hosts(lab, tmp_path)
    registry_dir = f"/etc/containerd/certs.d/{plan.registry_reference}"
    old_config = _config(victim)
    running_before = {node.name: node.daemon_pid("containerd") for node in ctrd}
    victim.refuse_config("containerd", NEW_SETTING)
    since = time.time()
    results = _run(plan, known_hosts)  # default --max-restarts

    failed = results[victim.ip]
    assert failed.status == "failed" and failed.kind == "restart-failed", failed
    assert failed.message.startswith("containerd did not come back after the restart: "), failed
    assert failed.message.endswith(
        f"; restored the previous {CONFIG} and containerd is active again"), failed
    assert _config(victim) == old_config
    assert victim.daemon_pid("containerd") is not None
    assert [(e.verb, e.exit_code != 0) for e in _restarts([victim], since)] == [
        ("restart", True), ("restart", False)]  # the failed one, then the one after restoring

    for node in others:
        held = results[node.ip]
        assert held.status == "failed" and held.kind == "not-restarted", held
        shown = f"{held.reason}: {held.message}"  # as the CLI and the wizard show it
        assert shown.startswith(f"not restarted: canary node {victim.ip} failed;"), held
        assert NEW_SETTING.encode() in _config(node)  # its files stay written
        assert node.host_path(f"{registry_dir}/hosts.toml").exists()
        assert node.daemon_pid("containerd") == running_before[node.name]  # never restarted
    assert _restarts(others, since) == []
    # status tells: the CA file is the current one, but containerd has not read its config
    held_status = node_trust_status(plan, Secrets(), policy_for(known_hosts),
                                    plan.resolved_nodes()[1],
                                    (onboard.load_ca_certificate(plan).fingerprint,))
    states = {f.path: (f.state, f.detail) for f in held_status.files}
    assert states[f"{registry_dir}/ca.crt"][0] is TrustState.MATCH, held_status
    assert states[CONFIG][0] is TrustState.MISSING and "not been restarted" in states[CONFIG][1]
    assert held_status.state is TrustState.MISSING

    # The fault gone, a re-run restarts every node, the held-back ones too (their files are
    # already in place): canary first and alone, then at most two at a time.
    victim.refuse_config("containerd", None)
    since = time.time()
    again = _run(plan, known_hosts, max_restarts=2)
    assert {host: r.status for host, r in again.items()} == {n.ip: "changed" for n in ctrd}
    assert all(again[n.ip].restarted == ["containerd"] for n in ctrd)
    for node in ctrd:
        assert NEW_SETTING.encode() in _config(node)
        assert node.daemon_pid("containerd") not in (None, running_before[node.name])
    events = _restarts(ctrd, since)
    assert len(events) == 3 and all(e.exit_code == 0 for e in events)
    canary = next(e for e in events if e.host == victim.name)
    assert _alone(canary, events)
    assert _most_at_once(events) <= 2

    # and a third run has nothing left to do
    third = _run(plan, known_hosts, max_restarts=2)
    assert {r.status for r in third.values()} == {"unchanged"}


def test_a_failed_restart_after_the_canary_stops_the_later_waves(
    lab: Lab, ctrd: list[LabHost], tmp_path: Path
) -> None:
    first, victim, last = ctrd  # waves of one: first (canary), victim, last
    plan = node_plan(tmp_path, lab, ctrd, port=18622, runtime="containerd")
    known_hosts = private_known_hosts(lab, tmp_path)
    old_config = _config(victim)
    victim.refuse_config("containerd", NEW_SETTING)
    since = time.time()
    results = _run(plan, known_hosts, max_restarts=1)

    assert results[first.ip].status == "changed" and results[first.ip].restarted == [
        "containerd"]
    failed = results[victim.ip]
    assert failed.status == "failed" and failed.kind == "restart-failed", failed
    assert "containerd is active again" in failed.message
    assert _config(victim) == old_config and victim.daemon_pid("containerd") is not None
    held = results[last.ip]
    assert held.status == "failed" and held.kind == "not-restarted", held
    assert f"{held.reason}: {held.message}".startswith(
        f"not restarted: {victim.ip} failed its restart in wave 2;"), held
    assert NEW_SETTING.encode() in _config(last)
    events = _restarts(ctrd, since)
    assert {e.host for e in events} == {first.name, victim.name}
    assert _most_at_once(events) == 1


def test_a_restart_that_fails_with_the_old_config_too_says_so(
    lab: Lab, ctrd: list[LabHost], tmp_path: Path
) -> None:
    victim = ctrd[0]
    plan = node_plan(tmp_path, lab, [victim], port=18623, runtime="containerd")
    known_hosts = private_known_hosts(lab, tmp_path)
    old_config = _config(victim)
    victim.refuse_config("containerd", "[plugins")  # in the old config and the new one
    failed = _run(plan, known_hosts)[victim.ip]
    assert failed.status == "failed" and failed.kind == "restart-failed", failed
    assert failed.message.endswith(
        f"; restored the previous {CONFIG} and containerd is still not active"), failed
    assert _config(victim) == old_config
    assert victim.daemon_pid("containerd") is None
