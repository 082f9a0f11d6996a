"""The Status step against a real registry on 127.0.0.1 (issue 15 parts 1 and 2): the panel
shows the volume with the threshold warning and each repository's tags and size; the Prune
modal checks its fields, previews, asks, and deletes with progress."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Input, ProgressBar, Static

from app.plan import load_plan, save_plan
from screens.confirm import ConfirmModal
from screens.deploy import DeployScreen
from screens.prune import PruneModal
from screens.status import StatusScreen
from tests.deploy_helpers import LocalRegistry, local_registry, make_pki
from tests.image_helpers import Pusher, local_plan
from tests.polling import wait_until_async
from tests.tui.conftest import AppFactory, settle


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRegistry]:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    with local_registry(tmp_path / "reg", make_pki(["127.0.0.1"]),
                        delete_enabled=True) as running:
        yield running


def text(widget: Static) -> str:
    return str(widget.render())


async def test_prune_modal_previews_confirms_and_deletes_with_progress(
    make_app: AppFactory, plan_path: Path, registry: LocalRegistry
) -> None:
    pusher = Pusher(registry.base, registry.ca_path)
    digests = {n: pusher.image("app", f"v{n}", [b"base" * 64, f"own {n}".encode()],
                               f"2026-01-0{n}T00:00:00Z").digest for n in (1, 2, 3)}
    other = pusher.image("other", "1", [b"other"], "2026-01-01T00:00:00Z").digest
    local_plan(plan_path, registry, disk_warn_percent=1)
    app = make_app("status")
    app.open_plan(plan_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, StatusScreen)
        panel = " ".join(text(screen.query_one("#status-text", Static)).split())
        assert "app 3 tags," in panel and "other 1 tag," in panel
        assert "free of" in panel and "at or above disk_warn_percent (1%)" in panel

        screen.query_one("#prune", Button).press()
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, PruneModal)
        assert not modal.query_one("#enable-delete", Button).display  # delete is on
        modal.query_one("#keep-last", Input).value = "0"
        modal.query_one("#protect", Input).value = "ok bad;name"
        await pilot.pause()
        modal.query_one("#preview", Button).press()
        await settle(app, pilot)
        problems = text(modal.query_one("#prune-problems", Static))
        assert "keep last" in problems and "bad;name" in problems
        assert modal.query_one("#prune-table", DataTable).row_count == 0  # nothing read

        modal.query_one("#keep-last", Input).value = "1"
        modal.query_one("#protect", Input).value = ""
        modal.query_one("#repos", Input).value = "app"
        await pilot.pause()
        modal.query_one("#preview", Button).press()
        await settle(app, pilot)
        table = modal.query_one("#prune-table", DataTable)
        verdicts = {str(table.get_cell(f"app:v{n}", "tag")): str(
            table.get_cell(f"app:v{n}", "verdict")) for n in (1, 2, 3)}
        assert verdicts == {"v1": "delete", "v2": "delete", "v3": "keep"}
        assert table.row_count == 3  # other is not covered
        assert pusher.head("app", "v1") == digests[1]  # a preview deletes nothing
        delete = modal.query_one("#delete", Button)
        assert not delete.disabled

        delete.press()  # asks first; "Keep them" deletes nothing
        await wait_until_async(lambda: isinstance(app.screen, ConfirmModal),
                               lambda: pilot.pause(0.02), "the confirmation")
        assert "app:v1" in text(app.screen.query_one(".dialog-body", Static))
        app.screen.query_one("#cancel", Button).press()
        await settle(app, pilot)
        assert app.screen is modal and pusher.head("app", "v2") == digests[2]

        delete.press()
        await wait_until_async(lambda: isinstance(app.screen, ConfirmModal),
                               lambda: pilot.pause(0.02), "the confirmation")
        app.screen.query_one("#confirm", Button).press()
        await settle(app, pilot)
        bar = modal.query_one("#prune-progress", ProgressBar)
        assert (bar.total, bar.progress) == (2, 2)
        assert str(table.get_cell("app:v1", "verdict")) == "deleted"
        assert str(table.get_cell("app:v3", "verdict")) == "keep"
        assert "2 tag(s) deleted, 0 failed" in text(modal.query_one("#prune-result", Static))
        assert modal.query_one("#delete", Button).disabled  # a new preview is needed
        assert pusher.head("app", "v1") is None and pusher.head("app", "v2") is None
        assert pusher.head("app", "v3") == digests[3] and pusher.head("other", "1") == other

        modal.query_one("#close", Button).press()  # closing refreshes the status
        await settle(app, pilot)
        assert app.screen is screen
        panel = " ".join(text(screen.query_one("#status-text", Static)).split())
        assert "app 1 tag," in panel


async def test_prune_modal_says_how_to_enable_delete(
    make_app: AppFactory, plan_path: Path, registry: LocalRegistry
) -> None:
    pusher = Pusher(registry.base, registry.ca_path)
    for n in (1, 2):
        pusher.image("app", f"v{n}", [f"own {n}".encode()], f"2026-01-0{n}T00:00:00Z")
    pusher.image("app", "x1", [b"x1"], "2025-01-01T00:00:00Z")
    local_plan(plan_path, registry)
    plan = load_plan(plan_path)
    plan.registry.delete_enabled = False
    save_plan(plan)
    app = make_app("status")
    app.open_plan(plan_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await app.screen.run_action("prune")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, PruneModal)
        modal.query_one("#keep-last", Input).value = "1"
        modal.query_one("#protect", Input).value = "x[a1]"  # a glob with brackets
        modal.query_one("#preview", Button).press()
        await settle(app, pilot)
        table = modal.query_one("#prune-table", DataTable)
        assert table.row_count == 3
        assert str(table.get_cell("app:x1", "reason")) == "protected (x[a1])"
        assert modal.query_one("#delete", Button).disabled
        result = text(modal.query_one("#prune-result", Static))
        assert "1 tag(s) to delete" in result and "delete_enabled = true" in result
        enable = modal.query_one("#enable-delete", Button)
        assert enable.display
        enable.press()
        await wait_until_async(lambda: isinstance(app.screen, ConfirmModal),
                               lambda: pilot.pause(0.02), "the confirmation")
        app.screen.query_one("#confirm", Button).press()
        await wait_until_async(lambda: isinstance(app.screen, DeployScreen),
                               lambda: pilot.pause(0.02), "the Deploy step")
        assert load_plan(plan_path).registry.delete_enabled
        assert app.plan is not None and app.plan.registry.delete_enabled
