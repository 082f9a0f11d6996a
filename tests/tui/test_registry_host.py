"""Registry host: validation, secrets kept in memory, test connection against a real sshd with the
host-key modal (accept / reject) and the changed-key warning that cannot be accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Input, RadioSet, Static

from app.plan import load_plan
from screens.app import RegwizApp
from screens.host_key_changed import HostKeyChangedModal
from screens.host_key_unknown import HostKeyUnknownModal
from screens.registry_host import RegistryHostScreen
from tests.sshd import SshServer, sshd  # noqa: F401  (fixture)
from tests.tui.conftest import AppFactory, settle, wait_for_modal


@pytest.fixture
def known_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "known_hosts"
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(path))
    return path


def fill_target(screen: RegistryHostScreen, server: SshServer) -> None:
    screen.query_one("#host", Input).value = "127.0.0.1"
    screen.query_one("#ssh-user", Input).value = "root"
    screen.query_one("#ssh-port", Input).value = str(server.port)
    radio = screen.query_one("#auth-method", RadioSet)
    next(b for b in radio.query("RadioButton") if b.name == "key").value = True  # type: ignore[attr-defined]
    screen.query_one("#identity-file", Input).value = str(server.client_key)


async def unknown_key_modal_without_sudo(app: RegwizApp, pilot: Pilot[Any],
                                         server: SshServer) -> HostKeyUnknownModal:
    """Test the connection to ``server`` (no sudo) and return the host-key question it asks."""
    screen = app.screen
    assert isinstance(screen, RegistryHostScreen)
    fill_target(screen, server)
    screen.query_one("#sudo", Checkbox).value = False
    await pilot.pause()
    screen.query_one("#test-connection", Button).press()
    await wait_for_modal(app, pilot, HostKeyUnknownModal)
    modal = app.screen
    assert isinstance(modal, HostKeyUnknownModal)
    return modal


def result_text(app: RegwizApp) -> str:
    return str(app.screen.query_one("#connection-result", Static).render())


async def test_invalid_fields_block_next_and_passwords_stay_out_of_the_plan(
    make_app: AppFactory, plan_path: Path
) -> None:
    app = make_app("registry")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, RegistryHostScreen)
        screen.query_one("#host", Input).value = "bad host;rm"
        screen.query_one("#data-dir", Input).value = "relative/dir"
        await pilot.pause()
        assert screen.query_one("#next", Button).disabled
        assert len(screen.problems()) == 2
        screen.query_one("#host", Input).value = "198.18.0.2"
        screen.query_one("#data-dir", Input).value = "/srv/registry"
        radio = screen.query_one("#auth-method", RadioSet)
        next(b for b in radio.query("RadioButton") if b.name == "password").value = True  # type: ignore[attr-defined]
        await pilot.pause()
        assert any("SSH password" in p for p in screen.problems())
        next(b for b in radio.query("RadioButton") if b.name == "key").value = True  # type: ignore[attr-defined]
        screen.query_one("#identity-file", Input).value = "~no-such-user-here/id_ed25519"
        await pilot.pause()
        assert any("not a user on this machine" in p for p in screen.problems())
        next(b for b in radio.query("RadioButton") if b.name == "password").value = True  # type: ignore[attr-defined]
        await pilot.pause()
        screen.query_one("#ssh-password", Input).value = "s3cret-ssh"
        screen.query_one("#sudo-password", Input).value = "s3cret-sudo"
        await pilot.pause()
        assert screen.problems() == []
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.secrets.ssh_password == "s3cret-ssh"
        assert app.secrets.sudo_password_for("198.18.0.2") == "s3cret-sudo"
        assert app.secrets.sudo_password is None  # the registry's own, not every host's
        assert app.sudo_passwords == {"198.18.0.2": "s3cret-sudo"}
    text = plan_path.read_text()
    assert "s3cret" not in text
    saved = load_plan(plan_path)
    assert saved.registry.host == "198.18.0.2"
    assert saved.registry.data_dir == "/srv/registry"


async def test_unknown_host_key_rejected(
    make_app: AppFactory, sshd: SshServer, known_hosts: Path  # noqa: F811
) -> None:
    app = make_app("registry")
    async with app.run_test(size=(100, 32)) as pilot:
        modal = await unknown_key_modal_without_sudo(app, pilot, sshd)
        assert str(modal.query_one("#fingerprint", Static).render()) == sshd.fingerprint()
        await pilot.click("#reject")
        await settle(app, pilot)
        assert "not accepted" in result_text(app)
    assert not known_hosts.exists() or known_hosts.read_text() == ""


async def test_unknown_host_key_accepted_and_remembered(
    make_app: AppFactory, sshd: SshServer, known_hosts: Path  # noqa: F811
) -> None:
    app = make_app("registry")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, RegistryHostScreen)
        fill_target(screen, sshd)
        await pilot.pause()
        screen.query_one("#test-connection", Button).press()
        await wait_for_modal(app, pilot, HostKeyUnknownModal)
        await pilot.click("#accept")
        await settle(app, pilot)
        assert "connected to" in result_text(app)
        assert "sudo works" in result_text(app)
    assert sshd.host_public_key.split()[1] in known_hosts.read_text()


async def test_changed_host_key_cannot_be_accepted(
    make_app: AppFactory, sshd: SshServer, known_hosts: Path, tmp_path: Path  # noqa: F811
) -> None:
    from tests.sshd import keygen

    other = keygen(tmp_path / "other_host_key")
    fields = other.with_suffix(".pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {fields[0]} {fields[1]}\n")
    app = make_app("registry")
    async with app.run_test(size=(100, 32)) as pilot:
        screen = app.screen
        assert isinstance(screen, RegistryHostScreen)
        fill_target(screen, sshd)
        await pilot.pause()
        screen.query_one("#test-connection", Button).press()
        await app.workers.wait_for_complete()
        await wait_for_modal(app, pilot, HostKeyChangedModal)
        modal = app.screen
        assert not modal.query("#accept")
        detail = str(modal.query_one("#changed-detail", Static).render())
        assert sshd.fingerprint() in detail
        await pilot.click("#close")
        await pilot.pause()
        assert "CHANGED" in result_text(app)


async def test_new_host_key_type_asks_with_the_known_keys_as_a_warning(
    make_app: AppFactory, sshd: SshServer, known_hosts: Path, tmp_path: Path  # noqa: F811
) -> None:
    """Issue 12 item 6: known_hosts has only another key type for the host."""
    import base64

    from app.transport.hostkeys import fingerprint_of_blob
    from tests.sshd import keygen

    other = keygen(tmp_path / "other_rsa_host_key", "rsa")
    fields = other.with_suffix(".pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {fields[0]} {fields[1]}\n")
    known = f"ssh-rsa {fingerprint_of_blob(base64.b64decode(fields[1]))}"
    app = make_app("registry")
    async with app.run_test(size=(100, 40)) as pilot:
        modal = await unknown_key_modal_without_sudo(app, pilot, sshd)
        warning = str(modal.query_one("#known-keys", Static).render())
        assert known in warning and "different type" in warning
        await pilot.click("#reject")
        await settle(app, pilot)
        assert "not accepted" in result_text(app)
    assert sshd.host_public_key.split()[1] not in known_hosts.read_text()


PIN = "sha256:" + "e" * 64


async def test_image_choice_offers_registry_2_and_3_and_edits_keep_the_pin(
    make_app: AppFactory, plan_path: Path
) -> None:
    from textual.widgets import Select

    from app.plan import new_plan, save_plan

    plan = new_plan(plan_path)
    plan.registry.host = plan.registry.address = "198.18.0.2"
    plan.registry.image_digest = PIN
    plan_path.parent.mkdir(parents=True)
    save_plan(plan)
    app = make_app("registry")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, RegistryHostScreen)
        note = screen.query_one("#image-note", Static)
        assert "Pinned to sha256:eeeeeeeeeeee" in str(note.render())
        screen.query_one("#image-choice", Select).value = "registry:3"
        await pilot.pause()
        assert screen.query_one("#image", Input).value == "registry:3"
        assert "/etc/distribution/config.yml" in str(note.render())
        assert "pin of registry:2 is dropped" in str(note.render())
        assert screen.candidate().registry.image_digest is None
        screen.query_one("#image", Input).value = "registry:2"  # back: the pin is its own again
        await pilot.pause()
        assert screen.query_one("#image-choice", Select).value == "registry:2"
        screen.query_one("#port", Input).value = "9443"  # any other edit keeps the pin
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
    saved = load_plan(plan_path).registry
    assert (saved.port, saved.image, saved.image_digest) == (9443, "registry:2", PIN)
