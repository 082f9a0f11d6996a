"""``regwiz plan example``: the commented example a pip user can read, and the plan header
comment that points to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.plan import load_plan, new_plan, render_plan
from assets import asset

ROOT = Path(__file__).resolve().parent.parent


def test_plan_example_prints_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "example"]) == 0
    out = capsys.readouterr().out
    assert out == asset("plan-example.toml").read_text(encoding="utf-8")
    assert "regwiz plan example" in out  # the example says how to get it again


def test_plan_example_redirected_to_a_file_is_a_valid_plan(tmp_path: Path) -> None:
    target = tmp_path / "plan.toml"
    with target.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "app", "plan", "example"], stdout=out,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    plan = load_plan(target)
    assert plan.certificate.common_name == "registry.example.internal"


def test_plan_without_an_action_shows_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan"]) == 2
    assert "example" in capsys.readouterr().err


def test_a_new_plan_file_points_to_regwiz_plan_example(tmp_path: Path) -> None:
    text = render_plan(new_plan(tmp_path / "plan.toml"))
    header = text.splitlines()[0]
    assert header.startswith("#") and "regwiz plan example" in header
    assert "assets/" not in header  # a pip install has no checkout to look in
