"""Welcome step: new plan, open plan with validation, recent plans, shortcuts."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Input, OptionList, Static

from app.plan import load_plan, new_plan, save_plan
from screens.cert_request import CertRequestScreen
from screens.onboarding import OnboardingScreen
from screens.welcome import WelcomeScreen
from tests.tui.conftest import AppFactory


async def test_new_plan_continues_to_the_certificate_step(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        assert app.screen.query_one("#goto-status", Button).disabled
        await pilot.click("#new-plan")
        await pilot.pause()
        assert isinstance(app.screen, CertRequestScreen)
        assert app.plan is not None


async def test_open_reports_every_problem_of_a_broken_plan(
    make_app: AppFactory, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[registry]\nport = "abc"\n', encoding="utf-8")
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        field = app.screen.query_one("#plan-path", Input)
        field.value = str(broken)
        await pilot.click("#open-plan")
        await pilot.pause()
        state = str(app.screen.query_one("#plan-state", Static).render())
        assert "registry.port" in state
        assert app.plan is None
        assert isinstance(app.screen, WelcomeScreen)


async def test_bad_plan_paths_are_explained(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        message = app.screen.query_one("#plan-path-field .field-message", Static)
        for typed, expected in (
            (str(tmp_path), "is a folder"),
            ("~no-such-user-here/plan.toml", "is not a user on this machine"),
            ("plan\x00.toml", "control characters"),
        ):
            app.screen.query_one("#plan-path", Input).value = typed
            await pilot.click("#open-plan")
            await pilot.pause()
            assert expected in str(message.render())
        assert app.plan is None


async def test_existing_plan_is_loaded_and_shortcuts_work(
    make_app: AppFactory, plan_path: Path
) -> None:
    plan = new_plan(plan_path)
    plan.registry.address = "198.18.0.2"
    plan_path.parent.mkdir(parents=True)
    save_plan(plan, plan_path)
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        assert app.plan is not None and app.plan.registry.address == "198.18.0.2"
        assert not app.screen.query_one("#goto-status", Button).disabled
        # the plan is now a recent one
        assert app.recent.load() == [plan_path.resolve()]
        await pilot.click("#goto-onboarding")
        await pilot.pause()
        assert isinstance(app.screen, OnboardingScreen)


async def test_recent_plans_are_listed_and_open(make_app: AppFactory, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    plan = new_plan(other)
    plan.certificate.common_name = "other.example.internal"
    save_plan(plan, other)
    first = make_app()
    first.recent.remember(other)
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        options = app.screen.query_one("#recent-plans", OptionList)
        assert options.get_option_at_index(0).id == str(other.resolve())
        options.focus()
        options.highlighted = 0
        await pilot.press("enter")
        await pilot.pause()
        assert app.plan is not None
        assert app.plan.certificate.common_name == "other.example.internal"
        assert load_plan(other).certificate.common_name == "other.example.internal"
