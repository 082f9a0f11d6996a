"""deploy() and its DeployReport, without a host: a dry run, and a run that fails locally."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.address import RegistryAddress
from app.deploy import DeployOptions, DeployReport, deploy
from app.plan import Plan, RegistrySettings, Secrets
from app.steps import Outcome, StepResult
from app.transport.base import Transport


def never_connect() -> Transport:
    raise AssertionError("nothing may connect here")


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    registry = dataclasses.replace(RegistrySettings(host="198.18.4.2", address="198.18.4.2"),
                                   port=8443, auth="htpasswd")
    return Plan(registry=registry, path=tmp_path / "plan.toml")


def test_dry_run_lists_the_steps_and_connects_to_nothing(plan: Plan) -> None:
    planned_calls: list[list[tuple[str, str]]] = []
    report = deploy(plan, Secrets(), DeployOptions(), connect=never_connect, dry_run=True,
                    on_planned=planned_calls.append)
    assert report.dry_run and report.results == [] and report.ok and report.exit_code == 0
    assert planned_calls == [report.planned]
    assert report.planned[0] == ("Check the certificate covers 198.18.4.2", "local")
    assert report.planned[-3:] == [("Health check https://198.18.4.2:8443/v2/", "local"),
                                   ("Remove the previous containers", "198.18.4.2"),
                                   ("Remove caches no longer in the plan", "198.18.4.2")]
    assert len(report.dry_run_lines) == len(report.planned)
    assert report.dry_run_lines[0].startswith("[local] Check the certificate covers")
    assert report.registry == RegistryAddress("198.18.4.2", 8443)
    assert (report.container_id, report.log_tail, report.generated_password) == ("", "", False)


def test_a_failed_run_is_reported_step_by_step(plan: Plan, tmp_path: Path) -> None:
    # No certificates: the first step fails and nothing connects.
    seen: list[StepResult] = []
    planned: list[list[tuple[str, str]]] = []

    def on_planned(steps: list[tuple[str, str]]) -> None:
        assert seen == []  # before the first step runs
        planned.append(steps)

    options = DeployOptions(credentials_file=tmp_path / "creds.json")
    report = deploy(plan, Secrets(), options, connect=never_connect, on_planned=on_planned,
                    on_progress=seen.append)
    assert not report.dry_run and report.dry_run_lines == []
    assert [(r.what, r.where) for r in report.results] == report.planned == planned[0]
    assert report.results[0].outcome is Outcome.FAILED
    assert "regwiz certs" in (report.results[0].hint or "")
    assert all(r.outcome is Outcome.SKIPPED for r in report.results[1:])
    assert report.failed == [report.results[0]] and not report.ok and report.exit_code == 1
    assert report.counts() == {"changed": 0, "unchanged": 0, "failed": 1}
    assert report.credentials_file == tmp_path / "creds.json"
    assert (report.container_id, report.log_tail, report.generated_password) == ("", "", False)
    assert report.new_credentials is None and report.seconds >= 0


def test_should_stop_skips_every_step(plan: Plan) -> None:
    report = deploy(plan, Secrets(), None, connect=never_connect, should_stop=lambda: True)
    assert all(r.outcome is Outcome.SKIPPED for r in report.results)
    assert report.ok  # skipped is not failed, as run_steps reports it


def test_report_counts_like_summarize() -> None:
    results = [StepResult("a", "h", Outcome.CHANGED), StepResult("b", "h", Outcome.UNCHANGED),
               StepResult("c", "h", Outcome.FAILED, "boom")]
    report = DeployReport(results, [("a", "h"), ("b", "h"), ("c", "h")], False, [], "abc", "log",
                          False, None, RegistryAddress("r", 443), 1.0)
    assert report.counts() == {"changed": 1, "unchanged": 1, "failed": 1}
    assert [r.what for r in report.failed] == ["c"] and report.exit_code == 1
