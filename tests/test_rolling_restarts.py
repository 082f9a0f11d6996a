"""Rolling restarts: the wave planning and owed-restart logic (pure), and their orchestration by
onboard_nodes on fake nodes (k3s/RKE2, which the lab does not have). Real containerd restarts,
rollbacks and the restart log: tests/faults/test_rolling_restarts_lab.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app import onboard
from app.cli import main
from app.commands.onboard import print_report
from app.plan import Secrets, save_plan
from app.runtimes import restarts
from app.runtimes.base import CommandAction
from app.runtimes.facts import ProbeResult
from app.runtimes.restarts import (
    OwedRestart,
    RestartCandidate,
    SavedFile,
    owed_restarts,
    plan_waves,
    recorded_restarts,
)
from tests.test_onboard_fakes import FakeFleet, FakeNode, plan_with_ca

REG = "198.18.9.2:8443"
K3S_YAML = "/etc/rancher/k3s/registries.yaml"
CONFIG = "/etc/containerd/config.toml"
SERVER = "bin.k3s=/usr/local/bin/k3s\nactive=k3s\n"
AGENT = "bin.k3s=/usr/local/bin/k3s\nactive=k3s-agent\n"
ORIGINAL_YAML = b'mirrors:\n  docker.io:\n    endpoint: ["https://mirror.example"]\n'


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service that is not active is asked again at once (the real wait is a second)."""
    monkeypatch.setattr(restarts, "ACTIVE_CHECK_INTERVAL", 0.0)


# --------------------------------------------------------------------------- waves (pure)


def hosts(waves: list[restarts.RestartWave]) -> list[list[str]]:
    return [list(wave.hosts) for wave in waves]


def agents(*names: str) -> list[RestartCandidate]:
    return [RestartCandidate(name, quorum=False) for name in names]


def test_the_canary_goes_alone_then_waves_of_the_limit_in_plan_order() -> None:
    assert hosts(plan_waves(agents("a", "b", "c", "d", "e"), 3)) == [
        ["a"], ["b", "c", "d"], ["e"]]
    assert hosts(plan_waves(agents("a", "b", "c"), 16)) == [["a"], ["b", "c"]]
    assert hosts(plan_waves(agents("a", "b", "c"), 1)) == [["a"], ["b"], ["c"]]
    assert plan_waves([], 4) == []
    waves = plan_waves(agents("a", "b"), 2)
    assert [(w.number, w.canary) for w in waves] == [(1, True), (2, False)]


def test_quorum_members_never_share_a_wave() -> None:
    candidates = [RestartCandidate("s1", True), RestartCandidate("s2", True),
                  *agents("a1", "a2"), RestartCandidate("s3", True), *agents("a3")]
    assert hosts(plan_waves(candidates, 16)) == [["s1"], ["s2", "a1", "a2"], ["s3", "a3"]]
    assert hosts(plan_waves(candidates, 2)) == [["s1"], ["s2", "a1"], ["a2", "s3"], ["a3"]]


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_waves(agents("a"), 0)


def test_wave_lines_name_the_canary() -> None:
    lines = restarts.wave_lines(plan_waves(agents("a", "b", "c"), 2))
    assert lines == ["restarts in 2 wave(s), one wave after the other:",
                     "  wave 1 (canary): a", "  wave 2: b, c"]
    assert restarts.wave_lines([]) == []


# --------------------------------------------------------------------------- owed (pure)


def k3s_restart(service: str = "k3s") -> CommandAction:
    return CommandAction(("systemctl", "restart", service), "k3s", f"restart {service}", "why",
                         triggers=(K3S_YAML,), service=service, wait_active=service,
                         quorum=service == "k3s")


def test_a_changed_trigger_makes_a_restart_owed_and_recorded() -> None:
    saved = {K3S_YAML: SavedFile(f"{K3S_YAML}.regwiz-backup-1", 0o600)}
    plan = owed_restarts([k3s_restart()], [], [K3S_YAML], saved, {"k3s"})
    assert [o.service for o in plan.owed] == ["k3s"] and plan.record == plan.owed
    assert plan.owed[0].restore == saved and plan.drop == []
    assert owed_restarts([k3s_restart()], [], ["/other"], saved, {"k3s"}).owed == []


def test_a_recorded_restart_is_owed_while_its_service_runs() -> None:
    earlier = OwedRestart(k3s_restart(), {K3S_YAML: SavedFile(f"{K3S_YAML}.regwiz-backup-1",
                                                              0o600)})
    # no restart planned this time (e.g. containerd whose config.toml is already right)
    plan = owed_restarts([], [earlier], [], {}, {"k3s"})
    assert plan.owed == [earlier] and plan.record == [] and plan.drop == []
    stopped = owed_restarts([], [earlier], [], {}, set())
    assert stopped.owed == [] and stopped.drop == [earlier]
    # changed again: the earlier copy (what the service last ran with) is the one kept
    again = owed_restarts([k3s_restart()], [earlier], [K3S_YAML],
                          {K3S_YAML: SavedFile(f"{K3S_YAML}.regwiz-backup-2", 0o600)}, {"k3s"})
    assert again.owed[0].restore == earlier.restore and again.record == again.owed


def probe_with(records: dict[str, str]) -> ProbeResult:
    return ProbeResult(values={f"restart-owed.{service}": text
                               for service, text in records.items()})


def test_records_read_back_and_never_carry_a_command() -> None:
    owed = OwedRestart(k3s_restart("k3s-agent"),
                       {K3S_YAML: SavedFile(f"{K3S_YAML}.regwiz-backup-1", 0o640)})
    text = owed.record().decode().strip()
    [back] = recorded_restarts(probe_with({"k3s-agent": text}))
    assert back.restore == owed.restore and back.action.quorum is False
    assert back.action.argv == ("systemctl", "restart", "k3s-agent")
    assert back.action.triggers == (K3S_YAML,)
    forged = json.loads(text) | {"argv": ["rm", "-rf", "/"]}
    [ignored_argv] = recorded_restarts(probe_with({"k3s-agent": json.dumps(forged)}))
    assert ignored_argv.action.argv == ("systemctl", "restart", "k3s-agent")


@pytest.mark.parametrize("change", [
    {"restore": {K3S_YAML: {"backup": "/etc/shadow", "mode": 384}}},  # not a copy of the file
    {"triggers": ["relative/path"]},
    {"service": "other"},  # does not match its file name
    {"quorum": None, "runtime": None, "triggers": None},
])
def test_records_that_do_not_hold_up_are_left_out(change: dict[str, object]) -> None:
    text = OwedRestart(k3s_restart()).record().decode()
    data = json.loads(text) | change
    assert recorded_restarts(probe_with({"k3s": json.dumps(data)})) == []
    assert recorded_restarts(probe_with({"k3s;rm": text})) == []
    assert recorded_restarts(probe_with({"k3s": "{not json"})) == []


def test_status_and_verify_see_a_restart_still_owed() -> None:
    from app.runtimes import registry as runtimes
    from app.runtimes.facts import facts_from_probe

    record = OwedRestart(k3s_restart()).record().decode().strip()
    probe = probe_with({"k3s": record})
    probe.active_services = {"k3s"}
    [(runtime, problem)] = runtimes.trust_problems(facts_from_probe(probe))
    assert runtime == "k3s" and problem.path == K3S_YAML and problem.check == "k3s restart"
    assert "regwiz onboard" in problem.hint
    probe.active_services = set()  # stopped: it reads the file when it starts
    assert runtimes.trust_problems(facts_from_probe(probe)) == []


# --------------------------------------------------------------------------- orchestration


def k3s_node(name: str, probe: str = SERVER, yaml_text: bytes | None = ORIGINAL_YAML
             ) -> FakeNode:
    return FakeNode(name, probe, files={K3S_YAML: yaml_text} if yaml_text else None)


def onboard_fleet(tmp_path: Path, nodes: list[FakeNode], **options: object
                  ) -> onboard.OnboardReport:
    plan = plan_with_ca(tmp_path, [node.name for node in nodes])
    return onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                 connect=FakeFleet({n.name: n for n in nodes}),
                                 **options)  # type: ignore[arg-type]


def restart_count(node: FakeNode) -> int:
    return sum(1 for c in node.commands if c[:2] == ["systemctl", "restart"])


def owed_records(node: FakeNode) -> list[str]:
    return [path for path in node.files if path.startswith(restarts.OWED_DIR)]


def test_k3s_servers_restart_one_per_wave_agents_share_waves(tmp_path: Path) -> None:
    order: list[str] = []
    nodes = [k3s_node("s1"), k3s_node("s2"), k3s_node("a1", AGENT), k3s_node("a2", AGENT),
             k3s_node("s3")]
    for node in nodes:
        node.on_command = lambda argv, name=node.name: (
            order.append(name) if argv[:2] == ["systemctl", "restart"] else None)
    report = onboard_fleet(tmp_path, nodes)
    assert hosts(report.waves) == [["s1"], ["s2", "a1", "a2"], ["s3"]]
    assert {r.host: r.status for r in report.results} == {n.name: "changed" for n in nodes}
    assert order[0] == "s1" and order[-1] == "s3" and sorted(order) == sorted(
        n.name for n in nodes)
    assert all(owed_records(node) == [] for node in nodes)  # nothing left owed
    assert report.to_dict()["restart_waves"][0] == {"wave": 1, "canary": True, "hosts": ["s1"]}


def test_max_restarts_bounds_the_waves_and_parallel_is_its_ceiling(tmp_path: Path) -> None:
    nodes = [k3s_node(f"a{i}", AGENT) for i in range(5)]
    two = onboard_fleet(tmp_path / "two", nodes, max_restarts=2)
    assert hosts(two.waves) == [["a0"], ["a1", "a2"], ["a3", "a4"]]
    fresh = [k3s_node(f"a{i}", AGENT) for i in range(5)]
    capped = onboard_fleet(tmp_path / "capped", fresh, max_restarts=8, parallel=3)
    assert hosts(capped.waves) == [["a0"], ["a1", "a2", "a3"], ["a4"]]


def fails_while_registry_in_yaml(node: FakeNode, service: str) -> bool:
    return REG.encode() in node.files.get(K3S_YAML, b"")


def test_a_failed_canary_is_rolled_back_and_holds_the_others(tmp_path: Path) -> None:
    canary, others = k3s_node("s1"), [k3s_node("a1", AGENT), k3s_node("a2", AGENT)]
    canary.start_fails = fails_while_registry_in_yaml
    report = onboard_fleet(tmp_path, [canary, *others])
    results = {r.host: r for r in report.results}

    failed = results["s1"]
    assert (failed.status, failed.kind, failed.reason) == ("failed", "restart-failed",
                                                           "restart failed")
    assert failed.message.startswith("k3s did not come back after the restart: ")
    assert failed.message.endswith(f"; restored the previous {K3S_YAML} and k3s is active again")
    assert canary.files[K3S_YAML] == ORIGINAL_YAML and "k3s" not in canary.down
    assert restart_count(canary) == 2 and owed_records(canary) == []
    for node in others:
        held = results[node.name]
        assert (held.status, held.kind) == ("failed", "not-restarted")
        assert f"{held.reason}: {held.message}".startswith(
            "not restarted: canary node s1 failed;")
        assert REG.encode() in node.files[K3S_YAML]  # written, not rolled back
        assert restart_count(node) == 0 and owed_records(node) != []
        assert held.steps[-1].outcome.value == "skipped"
    assert report.exit_code == 1

    # fixed: the re-run restarts the held nodes although their files are unchanged now
    canary.start_fails = None
    again = onboard_fleet(tmp_path, [canary, *others])
    assert {r.host: r.status for r in again.results} == {"s1": "changed", "a1": "changed",
                                                         "a2": "changed"}
    assert [restart_count(n) for n in others] == [1, 1]
    assert all(owed_records(n) == [] for n in (canary, *others))
    third = onboard_fleet(tmp_path, [canary, *others])
    assert {r.status for r in third.results} == {"unchanged"}


def test_a_new_file_is_removed_again_when_the_service_does_not_come_back(
    tmp_path: Path
) -> None:
    node = k3s_node("s1", yaml_text=None)
    node.start_fails = fails_while_registry_in_yaml
    result = onboard_fleet(tmp_path, [node]).results[0]
    assert result.kind == "restart-failed"
    assert result.message.endswith(f"restored the previous {K3S_YAML} and k3s is active again")
    assert K3S_YAML not in node.files


def test_still_down_after_the_rollback_says_so(tmp_path: Path) -> None:
    node = k3s_node("s1")
    node.start_fails = lambda n, service: True
    result = onboard_fleet(tmp_path, [node]).results[0]
    assert result.message.endswith("and k3s is still not active"), result.message
    assert node.files[K3S_YAML] == ORIGINAL_YAML


def test_a_restart_with_no_copy_to_put_back_stays_owed(tmp_path: Path) -> None:
    """E.g. only the pull credential changed in registries.yaml, which is merged without a
    backup (it would keep the old secret): nothing to put back, the restart stays owed."""
    node = k3s_node("s1")
    onboard_fleet(tmp_path, [node])  # set up; then an earlier run left a restart owed
    earlier = OwedRestart(k3s_restart())
    node.files[earlier.record_path] = earlier.record()
    node.start_fails = lambda n, service: True
    result = onboard_fleet(tmp_path, [node]).results[0]
    assert result.kind == "restart-failed", result
    assert result.message.endswith(f"; regwiz kept no copy of {K3S_YAML} to restore; "
                                   "restarted it again and k3s is still not active")
    assert owed_records(node) == [earlier.record_path]  # the next run tries again


def test_a_stop_before_the_waves_cancels_the_restarts_and_keeps_them_owed(
    tmp_path: Path
) -> None:
    nodes = [k3s_node("a1", AGENT), k3s_node("a2", AGENT)]
    finished_files: list[str] = []

    def progress(event: onboard.NodeProgress) -> None:
        if event.state is onboard.WAITING:
            finished_files.append(event.host)

    report = onboard_fleet(tmp_path, nodes, on_progress=progress,
                           should_stop=lambda: len(set(finished_files)) == 2)
    assert {r.status for r in report.results} == {"cancelled"}
    assert all("cancelled before its restart" in r.message for r in report.results)
    assert all(restart_count(n) == 0 and owed_records(n) for n in nodes)
    again = onboard_fleet(tmp_path, nodes)
    assert {r.status for r in again.results} == {"changed"}
    assert [restart_count(n) for n in nodes] == [1, 1]


def test_a_restart_owed_to_a_service_that_stopped_is_dropped(tmp_path: Path) -> None:
    node = k3s_node("s1", probe="bin.k3s=/usr/local/bin/k3s\n")  # k3s installed, not running
    earlier = OwedRestart(k3s_restart())
    node.files[earlier.record_path] = earlier.record()
    onboard_fleet(tmp_path, [node])
    assert owed_records(node) == [] and restart_count(node) == 0


def test_the_dry_run_shows_the_waves(tmp_path: Path) -> None:
    nodes = [k3s_node("s1"), k3s_node("s2"), k3s_node("a1", AGENT)]
    report = onboard_fleet(tmp_path, nodes, dry_run=True)
    assert hosts(report.waves) == [["s1"], ["s2", "a1"]]
    assert all(n.writes == [] and restart_count(n) == 0 for n in nodes)
    out = io.StringIO()
    print_report(report, None, out)
    assert "restarts in 2 wave(s)" in out.getvalue()
    assert "  wave 1 (canary): s1\n  wave 2: s2, a1\n" in out.getvalue()
    assert any("restart k3s" in line and "its restart wave" in line
               for line in report.results[0].dry_run_lines)


def test_max_restarts_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    plan = save_plan(plan_with_ca(tmp_path, ["198.18.9.3"]))
    for command in ("onboard", "apply"):
        with pytest.raises(SystemExit) as info:
            main([command, "--plan", str(plan), "--max-restarts", "0"])
        assert info.value.code == 2
        assert "--max-restarts" in capsys.readouterr().err
    with pytest.raises(Exception, match="--max-restarts must be at least 1"):
        onboard.onboard_nodes(plan_with_ca(tmp_path, ["n"]), Secrets(),
                              host_key_policy=None, max_restarts=0)  # type: ignore[arg-type]
