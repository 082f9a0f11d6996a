"""Verify and status steps on a plan whose registry is not running (no dockerd outside the lab):
the failures are shown per part, nothing crashes, nodes are skipped or reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Input, Static

from app.plan import NodeSettings, new_plan
from screens.app import RegwizApp
from screens.status import StatusScreen, days_style, human_bytes
from screens.verify import VerifyScreen
from screens.widgets.node_rows import NodeRows
from tests.tui.conftest import AppFactory, save_with_certificates, settle


@pytest.fixture
def down_plan(plan_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    plan = new_plan(plan_path)
    plan.registry.host = "local"
    plan.registry.address = "127.0.0.1"
    plan.registry.port = 1  # nothing listens there
    plan.nodes = [NodeSettings(host="localhost", ssh_port=1, sudo=False)]
    return save_with_certificates(plan)


def text(app: RegwizApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def test_verify_reports_failed_push_and_skips_nodes(
    make_app: AppFactory, down_plan: Path
) -> None:
    app = make_app("verify")
    app.open_plan(down_plan)
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, VerifyScreen)
        app.screen.query_one("#verify", Button).press()
        await pilot.pause()
        await settle(app, pilot)
        assert "failed" in text(app, "#push-pull")
        rows = app.screen.query_one("#verify-table", NodeRows)
        assert rows.cell("localhost", "state") == "skipped"
        assert not app.screen.query_one("#verify", Button).disabled


async def test_status_shows_registry_down_and_node_error(
    make_app: AppFactory, down_plan: Path
) -> None:
    app = make_app("status")
    app.open_plan(down_plan)
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, StatusScreen)
        await pilot.pause()
        await settle(app, pilot)
        panel = text(app, "#status-text")
        assert "DOWN" in panel
        assert "days left" in panel  # the CA's days come from the local ca.crt
        table = app.screen.query_one("#trust-table", DataTable)
        assert str(table.get_cell("localhost", "trust")) == "error"
        assert "NOT healthy" in text(app, "#status-state")
        # an invalid interval is refused with a message; r refreshes again
        app.screen.query_one("#interval", Input).value = "0"
        await pilot.pause()
        assert "from 2 to 3600" in text(app, "#status-state")
        await pilot.press("r")
        await pilot.pause()
        await settle(app, pilot)
        assert "DOWN" in text(app, "#status-text")


def test_day_colours_and_sizes() -> None:
    assert days_style(90) == "green"
    assert days_style(30) == "yellow"
    assert days_style(7) == "bold red"
    assert days_style(None) == "bold red"
    assert human_bytes(512) == "512 B"
    assert human_bytes(3 * 1024 * 1024) == "3.0 MiB"


def shown_lines(rows: NodeRows, host: str) -> list[str]:
    """The text a row shows on screen, line by line (wrapped cells included)."""
    static = rows.by_host[host].query_one(Static)
    return [strip.text.rstrip() for strip in static.render_lines(static.region.reset_offset)]


async def test_verify_columns_say_each_thing_once_and_wrap_at_80(
    make_app: AppFactory, down_plan: Path
) -> None:
    from app.verify import CheckState, NodeCheck, NodeVerifyResult, PushPullResult, VerifyReport
    from screens.messages import VerifyFinished

    x509 = ("x509: certificate signed by unknown authority (possibly because of crypto/rsa: "
            "verification error while trying to verify candidate authority certificate)")
    failed = NodeVerifyResult("localhost", CheckState.FAILED, ["docker"], [
        NodeCheck("docker pull", "docker pull 127.0.0.1:1/regwiz/selftest:x", False, x509)],
        message=f"docker pull: {x509}")
    app = make_app("verify")
    app.open_plan(down_plan)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, VerifyScreen)
        screen.post_message(VerifyFinished(VerifyReport(
            PushPullResult("127.0.0.1:1/regwiz/selftest:x", "local docker", CheckState.PASSED),
            [failed])))
        await pilot.pause()
        await pilot.pause()
        rows = screen.query_one("#verify-table", NodeRows)
        assert rows.cell("localhost", "check") == "✗ docker pull"
        assert rows.cell("localhost", "outcome") == x509  # not "docker pull: ..." again
        shown = " ".join(" ".join(shown_lines(rows, "localhost")).split())
        assert "verify candidate authority certificate" in shown  # wrapped, not cut off
        assert shown.count("docker pull") == 1


async def test_a_node_that_passed_during_the_run_says_passed_once(
    make_app: AppFactory, down_plan: Path
) -> None:
    from app.verify import CheckState, VerifyProgress
    from screens.messages import VerifyProgressed

    app = make_app("verify")
    app.open_plan(down_plan)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, VerifyScreen)
        screen.post_message(VerifyProgressed(VerifyProgress("localhost", CheckState.RUNNING,
                                                            "docker pull")))
        screen.post_message(VerifyProgressed(VerifyProgress("localhost", CheckState.PASSED,
                                                            "passed: docker pull")))
        await pilot.pause()
        rows = screen.query_one("#verify-table", NodeRows)
        assert rows.cell("localhost", "state") == "passed"
        assert rows.cell("localhost", "check") == "docker pull"
        assert "passed" not in rows.cell("localhost", "outcome")
