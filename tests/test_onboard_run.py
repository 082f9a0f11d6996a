"""onboard_nodes orchestration: isolation of failures, cancellation, parallelism, results file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from app import onboard
from app.errors import UsageError
from app.plan import Secrets
from tests.test_onboard_fakes import FakeFleet, FakeNode, plan_with_ca, unreachable

DOCKER = "socket=/run/docker.sock\n"


def run(plan, fleet, **kwargs):  # type: ignore[no-untyped-def]
    events: list[onboard.NodeProgress] = []
    report = onboard.onboard_nodes(plan, Secrets(sudo_password="s3cret-sudo"),
                                   host_key_policy=None, connect=fleet,
                                   on_progress=events.append, **kwargs)
    return report, events


def test_one_failing_node_never_stops_the_others(tmp_path: Path) -> None:
    hosts = ["a", "down", "c", "broken", "nothing"]
    plan = plan_with_ca(tmp_path, hosts)
    broken = FakeNode("broken", DOCKER)

    def explode(argv: list[str]) -> None:
        if argv == ["true"]:
            raise KeyError("surprise")

    broken.on_command = explode
    fleet = FakeFleet({"a": FakeNode("a", DOCKER), "down": unreachable("down"),
                       "c": FakeNode("c", DOCKER), "broken": broken,
                       "nothing": FakeNode("nothing", "bin.docker=/usr/bin/docker\n")})
    report, events = run(plan, fleet, parallel=2)
    status = {r.host: (r.status, r.reason) for r in report.results}
    assert status == {
        "a": ("changed", ""), "c": ("changed", ""),
        "down": ("failed", "unreachable"),
        "broken": ("failed", "internal error"),
        # runtime = "auto" found no running runtime (docker.io installed, not running): the CA
        # goes into the OS trust store instead of failing the node (an explicit runtime = "none"
        # still fails: test_auto_with_no_runtime_falls_back_to_the_os_trust_store).
        "nothing": ("changed", ""),
    }
    assert [r.host for r in report.results] == hosts  # plan order, whatever finished first
    assert report.exit_code == 1 and len(report.failed) == 2
    failed = {r.host: r for r in report.failed}
    assert failed["down"].hint and "connection refused" in failed["down"].message
    assert "KeyError" in failed["broken"].message
    assert broken.closed  # the transport is closed even when a step blew up
    finals = {e.host: e.state for e in events if e.state in onboard.FINAL_STATES}
    assert finals == {host: s for host, (s, _) in status.items()}


def test_progress_events_tell_the_story_of_each_node(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, ["a"])
    report, events = run(plan, FakeFleet({"a": FakeNode("a", DOCKER)}))
    states = [e.state for e in events]
    assert states[0] == "pending" and states[-1] == "changed"
    assert {"connecting", "detecting", "running"} <= set(states)
    last = events[-1]
    assert last.runtime == "docker" and last.changed_files == (
        "/etc/docker/certs.d/198.18.9.2:8443/ca.crt",)
    assert last.seconds >= 0
    assert all("s3cret-sudo" not in repr(e) for e in events)
    assert "s3cret-sudo" not in json.dumps(report.to_dict())


def test_nodes_really_run_in_parallel_up_to_the_bound(tmp_path: Path) -> None:
    hosts = [f"n{i}" for i in range(8)]
    plan = plan_with_ca(tmp_path, hosts)
    # Each node waits at the barrier until 4 nodes are inside at once: sequential runs would
    # break the barrier (its timeout only guards against a hang) and fail those nodes.
    barrier = threading.Barrier(4, timeout=30)
    inside = 0
    peak = 0
    lock = threading.Lock()

    def gate(argv: list[str]) -> None:
        nonlocal inside, peak
        if argv == ["true"]:
            with lock:
                inside += 1
                peak = max(peak, inside)
            barrier.wait()
            with lock:
                inside -= 1

    nodes = {}
    for host in hosts:
        nodes[host] = FakeNode(host, DOCKER)
        nodes[host].on_command = gate
    report, _ = run(plan, FakeFleet(nodes), parallel=4)
    assert [r.status for r in report.results] == ["changed"] * 8
    assert peak == 4


def test_should_stop_cancels_nodes_not_yet_done(tmp_path: Path) -> None:
    hosts = ["first", "second", "third"]
    plan = plan_with_ca(tmp_path, hosts)
    stop = threading.Event()
    first = FakeNode("first", DOCKER)

    def stop_after_probe(argv: list[str]) -> None:
        if argv[:2] == ["sh", "-c"]:
            stop.set()

    first.on_command = stop_after_probe
    fleet = FakeFleet({"first": first, "second": FakeNode("second", DOCKER),
                       "third": FakeNode("third", DOCKER)})
    report, _ = run(plan, fleet, parallel=1, should_stop=stop.is_set)
    assert [r.status for r in report.results] == ["cancelled"] * 3
    assert first.writes == [] and fleet.connected == ["first"]
    assert report.results[0].steps[0].outcome.value == "skipped"
    assert report.exit_code == 1


def test_time_budget_per_node(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, ["slow"])
    report, _ = run(plan, FakeFleet({"slow": FakeNode("slow", DOCKER)}), timeout=1e-9)
    assert (report.results[0].status, report.results[0].reason) == ("failed", "timed out")


def test_only_selects_and_unknown_hosts_are_named(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, ["a", "b"])
    fleet = FakeFleet({"a": FakeNode("a", DOCKER), "b": FakeNode("b", DOCKER)})
    report, _ = run(plan, fleet, only=["b"])
    assert [r.host for r in report.results] == ["b"] and fleet.connected == ["b"]
    with pytest.raises(UsageError) as info:
        run(plan, fleet, only=["b", "zzz"])
    assert "zzz" in info.value.message and "a, b" in (info.value.hint or "")
    with pytest.raises(UsageError):
        run(plan, fleet, parallel=0)


def test_a_plan_without_nodes_is_a_usage_error(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, [])
    with pytest.raises(UsageError) as info:
        run(plan, FakeFleet({}))
    assert "--nodes-file" in (info.value.hint or "")


def test_results_file_merges_runs_and_lists_failures(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, ["a", "b"])
    path = onboard.results_path(plan)
    assert path == tmp_path / "plan.onboard-results.json"
    run(plan, FakeFleet({"a": FakeNode("a", DOCKER), "b": unreachable("b")}))
    assert [r["host"] for r in onboard.failed_hosts(plan)] == ["b"]
    run(plan, FakeFleet({"b": FakeNode("b", DOCKER)}), only=["b"])
    saved = onboard.load_results(plan)
    assert {h: r["status"] for h, r in saved.items()} == {"a": "changed", "b": "changed"}
    assert onboard.failed_hosts(plan) == []
    assert "s3cret-sudo" not in path.read_text()
    path.write_text("{not json")
    with pytest.raises(onboard.RegwizError):
        onboard.load_results(plan)


def test_interrupt_stops_the_pool_and_propagates(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, ["a", "b", "c"])
    fleet = FakeFleet({"a": KeyboardInterrupt(), "b": FakeNode("b", DOCKER),
                       "c": FakeNode("c", DOCKER)})
    with pytest.raises(KeyboardInterrupt):
        run(plan, fleet, parallel=1)
    assert fleet.connected == ["a"]
    assert not onboard.results_path(plan).exists()


def test_a_stop_between_steps_cancels_the_rest(tmp_path: Path) -> None:
    # containerd needs two files; a stop after the first write skips the second.
    plan = plan_with_ca(tmp_path, ["n"])
    config = (b'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
              b'config_path = "/etc/containerd/certs.d"\n')
    node = FakeNode("n", "socket=/run/containerd/containerd.sock\n",
                    files={"/etc/containerd/config.toml": config})
    report, events = run(plan, FakeFleet({"n": node}), should_stop=lambda: bool(node.writes))
    result = report.results[0]
    assert result.status is onboard.NodeState.CANCELLED and result.reason == "cancelled"
    assert [s.outcome.value for s in result.steps] == ["changed", "skipped"]
    assert result.message == f"cancelled before: {result.steps[1].what}"
    assert [e.state for e in events if e.state == "running"] == ["running"]


def test_saved_results_load_back_as_node_results(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, ["a", "b"])
    report, _ = run(plan, FakeFleet({"a": FakeNode("a", DOCKER), "b": unreachable("b")}))
    saved = json.loads(onboard.results_path(plan).read_text())
    assert [n["status"] for n in saved["nodes"]] == ["changed", "failed"]  # plain strings
    typed = onboard.load_node_results(plan)
    assert list(typed) == ["a", "b"]
    for result in report.results:
        loaded = typed[result.host]
        assert isinstance(loaded.status, onboard.NodeState)
        assert loaded.to_dict() == result.to_dict()
    assert typed["a"].steps[0].outcome.value == "changed"
    assert typed["b"].reason == "unreachable" and typed["b"].hint


def test_results_that_do_not_parse_are_left_out_of_the_typed_view(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, ["a"])
    onboard.results_path(plan).write_text(json.dumps({"nodes": [
        {"host": "odd", "status": "exploded"}, {"host": "a", "ssh_user": "root", "ssh_port": 22,
                                                 "status": "unchanged"}]}))
    assert set(onboard.load_results(plan)) == {"odd", "a"}
    typed = onboard.load_node_results(plan)
    assert list(typed) == ["a"] and typed["a"].status is onboard.NodeState.UNCHANGED
    with pytest.raises(ValueError):
        onboard.NodeResult.from_dict({"host": "x"})


def test_node_states_read_and_print_as_their_values() -> None:
    assert [s.value for s in onboard.FINAL_STATES] == [
        "changed", "unchanged", "failed", "cancelled", "planned"]
    state = onboard.NodeState.FAILED
    assert state == "failed" and str(state) == "failed" and f"{state:<8}|" == "failed  |"
    assert json.dumps({"status": state}) == '{"status": "failed"}'


def test_auto_with_no_runtime_falls_back_to_the_os_trust_store(tmp_path: Path) -> None:
    debian = "---os-release---\nID=debian\n"
    plan = plan_with_ca(tmp_path, ["plain", "explicit-none"])
    plan.nodes[1].runtime = "none"  # asked for nothing, and no OS store: still an error
    fleet = FakeFleet({"plain": FakeNode("plain", debian),
                       "explicit-none": FakeNode("explicit-none", debian)})
    report, _ = run(plan, fleet)
    plain, none = report.results
    assert plain.status == "changed", plain.message
    assert plain.changed_files == [
        "/usr/local/share/ca-certificates/regwiz-198.18.9.2_8443.crt"]
    assert plain.notes == ['no container runtime found: the CA goes into the OS trust store '
                           '(runtime = "auto")']
    assert (none.status, none.reason) == ("failed", "unknown runtime")
    assert onboard.NodeResult.from_dict(plain.to_dict()).notes == plain.notes
