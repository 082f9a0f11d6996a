"""The operator's own disk is full (a small tmpfs holding the plan folder, filled up): saving
the plan, renewing certificates, rotating the CA and saving onboarding results must each fail
with a clear message, keep every existing file intact, leave no temp file, and work again
once space is freed. Needs root for the mount (it uses the lab's nodes for onboarding)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.errors import RegwizError
from app.plan import load_plan, save_plan
from tests.faults.conftest import NodeFiles
from tests.lab.lab import Lab, LabHost
from tests.lab.plans import node_plan


@pytest.fixture
def full_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "full"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=700", "regwiz-fault-local",
                    str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def nodes(lab: Lab) -> Iterator[list[LabHost]]:
    hosts = lab.sshd_nodes(2)
    yield hosts
    NodeFiles(f"{lab['registry'].ip}:18605").remove(hosts)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
    return filler


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != "filler"}


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_saving_the_plan_on_a_full_disk(full_folder: Path, lab: Lab,
                                        nodes: list[LabHost]) -> None:
    plan = node_plan(full_folder, lab, nodes, port=18605)
    save_plan(plan)  # a .bak exists from now on
    filler = _fill(full_folder)
    before = _snapshot(full_folder)
    plan.registry.port = 18606
    with pytest.raises(RegwizError) as raised:
        save_plan(plan)
    assert str(full_folder / "plan.toml") in raised.value.message
    assert "space" in raised.value.message.lower()
    assert _snapshot(full_folder) == before and _temps(full_folder) == []
    assert load_plan(full_folder / "plan.toml").registry.port == 18605
    filler.unlink()
    save_plan(plan)
    assert load_plan(full_folder / "plan.toml").registry.port == 18606


def test_certificate_renewal_on_a_full_disk(full_folder: Path, lab: Lab, nodes: list[LabHost],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    plan = node_plan(full_folder, lab, nodes, port=18605)
    filler = _fill(full_folder)
    before = _snapshot(full_folder)
    code, out = _cli(capsys, "certs", "--plan", str(plan.path), "--renew")
    assert code == 1, out
    assert "space" in out.lower() and "Traceback" not in out
    assert _snapshot(full_folder) == before and _temps(full_folder) == []
    filler.unlink()
    code, out = _cli(capsys, "certs", "--plan", str(plan.path), "--renew")
    assert code == 0, out
    assert _snapshot(full_folder)["certs/tls.crt"] != before["certs/tls.crt"]
    assert _snapshot(full_folder)["certs/ca.crt"] == before["certs/ca.crt"]


def test_ca_rotation_on_a_full_disk_keeps_the_current_ca(
    full_folder: Path, lab: Lab, nodes: list[LabHost], capsys: pytest.CaptureFixture[str]
) -> None:
    """`regwiz certs --new-ca` first renames ca.crt/ca.key to *.old-<time> (a rename needs no
    space), then writes the new CA; when that write fails the plan is left with no CA at all,
    and the next plain `regwiz certs` silently creates an unrelated one, so every node must be
    onboarded again. Expected: the current CA stays in place until the new one is written."""
    plan = node_plan(full_folder, lab, nodes, port=18605)
    filler = _fill(full_folder)
    before = _snapshot(full_folder)
    code, out = _cli(capsys, "certs", "--plan", str(plan.path), "--new-ca")
    assert code == 1, out
    assert "space" in out.lower() and "Traceback" not in out
    after = _snapshot(full_folder)
    assert after.get("certs/ca.crt") == before["certs/ca.crt"], sorted(after)
    assert after.get("certs/ca.key") == before["certs/ca.key"], sorted(after)
    filler.unlink()


def test_onboarding_results_on_a_full_disk(full_folder: Path, lab: Lab, nodes: list[LabHost],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The nodes are set up; only the results file cannot be written. The run must say so
    (and still exit with the nodes' outcome or 1), never a traceback, never a half-written
    results file or a *.tmp next to the plan; the previous results file stays."""
    plan = node_plan(full_folder, lab, nodes, port=18605)
    assert plan.path is not None
    argv = ["onboard", "--plan", str(plan.path), "--known-hosts", str(lab.known_hosts)]
    code, out = _cli(capsys, *argv)
    assert code == 0, out
    results = full_folder / "plan.onboard-results.json"
    saved = results.read_bytes()
    NodeFiles(plan.registry_reference).remove(nodes)  # so the next run has work to do
    filler = _fill(full_folder)
    try:
        code, out = _cli(capsys, *argv)
    except OSError as error:  # save_results: temp.write_text() raises, nothing catches it
        pytest.fail(f"onboard crashed on a full disk instead of reporting it: {error!r}; "
                    f"left next to the plan: {_temps(full_folder)}")
    assert code == 1 and "space" in out.lower(), out
    assert _temps(full_folder) == [] and results.read_bytes() == saved
    for node in nodes:  # the work on the nodes was done all the same
        assert node.host_path(f"/etc/docker/certs.d/{plan.registry_reference}/ca.crt").exists()
    filler.unlink()
    code, out = _cli(capsys, *argv)
    assert code == 0, out
