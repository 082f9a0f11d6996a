"""The wheel ships app/, screens/ and assets/, and an installed copy finds its stylesheets."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_assets_and_finds_them_when_installed(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("regwiz-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    stylesheets = [n for n in names if n.startswith("assets/") and n.endswith(".tcss")]
    assert stylesheets, names
    assert any(n.startswith("screens/") for n in names)
    assert any(n == "app/cli.py" for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )
    probe = (
        "import assets, pathlib, sys\n"
        f"assert pathlib.Path(assets.__file__).is_relative_to({str(target)!r}), assets.__file__\n"
        f"print(assets.asset({Path(stylesheets[0]).name!r}).read_text()[:20])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_console_script_and_module_entry_point_show_help() -> None:
    for argv in (["regwiz", "--help"], [sys.executable, "-m", "app", "--help"]):
        out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert "usage: regwiz" in out.stdout


def test_error_quoting_a_lone_surrogate_is_printed_not_raised() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "certs", "inspect", "/nonexistent/\udcff.pem"],
        capture_output=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"},
    )
    assert out.returncode in (1, 2), out.stderr
    assert b"Traceback" not in out.stderr
    assert b"regwiz:" in out.stderr


def test_plan_path_under_an_unknown_user_is_a_plan_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "certs", "--plan", "~regwiz-no-such-user/plan.toml"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "regwiz-no-such-user" in out.stderr
