"""The accounts modal of the Status step (issue 11): lists the accounts without passwords, rotates
one in a worker (the local file first, then the host: here no Docker, so it says the host was not
updated), and the Status step notes an unencrypted CA key and a registry without auth."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Static

from app.accounts import AccountStore
from app.plan import load_plan, new_plan, save_plan
from screens.accounts import AccountsModal
from tests.tui.conftest import AppFactory, save_with_certificates, settle


@pytest.fixture
def local_plan(plan_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    plan = new_plan(plan_path)
    plan.registry.host = "local"
    plan.registry.address = "127.0.0.1"
    plan.registry.port = 1
    return save_with_certificates(plan)


def text(widget: Static) -> str:
    return str(widget.render())


async def test_accounts_modal_lists_and_rotates_without_showing_passwords(
    make_app: AppFactory, local_plan: Path
) -> None:
    store = AccountStore(load_plan(local_plan), {})
    store.ensure_defaults()
    old = store.credential("operator")
    assert old is not None
    app = make_app("status")
    app.open_plan(local_plan)
    async with app.run_test(size=(110, 36)) as pilot:
        await settle(app, pilot)
        notes = text(app.screen.query_one("#status-notes", Static))
        assert "is not encrypted" in notes
        app.screen.query_one("#accounts", Button).press()
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, AccountsModal)
        table = modal.query_one("#accounts-table", DataTable)
        rows = [table.get_row_at(index) for index in range(table.row_count)]
        assert [(row[0], row[1]) for row in rows] == [("operator", "push"), ("cluster", "pull")]
        assert all(old.password not in str(cell) for row in rows for cell in row)
        modal.query_one("#rotate", Button).press()  # the cursor is on operator
        await pilot.pause()
        await settle(app, pilot)
        result = text(modal.query_one("#accounts-result", Static))
        assert "saved here, but the registry host was not updated" in result
        new = store.credential("operator")
        assert new is not None and new.password != old.password
        assert new.password not in result and old.password not in result


async def test_status_warns_for_a_registry_without_auth(
    make_app: AppFactory, local_plan: Path
) -> None:
    plan = load_plan(local_plan)
    plan.registry.auth = "none"
    save_plan(plan, local_plan)
    app = make_app("status")
    app.open_plan(local_plan)
    async with app.run_test(size=(110, 36)) as pilot:
        await settle(app, pilot)
        assert "anyone who can reach" in text(app.screen.query_one("#status-notes", Static))
        assert not app.screen.query_one("#accounts", Button).display
