"""A job that met a missing or wrong secret asks for it (naming the host and what it is for),
then runs again with it; "use it for all remaining hosts" answers the later hosts too."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Checkbox, Input

from app.deploy import DeployReport
from app.onboard import NodeResult, NodeState, OnboardReport
from app.plan import NodeSettings, new_plan
from app.steps import Outcome, StepResult
from screens.deploy import DeployScreen
from screens.messages import DeployFinished, OnboardFinished
from screens.onboarding import OnboardingScreen
from screens.secret_prompt import SecretPromptModal
from tests.tui.conftest import AppFactory, save_with_certificates, wait_for_modal


def failed_node(host: str, kind: str) -> NodeResult:
    return NodeResult(host, "rwops", 22, NodeState.FAILED, reason="sudo password missing",
                      kind=kind)


async def test_onboarding_asks_each_host_and_offers_the_answer_for_all(
    make_app: AppFactory, plan_path: Path
) -> None:
    plan = new_plan(plan_path)
    plan.nodes = [NodeSettings(host=h) for h in ("198.18.0.3", "198.18.0.4", "198.18.0.5")]
    save_with_certificates(plan)
    app = make_app("onboarding")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, OnboardingScreen)
        started: list[list[str] | None] = []
        screen.start = started.append  # type: ignore[method-assign]
        report = OnboardReport([
            failed_node("198.18.0.3", "sudo-password-missing"),
            NodeResult("198.18.0.4", "rwops", 22, NodeState.FAILED, reason="unreachable",
                       kind="unreachable"),  # no secret fixes that: not asked
            failed_node("198.18.0.5", "sudo-password-wrong"),
        ], "198.18.0.2:8443", "AB", False, 1.0)
        screen.post_message(OnboardFinished(report))
        await wait_for_modal(app, pilot, SecretPromptModal)
        modal = app.screen
        assert isinstance(modal, SecretPromptModal)
        assert (modal.host, modal.what) == ("198.18.0.3", "sudo password")
        modal.query_one("#secret", Input).value = "pw-nodes"
        modal.query_one("#for-all", Checkbox).value = True
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, SecretPromptModal)  # .5 answered by "for all"
        assert started == [["198.18.0.3", "198.18.0.5"]]
        assert app.secrets.sudo_password_for("198.18.0.3") == "pw-nodes"
        assert app.secrets.sudo_password_for("198.18.0.5") == "pw-nodes"
        assert app.secrets.sudo_password_for("198.18.0.4") is None


async def test_deploy_asks_for_the_key_passphrase_then_deploys_again(
    make_app: AppFactory, plan_path: Path
) -> None:
    plan = new_plan(plan_path)
    plan.registry.host = "198.18.0.2"
    save_with_certificates(plan)
    app = make_app("deploy")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        deploys: list[bool] = []
        screen.action_deploy = lambda: deploys.append(True)  # type: ignore[method-assign]
        failed = StepResult("Connect (host key checked)", "198.18.0.2", Outcome.FAILED,
                            "the key is encrypted", kind="key-passphrase-needed")
        report = DeployReport([failed], [(failed.what, failed.where)], False, [], "", "",
                              False, None, plan.registry_address, 1.0)
        screen.post_message(DeployFinished(report))
        await wait_for_modal(app, pilot, SecretPromptModal)
        modal = app.screen
        assert isinstance(modal, SecretPromptModal)
        assert (modal.host, modal.what) == ("198.18.0.2", "SSH key passphrase")
        assert not modal.query("#for-all")  # one host: nothing to reuse it for
        await pilot.press("escape")  # cancelled: nothing is retried
        await pilot.pause()
        assert deploys == [] and app.secrets.key_passphrase is None
        screen.post_message(DeployFinished(report))
        await wait_for_modal(app, pilot, SecretPromptModal)
        app.screen.query_one("#secret", Input).value = "key-pass"
        await pilot.press("enter")
        await pilot.pause()
        assert deploys == [True] and app.secrets.key_passphrase == "key-pass"
