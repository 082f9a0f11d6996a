"""The app shell: command palette, help, worker errors as modals, quit while a job runs,
Back/Next saving the plan, the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandPalette
from textual.widgets import Button, Input

from app.cli import build_parser
from app.errors import UsageError
from app.plan import load_plan
from screens.app import RegwizApp, run_tui
from screens.cert_request import CertRequestScreen
from screens.confirm import ConfirmModal
from screens.error_modal import ErrorModal
from screens.help import HelpScreen
from screens.host_key_unknown import HostKeyUnknownModal
from screens.nodes import NodesScreen
from screens.registry_host import RegistryHostScreen
from screens.steps import STEP_NAMES, STEPS, step_by_name
from screens.wizard_screen import WizardScreen
from tests.sshd import SshServer, sshd  # noqa: F401  (fixture)
from tests.tui.conftest import AppFactory, settle, wait_for_modal


def test_every_step_has_a_screen() -> None:
    assert len(set(STEP_NAMES)) == len(STEPS) == 11
    for step in STEPS:
        screen_class = step.screen_class()
        assert issubclass(screen_class, WizardScreen)
        assert step.name == screen_class.STEP
        assert step.title and step.short and step.help


def test_a_registry_regwiz_did_not_deploy_skips_certificates_host_mirrors_and_deploy() -> None:
    from screens.steps import steps_for

    managed = [step.name for step in steps_for(True)]
    external = [step.name for step in steps_for(False)]
    assert managed == ["welcome", "certificate", "review", "registry", "mirrors", "deploy",
                       "nodes", "onboarding", "verify", "status"]
    assert external == ["welcome", "external", "nodes", "onboarding", "verify", "status"]


async def test_palette_offers_steps_and_goes_there(make_app: AppFactory) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Go to: Cluster nodes")
        await pilot.pause()
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, NodesScreen)


async def test_help_opens_and_closes(make_app: AppFactory) -> None:
    app = make_app("nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, NodesScreen)


async def test_a_crashing_worker_shows_an_error_modal(make_app: AppFactory) -> None:
    def boom() -> None:
        raise RuntimeError("disk exploded")

    app = make_app("nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.run_worker(boom, thread=True, exit_on_error=False, name="Boom job")
        await settle(app, pilot)
        assert isinstance(app.screen, ErrorModal)
        assert "disk exploded" in app.screen.message
        assert app.is_running
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, NodesScreen)


async def test_back_and_next_save_the_plan(make_app: AppFactory, plan_path: Path) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#organization", Input).value = "Saved Corp"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert load_plan(plan_path).certificate.organization == "Saved Corp"
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert isinstance(app.screen, CertRequestScreen)
        app.screen.query_one("#locality", Input).value = "Gangnam-gu"
        await pilot.pause()
        await pilot.press("ctrl+b")  # back to welcome also saves
        await pilot.pause()
    assert load_plan(plan_path).certificate.locality == "Gangnam-gu"


@pytest.mark.parametrize(("start", "button", "expected"), [
    ("deploy", "#next", "nodes"), ("deploy", "#back", "mirrors"),
    ("mirrors", "#back", "registry"), ("mirrors", "#next", "deploy"),
    ("onboarding", "#next", "verify"), ("verify", "#back", "onboarding"),
    ("status", "#back", "verify"), ("welcome", "#next", "certificate"),
])
async def test_a_click_on_back_or_next_moves_one_step(
    make_app: AppFactory, start: str, button: str, expected: str
) -> None:
    # Steps with buttons of their own once ran the Back/Next handler twice: two steps at once.
    app = make_app(start)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.click(button)
        await settle(app, pilot)
        assert app.current_step == expected
        assert type(app.screen) is step_by_name(expected).screen_class()


async def test_a_plan_that_cannot_be_saved_keeps_the_step_and_says_why(
    make_app: AppFactory, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the plan's folder should be\n")
    app = make_app("certificate", plan=blocker / "plan.toml")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.title_text == "The plan could not be saved"
        assert str(blocker / "plan.toml") in app.screen.message
        assert app.screen.hint and "bug" not in app.screen.hint
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CertRequestScreen)
        assert app.current_step == "certificate"


async def test_back_with_invalid_fields_asks_before_discarding(
    make_app: AppFactory, plan_path: Path
) -> None:
    app = make_app("certificate")
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#country", Input).value = "XX"
        await pilot.pause()
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("escape")  # stay
        await pilot.pause()
        assert isinstance(app.screen, CertRequestScreen)
    assert not plan_path.exists()


async def test_quit_while_a_job_waits_asks_and_cancels_cleanly(
    make_app: AppFactory, sshd: SshServer, tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    app = make_app("registry")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, RegistryHostScreen)
        screen.query_one("#host", Input).value = "127.0.0.1"
        screen.query_one("#ssh-port", Input).value = str(sshd.port)
        await pilot.pause()
        screen.query_one("#test-connection", Button).press()
        # the worker is now blocked on the host-key question
        await wait_for_modal(app, pilot, HostKeyUnknownModal)
        assert app.busy_workers()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.click("#cancel")  # keep working
        await pilot.pause()
        assert app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.click("#confirm")
        await app.workers.wait_for_complete()
    assert app.return_code == 0
    assert not (tmp_path / "known_hosts").exists()  # the unanswered key was never accepted


def test_sudo_passwords_are_remembered_per_host(make_app: AppFactory) -> None:
    app = make_app()
    app.remember_sudo_password(["198.18.0.3", "198.18.0.4"], "pw-nodes", shared=True)
    app.remember_sudo_password(["198.18.0.2"], "pw-registry")
    assert app.sudo_passwords == {"198.18.0.3": "pw-nodes", "198.18.0.4": "pw-nodes",
                                  "198.18.0.2": "pw-registry"}
    assert app.secrets.sudo_password == "pw-nodes"  # the registry step never overwrites it
    assert app.secrets.sudo_password_for("198.18.0.2") == "pw-registry"
    assert app.secrets.sudo_password_for("198.18.0.9") == "pw-nodes"  # a node added later
    app.remember_sudo_password(["198.18.0.2"], "")
    assert app.sudo_passwords == {"198.18.0.3": "pw-nodes", "198.18.0.4": "pw-nodes"}
    assert app.secrets.sudo_password == "pw-nodes"
    assert app.secrets.sudo_password_for("198.18.0.2") == "pw-nodes"


def test_opening_another_plan_clears_the_session(make_app: AppFactory, plan_path: Path,
                                                 tmp_path: Path) -> None:
    app = make_app()
    app.start_new_plan(plan_path)
    assert app.save_plan()
    app.session.verify = object()  # type: ignore[assignment]
    app.remember_sudo_password(["198.18.0.2"], "pw")
    app.open_plan(plan_path)
    assert app.session.verify is None
    assert app.sudo_passwords == {"198.18.0.2": "pw"}  # typed secrets stay, like ssh_password
    app.session.onboarding = object()  # type: ignore[assignment]
    app.start_new_plan(tmp_path / "other.toml")
    assert app.session.onboarding is None


def test_cli_without_subcommand_reaches_run_tui(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def fake_run(self: RegwizApp) -> int:
        seen["plan"] = self.plan_path
        return 0

    monkeypatch.setattr(RegwizApp, "run", fake_run)
    args = build_parser().parse_args(["--plan", str(tmp_path / "p.toml")])
    assert run_tui(args) == 0
    assert seen["plan"] == tmp_path / "p.toml"


def test_cli_plan_under_an_unknown_home_is_a_usage_error() -> None:
    args = build_parser().parse_args(["--plan", "~no-such-user-here/plan.toml"])
    with pytest.raises(UsageError, match="no such user"):
        run_tui(args)


async def test_palette_runs_the_current_steps_actions(
    make_app: AppFactory, plan_path: Path
) -> None:
    app = make_app("review")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Generate certificates")
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert (plan_path.parent / "certs" / "tls.crt").is_file()


async def test_a_save_keeps_what_another_program_wrote_to_the_plan(
    make_app: AppFactory, plan_path: Path
) -> None:
    """A CLI deploy pins the image while the wizard has the plan open: the wizard's next save
    keeps the pin and its own edit; where both changed a key, the wizard's value wins and the
    other version is in the .bak file."""
    from app.plan import save_plan

    app = make_app()
    app.start_new_plan(plan_path)
    assert app.save_plan()
    app.open_plan(plan_path)
    pin = "sha256:" + "cd" * 32
    outside = load_plan(plan_path)
    outside.registry.image_digest = pin
    outside.registry.container_name = "outside-name"
    save_plan(outside)
    async with app.run_test(size=(100, 32)) as pilot:
        assert app.plan is not None
        app.plan.registry.port = 9443
        app.plan.registry.container_name = "wizard-name"
        assert app.save_plan()
        await pilot.pause()
        saved = load_plan(plan_path)
        assert (saved.registry.image_digest, saved.registry.port) == (pin, 9443)
        assert saved.registry.container_name == "wizard-name"
        assert app.plan.registry.image_digest == pin
        assert "outside-name" in plan_path.with_name(plan_path.name + ".bak").read_text()
        shown = " ".join(str(n.message) for n in app._notifications)
        assert "kept: registry.image_digest" in shown
        assert "registry.container_name" in shown and ".bak" in shown


def test_a_list_edited_in_place_is_saved(make_app: AppFactory, plan_path: Path) -> None:
    """The wizard edits the plan's lists in place (SANs, nodes): the copy a save compares the
    file with must not change with them, or the file's old list would win."""
    app = make_app()
    app.start_new_plan(plan_path)
    assert app.save_plan()
    app.open_plan(plan_path)
    assert app.plan is not None
    app.plan.certificate.subject_alt_names.append("mirror.example.internal")
    assert app.save_plan()
    assert "mirror.example.internal" in load_plan(plan_path).certificate.subject_alt_names
