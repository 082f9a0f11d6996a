"""The Images modal of the Status step against a real Distribution registry on 127.0.0.1 (TLS with
its own CA, htpasswd with the operator account): an OCI layout goes in with live progress per
image, a second push sends nothing, and bad input is a message, never a crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from app.accounts import OPERATOR
from app.credential_files import RegistryCredential, credential_path, write_credential
from app.htpasswd import htpasswd_line
from app.images.endpoint import RegistryEndpoint
from app.plan import Plan, new_plan, save_plan
from app.registry_api import BasicAuth, tls_context
from screens.images import ImagesModal
from screens.status import StatusScreen
from tests.deploy_helpers import LocalRegistry, local_registry, make_pki
from tests.image_layouts import Layout
from tests.polling import wait_until_async
from tests.tui.conftest import AppFactory, settle

PASSWORD = "operator-password"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    htpasswd = htpasswd_line(OPERATOR, PASSWORD, rounds=4) + "\n"
    with local_registry(tmp_path / "registry", make_pki(["127.0.0.1"]),
                        htpasswd=htpasswd) as running:
        yield running


def plan_for(registry: LocalRegistry, plan_path: Path) -> Plan:
    """A plan whose registry is the local one: its CA, its address, the operator's login."""
    plan = new_plan(plan_path)
    plan.certificate.directory = str(registry.ca_path.parent)
    plan.registry.address, port = registry.base.removeprefix("https://").rsplit(":", 1)
    plan.registry.port = int(port)
    save_plan(plan)
    write_credential(credential_path(plan, OPERATOR),
                     RegistryCredential(plan.registry_reference, OPERATOR, PASSWORD))
    return plan


async def push(app: Any, pilot: Pilot[Any]) -> str:
    """Press Push and return the result line once this push has written it."""
    result = app.screen.query_one("#images-result", Static)
    result.update("")
    app.screen.query_one("#push").scroll_visible(animate=False, immediate=True)
    await pilot.pause()
    assert await pilot.click("#push"), "the click on Push hit another widget"
    await wait_until_async(lambda: str(result.render()).strip() != "" and
                           "copying" not in str(result.render()),
                           lambda: pilot.pause(0.05), "the push's result", 120)
    await settle(app, pilot)
    return str(result.render())


async def test_images_go_in_with_progress_per_image_and_a_second_push_sends_nothing(
        make_app: AppFactory, plan_path: Path, registry: LocalRegistry, tmp_path: Path) -> None:
    plan = plan_for(registry, plan_path)
    layout = Layout(tmp_path / "layout")
    multi = layout.add("1.0", ["amd64", "arm64"], [3000, 9000])
    layout.add("slim", ["amd64"], [2000])
    app = make_app("status")
    app.open_plan(plan_path)
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, StatusScreen)
        await pilot.click("#images")
        assert isinstance(app.screen, ImagesModal)
        app.screen.query_one("#image-path", Input).value = str(layout.root)
        app.screen.query_one("#image-repository", Input).value = "team/app"
        result = await push(app, pilot)
        assert "2 of 2 image(s) copied and checked" in result, result
        table = app.screen.query_one("#images-table", DataTable)
        states = {str(table.get_cell(key, "state")) for key in table.rows}
        assert states == {"✓ copied"}, states
        again = await push(app, pilot)
        assert "2 of 2" in again and "0 B sent" in again, again
    target = RegistryEndpoint(plan.registry_reference, tls_context(registry.ca_path),
                              BasicAuth(OPERATOR, PASSWORD), basic_first=True)
    assert target.manifest_digest("team/app", "1.0") == multi.digest


async def test_bad_input_is_a_message_not_a_crash(
        make_app: AppFactory, plan_path: Path, registry: LocalRegistry, tmp_path: Path) -> None:
    plan_for(registry, plan_path)
    app = make_app("status")
    app.open_plan(plan_path)
    async with app.run_test(size=(120, 40)) as pilot:
        app.screen.action_images()  # type: ignore[attr-defined]
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ImagesModal)
        modal.query_one("#image-refs", Input).value = "Not An Image"
        assert "is not an image reference" in await push(app, pilot)
        modal.query_one("#image-refs", Input).value = "busybox:1.36"
        modal.query_one("#image-path", Input).value = str(tmp_path / "missing.tar")
        assert "name the images one way" in await push(app, pilot)
        modal.query_one("#image-refs", Input).value = ""
        assert "not a readable tar archive" in await push(app, pilot)
        assert isinstance(app.screen, ImagesModal)  # still there, nothing crashed
