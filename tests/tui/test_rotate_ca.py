"""The Status step's "Rotate CA…": a confirmation that explains the three phases, each phase's
progress in the action line as it runs, and the outcome (or the phase it stopped in, and how to
resume). The rotation itself is a fake here; tests/lab/test_ca_rotation_lab.py runs the real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from app import ca_rotation
from app.ca_rotation import PHASE_TITLES, PhaseOutcome, RotationEvent, RotationJob, RotationReport
from app.plan import new_plan
from screens.app import RegwizApp
from screens.confirm import ConfirmModal
from screens.status import StatusScreen
from tests.tui.conftest import AppFactory, save_with_certificates, settle


@pytest.fixture
def status_plan(plan_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    plan = new_plan(plan_path)
    plan.registry.host = "local"
    plan.registry.address = "127.0.0.1"
    plan.registry.port = 1  # nothing listens: the status refreshes fail fast
    return save_with_certificates(plan)


def result_text(app: RegwizApp) -> str:
    return str(app.screen.query_one("#action-result", Static).render())


def fake_rotation(monkeypatch: pytest.MonkeyPatch, failing: str | None,
                  seen: list[str]) -> None:
    """rotate_ca reporting every phase's start and progress, then an outcome; ``seen`` gets what
    the action line showed while it ran (read from the worker's thread is racy: the events are
    checked through the report instead)."""

    def rotate(job: RotationJob) -> RotationReport:
        report = RotationReport()
        for number, phase in enumerate(ca_rotation.PHASES, start=1):
            job.on_event(RotationEvent(phase, number, PHASE_TITLES[phase], started=True))
            job.on_event(RotationEvent(phase, number, f"{phase} working"))
            if phase == failing:
                report.failed_phase, report.error = phase, "the deploy failed at 'Run container'"
                report.hint = "check the registry host"
                return report
            report.phases.append(PhaseOutcome(phase, True, [f"{phase} went fine"]))
        seen.append(job.plan.registry.address)
        return report

    monkeypatch.setattr(ca_rotation, "rotate_ca", rotate)


async def press_and_confirm(app: RegwizApp, pilot: object) -> str:
    await pilot.click("#rotate-ca")  # type: ignore[attr-defined]
    modal = app.screen
    assert isinstance(modal, ConfirmModal)
    body = str(modal.query_one(".dialog-body", Static).render())
    await pilot.click("#confirm")  # type: ignore[attr-defined]
    await settle(app, pilot)  # type: ignore[arg-type]
    return body


async def test_rotate_ca_confirms_the_three_phases_and_shows_the_outcome(
        make_app: AppFactory, status_plan: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    fake_rotation(monkeypatch, None, seen)
    app = make_app("status")
    app.open_plan(status_plan)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, StatusScreen)
        body = await press_and_confirm(app, pilot)
        assert all(f"{n} {phase}" in body for n, phase in
                   ((1, "add"), (2, "switch"), (3, "finish"))), body
        assert "the old and the new CA" in body and "only the new CA" in body
        assert seen == ["127.0.0.1"]  # the fake ran with the wizard's plan
        text = result_text(app)
        assert text.splitlines()[-1].startswith("✓ CA rotated"), text
        assert "✓ add: add went fine" in text and "✓ finish: finish went fine" in text


async def test_a_failed_phase_is_named_with_how_to_resume(
        make_app: AppFactory, status_plan: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_rotation(monkeypatch, "switch", [])
    app = make_app("status")
    app.open_plan(status_plan)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await press_and_confirm(app, pilot)
        text = result_text(app)
        assert "✗ CA rotation stopped in phase switch: the deploy failed" in text, text
        assert "✗ hint: check the registry host" in text
        assert "resume at phase switch" in text
        assert "CA rotated" not in text


async def test_each_phase_shows_its_progress_while_it_runs(
        make_app: AppFactory, status_plan: Path) -> None:
    from app.onboard import NodeProgress, NodeState
    from screens.messages import CaRotationProgressed, NodeProgressed

    app = make_app("status")
    app.open_plan(status_plan)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        for event in (RotationEvent("add", 1, PHASE_TITLES["add"], started=True),
                      RotationEvent("add", 1, "onboarding the nodes with both CAs"),
                      RotationEvent("add", 1, "done"),
                      RotationEvent("switch", 2, PHASE_TITLES["switch"], started=True),
                      RotationEvent("switch", 2, "deploying")):
            screen.post_message(CaRotationProgressed(event))
        await pilot.pause()
        assert result_text(app).splitlines() == [
            f"phase 1/3 {PHASE_TITLES['add']}", f"phase 2/3 {PHASE_TITLES['switch']}",
            "  deploying"]
        screen.post_message(NodeProgressed(NodeProgress(
            "198.18.9.3", NodeState.RUNNING, "containerd", "writing files", (), 0.5)))
        await pilot.pause()
        assert result_text(app).splitlines()[-1] == "  node 198.18.9.3: running — writing files"
