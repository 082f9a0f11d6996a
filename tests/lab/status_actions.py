"""The Status step's day-two actions, driven as a user would: open the plan on the Status step,
press the action's button, confirm, and wait for the action's result line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Static

from app.plan import Secrets
from screens.app import RegwizApp
from screens.confirm import ConfirmModal
from tests.lab.test_private_lab import Private
from tests.polling import wait_until_async
from tests.tui.conftest import settle

ACTION_TIMEOUT_S = 300.0


async def run_status_action(private: Private, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                            button: str, finished: Callable[[str], bool]) -> str:
    """Press ``button``, confirm, and return the result line once ``finished`` says so."""
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(private.known_hosts))
    app = RegwizApp(private.plan, data_dir=data_dir, secrets=Secrets(), start="status")
    app.open_plan(private.plan)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.click(button)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.click("#confirm")
        result = app.screen.query_one("#action-result", Static)
        await wait_until_async(lambda: finished(str(result.render())), lambda: pilot.pause(0.1),
                               f"the result of {button}", ACTION_TIMEOUT_S)
        await settle(app, pilot)
        return str(result.render())
