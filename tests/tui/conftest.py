"""Fixtures for the TUI tests: every app gets its own plan path and data dir under tmp_path."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.worker import WorkerCancelled, WorkerFailed

from app.certs import ensure_certificates
from app.plan import Plan, Secrets, save_plan
from screens.app import RegwizApp
from tests.polling import PATIENCE_S, wait_until_async

AppFactory = Callable[..., RegwizApp]


@pytest.fixture
def plan_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "plan.toml"


@pytest.fixture
def make_app(tmp_path: Path, plan_path: Path) -> AppFactory:
    def make(start: str = "welcome", *, plan: Path | None = None) -> RegwizApp:
        return RegwizApp(
            plan or plan_path,
            data_dir=tmp_path / "data",
            secrets=Secrets(),  # never the developer's REGWIZ_* variables
            start=start,
        )

    return make


def save_with_certificates(plan: Plan) -> Path:
    """Save ``plan`` at its path (folder made as needed) with a CA and server certificate."""
    path = save_plan(plan)
    ensure_certificates(plan)
    return path


async def settle(app: RegwizApp, pilot: Pilot[Any]) -> None:
    """Wait until every worker finished and the messages they posted were handled."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        with contextlib.suppress(WorkerFailed, WorkerCancelled):  # the screen reports those
            await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(not worker.is_finished for worker in app.workers) and \
                not app.screen._message_queue.qsize():
            await pilot.pause()
            return
    raise AssertionError(f"workers still busy after {PATIENCE_S:g} s")


async def wait_for_modal(app: RegwizApp, pilot: Pilot[Any], kind: type) -> None:
    """Wait until a worker's thread has pushed a ``kind`` modal and the app shows it."""
    await wait_until_async(lambda: isinstance(app.screen, kind), lambda: pilot.pause(0.02),
                           f"a {kind.__name__} appears")
