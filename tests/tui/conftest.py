"""Fixtures for the TUI tests: every app gets its own plan path and data dir under tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.plan import Secrets
from app.tui import RegwizApp

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
