"""Keyboard flow: each step focuses its first field, Enter submits the node dialog, a finished
run leaves the focus on the rows (not on the button that starts another run), Cancel is never
the focused control while a job runs, and a cancel says what it stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.containers import VerticalScroll
from textual.widgets import Button, Input, Static

from app import onboard
from app.onboard import NodeResult, OnboardReport
from app.plan import NodeSettings, new_plan
from app.steps import Outcome, StepResult
from screens.app import RegwizApp
from screens.messages import OnboardFinished
from screens.node_edit import NodeEditModal
from screens.node_log import NodeLogModal
from screens.nodes import NodesScreen
from screens.onboarding import OnboardingScreen
from screens.widgets.node_rows import NodeRows
from tests.tui.conftest import AppFactory, save_with_certificates, settle


def focused_id(app: RegwizApp) -> str | None:
    return app.focused.id if app.focused is not None else None


async def test_new_plan_lands_on_the_common_name_field(make_app: AppFactory,
                                                        tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#plan-path", Input).value = str(tmp_path / "new.toml")
        app.screen.query_one("#new-plan", Button).press()
        await pilot.pause()
        await pilot.pause()
        assert app.current_step == "certificate"
        assert focused_id(app) == "common-name"
        await pilot.press("x")  # typing goes straight into the field
        assert app.screen.query_one("#common-name", Input).value.endswith("x")


async def test_every_step_focuses_a_control_of_its_own(make_app: AppFactory,
                                                        plan_path: Path) -> None:
    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    save_with_certificates(plan)
    app = make_app("welcome")
    app.open_plan(plan_path)
    expected = {"certificate": "common-name", "registry": "host", "mirrors": "mirrors-table"}
    async with app.run_test(size=(100, 32)) as pilot:
        for step in ("certificate", "review", "registry", "mirrors", "deploy", "nodes",
                     "onboarding", "verify"):
            assert app.goto(step)
            await pilot.pause()
            await pilot.pause()
            focused = app.focused
            assert focused is not None, step
            assert not isinstance(focused, VerticalScroll), (step, focused)  # takes no input
            assert focused in app.screen.query_one("#body").walk_children(), (step, focused)
            if step in expected:
                assert focused.id == expected[step], step


async def test_enter_submits_the_add_node_dialog(make_app: AppFactory, plan_path: Path) -> None:
    plan = new_plan(plan_path)
    save_with_certificates(plan)
    app = make_app("nodes")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, NodesScreen)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, NodeEditModal)
        assert focused_id(app) == "node-host"
        await pilot.press(*"198.18.0.7", "enter")
        await pilot.pause()
        assert isinstance(app.screen, NodesScreen)
        assert [node.host for node in app.plan.nodes] == ["198.18.0.7"]  # type: ignore[union-attr]


async def test_enter_on_an_invalid_node_dialog_keeps_it_open(make_app: AppFactory,
                                                             plan_path: Path) -> None:
    save_with_certificates(new_plan(plan_path))
    app = make_app("nodes")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("enter")  # no host yet
        await pilot.pause()
        assert isinstance(app.screen, NodeEditModal)
        assert "required" in str(app.screen.query_one(
            "#node-host-field .field-message", Static).render())


def unreachable_plan(plan_path: Path, hosts: tuple[str, ...]) -> Path:
    plan = new_plan(plan_path)
    plan.registry.address = "127.0.0.1"
    plan.nodes = [NodeSettings(host=host, ssh_port=1, sudo=False, runtime="docker")
                  for host in hosts]  # port 1: refused at once, nothing is written anywhere
    return save_with_certificates(plan)


async def test_after_a_run_the_focus_is_on_the_rows_and_cancel_never_has_it(
    make_app: AppFactory, plan_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(tmp_path / "known_hosts"))  # never the user's
    unreachable_plan(plan_path, ("127.0.0.2", "127.0.0.3"))
    app = make_app("onboarding")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, OnboardingScreen)
        assert focused_id(app) == "onboard-all"
        screen.set_running(True)  # what a run does first; the real run follows
        await pilot.pause()
        assert isinstance(app.focused, NodeRows)  # not Cancel: Enter would stop the run
        screen.set_running(False)
        assert focused_id(app) == "onboard-all" or isinstance(app.focused, NodeRows)
        app.screen.query_one("#onboard-all", Button).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert focused_id(app) != "cancel-job"
        await settle(app, pilot)
        assert isinstance(app.focused, NodeRows)
        runs = len([w for w in app.workers if w.name == "Onboarding"])
        await pilot.press("down", "enter")  # opens the second node's log, runs nothing
        await pilot.pause()
        assert isinstance(app.screen, NodeLogModal) and app.screen.host == "127.0.0.3"
        assert len([w for w in app.workers if w.name == "Onboarding"]) == runs
        # A run that ends while a node log is open leaves the focus on the rows too.
        screen.set_focus(screen.query_one("#onboard-all", Button))
        screen.set_running(True)
        screen.set_running(False)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and isinstance(app.focused, NodeRows)


async def test_a_cancel_says_which_nodes_were_stopped_and_which_not_started(
    make_app: AppFactory, plan_path: Path
) -> None:
    unreachable_plan(plan_path, ("127.0.0.2", "127.0.0.3", "127.0.0.4"))
    app = make_app("onboarding")
    app.open_plan(plan_path)
    stopped = NodeResult("127.0.0.2", "root", 1, onboard.CANCELLED, reason="cancelled",
                         message="cancelled before: restart docker",
                         steps=[StepResult("write ca.crt", "127.0.0.2", Outcome.CHANGED),
                                StepResult("restart docker", "127.0.0.2", Outcome.SKIPPED,
                                           "not run")])
    not_started = [NodeResult(host, "root", 1, onboard.CANCELLED, reason="cancelled",
                              message="cancelled before it started")
                   for host in ("127.0.0.3", "127.0.0.4")]
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, OnboardingScreen)
        screen.post_message(OnboardFinished(OnboardReport(
            [stopped, *not_started], "127.0.0.1:443", "AB", dry_run=False, seconds=1.0)))
        await pilot.pause()
        summary = str(screen.query_one("#onboard-summary", Static).render())
        assert "127.0.0.2 stopped before restart docker" in summary, summary
        assert "not started: 127.0.0.3, 127.0.0.4" in summary, summary


async def test_a_cancelled_deploy_says_where_it_stopped(make_app: AppFactory,
                                                        plan_path: Path) -> None:
    from app.deploy import DeployReport
    from screens.deploy import DeployScreen
    from screens.messages import DeployFinished
    from screens.widgets.step_table import StepTable

    plan = new_plan(plan_path)
    plan.registry.host = "local"
    save_with_certificates(plan)
    app = make_app("deploy")
    app.open_plan(plan_path)
    results = [StepResult("copy tls.crt", "local", Outcome.CHANGED),
               StepResult("start the registry container", "local", Outcome.SKIPPED, "not run"),
               StepResult("wait for /v2/", "local", Outcome.SKIPPED, "not run")]
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        screen.query_one("#deploy", Button).focus()
        screen.set_running(True)
        await pilot.pause()
        assert isinstance(app.focused, StepTable)  # not Cancel
        screen.cancel_asked = True  # as Cancel does while the worker runs
        screen.post_message(DeployFinished(DeployReport(
            results, [(r.what, r.where) for r in results], False, [], "", "", False, None,
            app.plan.registry_address, 1.0)))  # type: ignore[union-attr]
        await pilot.pause()
        log = "\n".join(line.text for line in screen.query_one("#log").lines)  # type: ignore[attr-defined]
        assert "cancelled: stopped before 'start the registry container'; 2 step(s) not run" \
            in log, log


async def test_a_cancelled_verify_names_the_nodes_not_checked(make_app: AppFactory,
                                                              plan_path: Path) -> None:
    from app.verify import CheckState, NodeVerifyResult, PushPullResult, VerifyReport
    from screens.messages import VerifyFinished
    from screens.verify import VerifyScreen

    unreachable_plan(plan_path, ("127.0.0.2", "127.0.0.3"))
    app = make_app("verify")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, VerifyScreen)
        screen.set_running(True)
        await pilot.pause()
        assert isinstance(app.focused, NodeRows)  # not Cancel
        screen.cancel_asked = True  # as Cancel does while the worker runs
        screen.post_message(VerifyFinished(VerifyReport(
            PushPullResult("127.0.0.1:443/regwiz/selftest:x", "local docker", CheckState.PASSED),
            [NodeVerifyResult(host, CheckState.SKIPPED, message="cancelled")
             for host in ("127.0.0.2", "127.0.0.3")])))
        await pilot.pause()
        shown = str(screen.query_one("#push-pull", Static).render())
        assert "cancelled: not checked: 127.0.0.2, 127.0.0.3" in shown, shown
