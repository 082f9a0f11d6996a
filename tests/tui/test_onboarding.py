"""Onboarding step against a real sshd node and an unreachable one: live rows, progress bar,
node log, retry failed. (Real CA installation is proven by the lab tests; here a dry run and
runs that fail before writing keep this machine's /etc untouched.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from textual.widgets import Button, Checkbox, ProgressBar, RichLog, Static

from app import onboard
from app.onboard import NodeProgress
from app.plan import NodeSettings, new_plan, save_plan
from screens.app import RegwizApp
from screens.host_key_review import HostKeyReviewModal
from screens.messages import NodeProgressed, OnboardFinished
from screens.node_log import NodeLogModal
from screens.onboarding import OnboardingScreen
from screens.widgets.node_rows import NodeRows
from tests.polling import wait_until_async
from tests.sshd import SshServer, sshd  # noqa: F401  (fixture)
from tests.tui.conftest import AppFactory, save_with_certificates, settle, wait_for_modal


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the socket closes


@pytest.fixture
def node_plan(plan_path: Path, sshd: SshServer, tmp_path: Path,  # noqa: F811
              monkeypatch: pytest.MonkeyPatch) -> Path:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_public_key}\n")
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(known_hosts))
    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    plan.nodes = [
        NodeSettings(host="127.0.0.1", ssh_user="root", ssh_port=sshd.port,
                     identity_file=str(sshd.client_key), runtime="docker", sudo=False),
        NodeSettings(host="localhost", ssh_user="root", ssh_port=closed_port(), sudo=False),
    ]
    return save_with_certificates(plan)


def cell(app: RegwizApp, host: str, column: str) -> str:
    return app.screen.query_one("#onboard-table", NodeRows).cell(host, column)


async def run_job(app: RegwizApp, pilot: object, button: str) -> None:
    app.screen.query_one(button, Button).press()
    await pilot.pause()  # type: ignore[attr-defined]
    await settle(app, pilot)  # type: ignore[arg-type]


async def test_dry_run_plans_reachable_node_and_reports_unreachable(
    make_app: AppFactory, node_plan: Path
) -> None:
    app = make_app("onboarding")
    app.open_plan(node_plan)
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, OnboardingScreen)
        assert cell(app, "127.0.0.1", "state") == "not run"
        app.screen.query_one("#dry-run", Checkbox).value = True
        await run_job(app, pilot, "#onboard-all")
        assert cell(app, "127.0.0.1", "state") == "planned"
        assert cell(app, "localhost", "state") == "failed"
        assert app.screen.query_one(ProgressBar).percentage == 1.0
        rows = app.screen.query_one("#onboard-table", NodeRows)
        rows.focus()
        rows.index = 0
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NodeLogModal)
        lines = "\n".join(line.text for line in app.screen.query_one(RichLog).lines)
        assert "would:" in lines and "certs.d" in lines


async def test_failures_are_saved_and_retry_runs_only_failed_nodes(
    make_app: AppFactory, node_plan: Path
) -> None:
    app = make_app("onboarding")
    app.open_plan(node_plan)
    assert app.plan is not None
    app.plan.nodes[0].runtime = "none"  # nothing to install there: fails before any write
    async with app.run_test(size=(100, 32)) as pilot:
        await run_job(app, pilot, "#onboard-all")
        assert cell(app, "127.0.0.1", "state") == "failed"
        assert "runtime" in cell(app, "127.0.0.1", "detail")
        assert "unreachable" in cell(app, "localhost", "detail").lower()
        retry = app.screen.query_one("#retry-failed", Button)
        assert not retry.disabled
        await run_job(app, pilot, "#retry-failed")
        assert app.screen.query_one(ProgressBar).total == 2
        assert "2 failed" in str(app.screen.query_one("#onboard-summary").render())
    # a fresh screen shows the saved results
    app2 = make_app("onboarding")
    app2.open_plan(node_plan)
    async with app2.run_test(size=(100, 32)):
        assert cell(app2, "localhost", "state") == "failed"


async def test_cancel_while_a_host_key_question_waits(
    make_app: AppFactory, sshd: SshServer, tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(tmp_path / "empty_known_hosts"))
    plan_path = tmp_path / "plan.toml"
    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    plan.nodes = [NodeSettings(host=host, ssh_user="root", ssh_port=sshd.port,
                               identity_file=str(sshd.client_key), runtime="docker", sudo=False)
                  for host in ("127.0.0.1", "localhost")]
    save_with_certificates(plan)
    app = make_app("onboarding", plan=plan_path)
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, OnboardingScreen)
        screen.query_one("#onboard-all", Button).press()
        # both keys unknown: the one screen that decides them all
        await wait_for_modal(app, pilot, HostKeyReviewModal)
        screen.action_cancel()
        await settle(app, pilot)
        # The cancelled worker's thread ends at its next check and then reports: wait for it.
        await wait_until_async(lambda: screen.query_one("#cancel-job", Button).disabled,
                               lambda: pilot.pause(0.05), "the cancelled job reports")
        assert app.screen is screen  # the question went away with the job
        assert set(cell(app, host, "state") for host in ("127.0.0.1", "localhost")) <= {
            "failed", "cancelled"}
        assert screen.query_one("#cancel-job", Button).disabled
        assert not screen.query_one("#onboard-all", Button).disabled
    assert not (tmp_path / "empty_known_hosts").exists()


async def test_progress_is_coalesced_per_host_and_keeps_an_earlier_runtime(
    make_app: AppFactory, plan_path: Path
) -> None:
    """Rows show only the newest event per host, drawn at a flush (no job runs here, so the
    flush timer stays paused and nothing is drawn before flush_progress)."""
    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    plan.nodes = [NodeSettings(host="198.18.0.101"), NodeSettings(host="198.18.0.102")]
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    save_plan(plan, plan_path)
    app = make_app("onboarding")
    app.open_plan(plan_path)

    def update(host: str, state: str, runtime: str, message: str) -> NodeProgressed:
        return NodeProgressed(NodeProgress(host, state, runtime, message, (), 0.5))

    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, OnboardingScreen)
        screen.on_node_progressed(update("198.18.0.101", "detecting", "docker", "found docker"))
        screen.on_node_progressed(update("198.18.0.101", "running", "", "writing ca.crt"))
        screen.on_node_progressed(update("198.18.0.102", onboard.FAILED, "", "unreachable"))
        assert cell(app, "198.18.0.101", "state") == "not run"
        screen.flush_progress()
        await pilot.pause()
        assert cell(app, "198.18.0.101", "state") == "running"
        assert cell(app, "198.18.0.101", "detail") == "writing ca.crt"
        assert cell(app, "198.18.0.101", "runtime") == "docker"
        assert cell(app, "198.18.0.102", "state") == onboard.FAILED
        assert app.screen.query_one(ProgressBar).progress == 1
        assert screen.node_logs["198.18.0.101"] == [
            "detecting: found docker", "running: writing ca.crt"]


async def test_a_long_detail_wraps_in_its_column_at_80_columns(
    make_app: AppFactory, plan_path: Path
) -> None:
    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    plan.nodes = [NodeSettings(host="198.18.0.101")]
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    save_plan(plan, plan_path)
    app = make_app("onboarding")
    app.open_plan(plan_path)
    message = ("unreachable: 198.18.0.101:22 did not answer within 10 s; check the address, "
               "the SSH port and any firewall between this machine and the node")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, OnboardingScreen)
        screen.on_node_progressed(NodeProgressed(
            NodeProgress("198.18.0.101", onboard.FAILED, "", message, (), 10.2)))
        screen.flush_progress()
        await pilot.pause()
        row = screen.query_one(NodeRows).by_host["198.18.0.101"]
        static = row.query_one(Static)
        lines = [strip.text.rstrip() for strip in static.render_lines(static.region.reset_offset)]
        assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
        assert "firewall between this machine and the node" in " ".join(
            " ".join(lines).split())
        assert lines[0].startswith("198.18.0.101")  # later lines are the detail's continuation


async def test_detected_runtime_is_kept_after_coming_back_to_the_step(
    make_app: AppFactory, plan_path: Path
) -> None:
    """A dry run (not saved to the results file) detected containerd on an "auto" node: after
    Verify and back, the runtime column still says containerd, not the plan's "auto"."""
    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    plan.nodes = [NodeSettings(host="198.18.0.101", runtime="auto")]
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    save_plan(plan, plan_path)
    app = make_app("onboarding")
    app.open_plan(plan_path)
    result = onboard.NodeResult("198.18.0.101", "root", 22, onboard.PLANNED,
                                runtimes=["containerd"])
    async with app.run_test(size=(100, 32)) as pilot:
        assert cell(app, "198.18.0.101", "runtime") == "auto"
        app.screen.post_message(OnboardFinished(onboard.OnboardReport(
            [result], "127.0.0.1:443", "AB", dry_run=True, seconds=1.0)))
        await pilot.pause()
        for step in ("verify", "onboarding"):
            assert app.goto(step)
            await pilot.pause()
            await pilot.pause()
        assert cell(app, "198.18.0.101", "runtime") == "containerd"


async def test_the_node_log_opened_during_a_run_follows_the_node(
    make_app: AppFactory, plan_path: Path
) -> None:
    """Events arrive as NodeProgressed messages to the screen while the log modal is on top;
    the open log shows each new line of its node (not of others) and the final result."""
    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    plan.nodes = [NodeSettings(host="198.18.0.101"), NodeSettings(host="198.18.0.102")]
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    save_plan(plan, plan_path)
    app = make_app("onboarding")
    app.open_plan(plan_path)

    def event(host: str, state: str, message: str) -> NodeProgressed:
        return NodeProgressed(NodeProgress(host, state, "docker", message, (), 0.5))

    def shown(modal: NodeLogModal) -> str:
        return "\n".join(line.text for line in modal.query_one(RichLog).lines)

    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, OnboardingScreen)
        screen.set_running(True)  # as a started run does (the flush timer stays paused)
        screen.post_message(event("198.18.0.101", "connecting", "connecting as root"))
        await pilot.pause()
        await pilot.press("enter")  # the focused rows: the first node's log
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, NodeLogModal) and modal.host == "198.18.0.101"
        assert "connecting as root" in shown(modal)
        screen.post_message(event("198.18.0.101", "running", "write ca.crt"))
        screen.post_message(event("198.18.0.102", "running", "other node's step"))
        await pilot.pause()
        await pilot.pause()
        assert "running: write ca.crt" in shown(modal)
        assert "other node's step" not in shown(modal)
        assert "live" in str(modal.query_one("#node-log-title").render())
        result = onboard.NodeResult("198.18.0.101", "root", 22, onboard.CHANGED,
                                    changed_files=["/etc/docker/certs.d/x/ca.crt"])
        screen.post_message(OnboardFinished(onboard.OnboardReport(
            [result], "127.0.0.1:443", "AB", dry_run=False, seconds=1.0)))
        await pilot.pause()
        await pilot.pause()
        assert "wrote /etc/docker/certs.d/x/ca.crt" in shown(modal)
        assert "live" not in str(modal.query_one("#node-log-title").render())
        await pilot.press("escape")
        await pilot.pause()
        screen.post_message(event("198.18.0.101", "running", "after close"))
        await pilot.pause()
        assert screen.open_log is None and app.screen is screen


async def test_waiting_nodes_and_the_restart_waves_are_shown(
    make_app: AppFactory, plan_path: Path
) -> None:
    """A node waiting for its restart wave shows so; the summary names the waves and the
    canary; a node held back by a failed canary says why (its final event's message)."""
    from app.runtimes.restarts import RestartWave

    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    plan.nodes = [NodeSettings(host="198.18.0.101"), NodeSettings(host="198.18.0.102")]
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    save_plan(plan, plan_path)
    app = make_app("onboarding")
    app.open_plan(plan_path)
    held = onboard.NodeResult("198.18.0.102", "root", 22, onboard.FAILED,
                              reason="not restarted", kind="not-restarted",
                              message="canary node 198.18.0.101 failed; its files are written")
    canary = onboard.NodeResult("198.18.0.101", "root", 22, onboard.FAILED,
                                reason="restart failed", kind="restart-failed",
                                message="containerd did not come back after the restart: x; "
                                        "restored the previous /etc/containerd/config.toml "
                                        "and containerd is active again")
    report = onboard.OnboardReport([canary, held], "r", "AB", False, 3.0, waves=[
        RestartWave(1, ("198.18.0.101",)), RestartWave(2, ("198.18.0.102",))])
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, OnboardingScreen)
        screen.on_node_progressed(NodeProgressed(NodeProgress(
            "198.18.0.102", onboard.WAITING, "containerd", "files in place; restart in wave 2 "
            "of 2", (), 1.0)))
        screen.flush_progress()
        await pilot.pause()
        assert cell(app, "198.18.0.102", "state") == "waiting"
        final = onboard._final_message(held)
        assert final.startswith("not restarted: canary node 198.18.0.101 failed")
        screen.on_node_progressed(NodeProgressed(NodeProgress(
            "198.18.0.102", onboard.FAILED, "containerd", final, (), 3.0)))
        screen.post_message(OnboardFinished(report))
        await pilot.pause()
        await pilot.pause()
        assert cell(app, "198.18.0.102", "detail").startswith("not restarted: canary node")
        summary = str(screen.query_one("#onboard-summary").render())
        assert "2 failed" in summary and "restarts in 2 wave(s), canary 198.18.0.101" in summary
