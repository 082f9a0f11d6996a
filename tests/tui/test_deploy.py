"""Deploy step: dry run lists the steps without connecting; a real run shows live state and the
failure of the step that failed (this machine has no running dockerd outside the lab)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, Checkbox, RichLog

from app.plan import new_plan
from screens.app import RegwizApp
from screens.deploy import DeployScreen
from screens.widgets.step_table import StepTable
from tests.tui.conftest import AppFactory, save_with_certificates, settle


def log_text(app: RegwizApp) -> str:
    return "\n".join(line.text for line in app.screen.query_one(RichLog).lines)


def states(app: RegwizApp) -> list[str]:
    table = app.screen.query_one(StepTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


@pytest.fixture
def local_plan(plan_path: Path) -> Path:
    plan = new_plan(plan_path)
    plan.registry.host = "local"
    plan.registry.port = 18443
    return save_with_certificates(plan)


async def test_dry_run_lists_steps_and_changes_nothing(
    make_app: AppFactory, local_plan: Path
) -> None:
    app = make_app("deploy")
    app.open_plan(local_plan)
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, DeployScreen)
        app.screen.query_one("#dry-run", Checkbox).value = True
        app.screen.query_one("#deploy", Button).press()
        await settle(app, pilot)
        assert app.screen.query_one(StepTable).row_count >= 8
        assert all("pending" in state for state in states(app))
        text = log_text(app)
        assert "why:" in text
        assert "nothing was connected to or changed" in text


async def test_failed_step_is_shown_and_later_steps_are_skipped(
    make_app: AppFactory, local_plan: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Point docker at a socket that does not exist, so the Docker check fails for certain.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    app = make_app("deploy")
    app.open_plan(local_plan)
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#deploy", Button).press()
        await settle(app, pilot)
        row_states = states(app)
        assert "unchanged" in row_states[0]  # the certificate check passed
        assert any("failed" in state for state in row_states)
        assert "skipped" in row_states[-1]
        assert "1 failed" in log_text(app)
        assert str(app.screen.query_one("#deploy", Button).label) == "Retry"
        assert not app.screen.query_one("#deploy", Button).disabled


async def test_the_log_says_who_may_pull_from_each_cache(
    make_app: AppFactory, plan_path: Path
) -> None:
    from app.plan import MirrorSettings

    plan = new_plan(plan_path)
    plan.registry.host = "local"
    plan.mirrors = [MirrorSettings("docker.io", 5001)]
    app = make_app("deploy")
    app.open_plan(save_with_certificates(plan))
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        assert "note: mirror docker.io: the cache on" in log_text(app)
        assert "without an account" in log_text(app)
