"""A plan file truncated or hand-edited into invalid TOML: every command that reads it exits 2
with a message naming the file and the problem; the file is never overwritten (byte for byte
the same, same mtime), nothing is created next to it; saving over a valid plan keeps a .bak;
a broken onboarding results file is reported, not a crash. No lab needed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.cli import main
from app.errors import RegwizError
from app.onboard import load_results
from app.plan import PlanError, Secrets, load_plan, new_plan, parse_plan, save_plan
from screens.app import RegwizApp
from screens.error_modal import ErrorModal

EXAMPLE = Path(__file__).resolve().parents[2] / "assets" / "plan-example.toml"
# Every command that takes --plan, with arguments that would make it act without prompting.
COMMANDS = [
    ["certs"], ["deploy"], ["deploy", "--dry-run"], ["onboard"], ["onboard", "--dry-run"],
    ["verify"], ["status"], ["status", "--json"], ["k8s"], ["apply"],
    ["uninstall", "--yes"],
]
HAND_EDITS = {
    "unclosed string": ('common_name = "', 'common_name = "registry.example.internal\n'),
    "missing value": ("port = ", "port = \n"),
    "broken table header": ("[registry]", "[registry\n"),
    "duplicate key": ("[registry]", '[registry]\nport = 1\nport = 2\n'),
    "stray text": ("[registry]", "[registry]\nthis is not toml\n"),
    "wrong type": ("[registry]", '[registry]\nport = "eighty"\n'),
    "unknown key": ("[registry]", "[registry]\nprot = 8443\n"),
    "binary junk": ("[registry]", "[registry]\n\x00\x01\x02\n"),
}


def _valid_plan_text() -> str:
    text = EXAMPLE.read_text()
    load_plan(EXAMPLE)  # the starting point is a valid, commented plan
    return text


def _truncations(text: str) -> list[str]:
    """Cuts of the example that no longer parse as a plan (a clean cut between tables may
    still be a valid, smaller plan; those are not faults)."""
    cuts = []
    for end in range(1, len(text), max(1, len(text) // 60)):
        candidate = text[:end]
        try:
            parse_plan(candidate)
        except PlanError:
            cuts.append(candidate)
    return cuts


def _hand_edited(name: str) -> str:
    anchor, replacement = HAND_EDITS[name]
    text = _valid_plan_text()
    line_start = text.index(anchor)
    line_end = text.index("\n", line_start) + 1
    return text[:line_start] + replacement + text[line_end:]


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}


def _check_every_command(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(path.parent)
    for command in COMMANDS:
        capsys.readouterr()
        code = main([command[0], "--plan", str(path), *command[1:]])
        captured = capsys.readouterr()
        out = captured.out + captured.err
        assert code == 2, (command, out)
        assert str(path) in out, (command, out)
        assert "Traceback" not in out
        assert _snapshot(path.parent) == before, f"{command} changed files next to the plan"


def test_truncated_plans_are_refused_by_every_command_and_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cuts = _truncations(_valid_plan_text())
    assert len(cuts) >= 20
    path = tmp_path / "plan.toml"
    for cut in cuts[:: max(1, len(cuts) // 12)]:  # a dozen spread over the file
        path.write_text(cut)
        _check_every_command(path, capsys)
    for cut in cuts:  # all of them through the loader and the saver
        path.write_text(cut)
        with pytest.raises(PlanError) as raised:
            load_plan(path)
        assert all(str(path) in p or "line" in p or "." in p for p in raised.value.problems)
        with pytest.raises(PlanError):
            save_plan(new_plan(), path)
        assert path.read_text() == cut
        assert not path.with_name("plan.toml.bak").exists()


@pytest.mark.parametrize("edit", sorted(HAND_EDITS))
def test_hand_edited_invalid_plan(
    edit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(_hand_edited(edit))
    with pytest.raises(PlanError) as raised:
        load_plan(path)
    problems = "\n".join(raised.value.problems)
    # a position, or the key that is wrong (tomlkit gives no line for a duplicate key)
    assert any(hint in problems for hint in ("line", "registry.", '"port"')), problems
    _check_every_command(path, capsys)
    broken = path.read_bytes()
    with pytest.raises(PlanError, match="not overwritten"):
        save_plan(new_plan(), path)
    assert path.read_bytes() == broken


def test_saving_over_a_valid_plan_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    original = _valid_plan_text()
    path.write_text(original)
    plan = load_plan(path)
    plan.registry.port = 9443
    save_plan(plan)
    assert path.with_name("plan.toml.bak").read_text() == original
    saved = path.read_text()
    assert "9443" in saved
    # the user's comments survive the save
    comments = [line for line in original.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(c in saved for c in comments[:10])
    assert load_plan(path).registry.port == 9443
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("plan.toml",
                                                                     "plan.toml.bak")]
    assert leftovers == [], "the atomic save left a temp file"


def test_broken_onboarding_results_file(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.toml"
    shutil.copy(EXAMPLE, path)
    plan = load_plan(path)
    results = path.with_name("plan.onboard-results.json")
    for junk in ('{"nodes": [', "\x00\xff", "[1, 2, 3]", '{"nodes": [{"host": 5}]}'):
        results.write_text(junk, errors="surrogateescape")
        try:
            load_results(plan)
        except Exception as error:  # only the documented, readable error is allowed
            assert isinstance(error, RegwizError), error
            assert str(results) in error.message and error.hint
        capsys.readouterr()
        code = main(["onboard", "--plan", str(path), "--retry-failed"])
        out = "".join(capsys.readouterr())
        assert code in (0, 1, 2) and "Traceback" not in out
        assert results.read_text(errors="surrogateescape") == junk


async def test_tui_never_overwrites_a_broken_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    broken = _hand_edited("unclosed string")
    path.write_text(broken)
    mtime = path.stat().st_mtime_ns
    app = RegwizApp(path, data_dir=tmp_path / "data", secrets=Secrets())
    async with app.run_test(size=(110, 36)) as pilot:
        await pilot.pause()
        await pilot.click("#new-plan")  # "start a new plan here", then confirm replacing it
        await pilot.pause()
        await pilot.click("#confirm")
        await pilot.pause()
        assert app.plan is not None  # the new plan exists in memory; saving it must refuse
        assert isinstance(app.screen, ErrorModal)
        assert "not overwritten" in app.screen.message
    assert path.read_text() == broken and path.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(tmp_path)) == ["data", "plan.toml"] or not (
        tmp_path / "plan.toml.bak").exists()


async def test_tui_says_why_the_plan_at_its_path_did_not_open(tmp_path: Path) -> None:
    """The welcome screen opens the plan at its path; when that plan is broken it shows the
    problems, then its on_mount calls show_plan_state() again, which replaces them with
    "No plan open: Continue starts a new one." The user never learns the file is broken."""
    path = tmp_path / "plan.toml"
    path.write_text(_hand_edited("unclosed string"))
    app = RegwizApp(path, data_dir=tmp_path / "data", secrets=Secrets())
    async with app.run_test(size=(110, 36)) as pilot:
        await pilot.pause()
        state = str(app.screen.query_one("#plan-state").render())
    assert "Cannot open this plan" in state and "line" in state, state
