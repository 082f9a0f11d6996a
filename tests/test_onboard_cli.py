"""`regwiz onboard` argument handling and report output (runs against nodes: the lab tests)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app import onboard
from app.cli import main
from app.commands.onboard import print_report
from app.plan import save_plan
from app.steps import Outcome, StepResult
from tests.test_onboard_fakes import plan_with_ca


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    plan = plan_with_ca(tmp_path, ["198.18.9.3"])
    return save_plan(plan)


@pytest.mark.parametrize(("args", "message"), [
    (["--parallel", "0"], "--parallel must be at least 1"),
    (["--timeout", "0"], "--timeout must be positive"),
    (["--only", "10.9.9.9"], "not a node of this plan: 10.9.9.9"),
    (["--retry-failed"], "no saved results"),
    (["--nodes-file", "/nonexistent/nodes.txt"], "does not exist"),
    (["--from-kubectl", "bad host!"], "--from-kubectl"),
    (["--ask-sudo-password"], "--ask-sudo-password needs a terminal"),  # pytest has no tty
])
def test_usage_errors_exit_2_with_a_message(
        plan_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["onboard", "--plan", str(plan_file), *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_nodes_file_lines_are_listed(plan_file: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("good\nbad:port\n")
    assert main(["onboard", "--plan", str(plan_file), "--nodes-file", str(nodes)]) == 2
    assert f"{nodes} line 2: port" in capsys.readouterr().err


def test_invalid_plan_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "plan.toml"
    bad.write_text("[registry]\nport = 'abc'\n")
    assert main(["onboard", "--plan", str(bad)]) == 2
    assert "registry.port" in capsys.readouterr().err


def test_only_and_retry_failed_exclude_each_other(plan_file: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["onboard", "--plan", str(plan_file), "--only", "a", "--retry-failed"])
    assert info.value.code == 2


def test_retry_with_nothing_failed_says_so(plan_file: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    results = plan_file.with_name("plan.onboard-results.json")
    results.write_text('{"nodes": [{"host": "198.18.9.3", "status": "changed"}]}')
    assert main(["onboard", "--plan", str(plan_file), "--retry-failed"]) == 0
    assert "nothing to retry" in capsys.readouterr().out


def test_report_table_and_failure_details() -> None:
    ok = onboard.NodeResult("10.0.0.1", "root", 22, "changed", runtimes=["docker"],
                            changed_files=["/etc/docker/certs.d/r/ca.crt"], seconds=1.25)
    bad = onboard.NodeResult("10.0.0.2", "ops", 22, "failed", reason="sudo password wrong",
                             message="sudo on 10.0.0.2 rejected the password",
                             hint="check the sudo password", seconds=0.5,
                             steps=[StepResult("x", "10.0.0.2", Outcome.FAILED)])
    report = onboard.OnboardReport([ok, bad], "r:8443", "AB:CD:EF:01:23:45:67:89:AB", False, 2.0)
    out = io.StringIO()
    print_report(report, Path("/tmp/p.onboard-results.json"), out)
    text = out.getvalue()
    assert "10.0.0.1              changed    docker" in text
    assert "10.0.0.2: sudo password wrong: sudo on 10.0.0.2 rejected the password" in text
    assert "hint: check the sudo password" in text
    assert "2 node(s) in 2.0s: 1 changed, 1 failed" in text
    assert "results saved to /tmp/p.onboard-results.json" in text


def test_dry_run_report_prints_each_node_s_steps() -> None:
    planned = onboard.NodeResult("n1", "root", 22, "planned", runtimes=["containerd"],
                                 dry_run_lines=["[n1] restart containerd\n    why: config"])
    report = onboard.OnboardReport([planned], "r", "AB", True, 0.1)
    out = io.StringIO()
    print_report(report, None, out)
    assert "== n1 (planned, containerd)\n[n1] restart containerd" in out.getvalue()
    assert "results saved" not in out.getvalue()
