"""`regwiz deploy` / `regwiz uninstall` command-line behaviour that needs no host."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main

PLAN = """\
[certificate]
common_name = "registry.lab.internal"
subject_alt_names = ["198.18.4.2"]
directory = "certs"

[registry]
host = "198.18.4.2"
ssh_user = "rwdeploy"
address = "198.18.4.2"
port = 8443
auth = "htpasswd"
"""


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN)
    return path


def test_dry_run_lists_every_step_and_connects_to_nothing(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 198.18.4.2 may not exist here: a dry run that tried to connect would fail or hang.
    assert main(["deploy", "--plan", str(plan), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run: nothing is connected to or changed")
    for expected in ("Check the certificate covers 198.18.4.2", "Connect (host key checked)",
                     "Check port 8443 is free", "Make image registry:2 available",
                     "Upload tls.crt and tls.key",
                     # issue 11: with auth the registry sits behind its nginx front
                     "Make front image nginx:stable available",
                     "Write the accounts' htpasswd and the front's config",
                     "docker network create regwiz-registry",
                     "docker run -d --restart=always --name registry --network regwiz-registry",
                     "Run front registry-front on 0.0.0.0:8443",
                     "-p 0.0.0.0:8443:443", "Health check https://198.18.4.2:8443/v2/"):
        assert expected in out, expected
    assert "why:" in out


def test_invalid_plan_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[registry]\nport = "abc"\n')
    assert main(["deploy", "--plan", str(bad)]) == 2
    assert "registry.port" in capsys.readouterr().err


def test_missing_image_tar_is_a_usage_error(
    plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["deploy", "--plan", str(plan), "--image-tar", str(tmp_path / "nope.tar")])
    assert code == 2
    assert "nope.tar: no such file" in capsys.readouterr().err


def test_missing_certificates_fail_first_step_with_hint(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", "--plan", str(plan)]) == 1
    out = capsys.readouterr().out
    assert "failed  [local] Check the certificate covers 198.18.4.2" in out
    assert "regwiz certs --plan" in out
    assert "skipped  [198.18.4.2] Connect" in out


def test_uninstall_purge_without_terminal_refuses(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["uninstall", "--plan", str(plan), "--purge"]) == 2
    assert "--yes" in capsys.readouterr().err


def test_uninstall_dry_run(plan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["uninstall", "--plan", str(plan), "--purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Remove container registry" in out and "Delete data directory /registry-image" in out


def test_headless_secret_failures_name_the_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    from app.commands.output import print_progress
    from app.steps import Outcome, StepResult

    # The hint follows the error's kind (run_steps copies it onto the failed StepResult).
    print_progress(StepResult("Check Docker", "h", Outcome.FAILED,
                              "sudo on h needs a password and none was given", "enter it",
                              kind="sudo-password-missing"))
    print_progress(StepResult("Connect", "h", Outcome.FAILED, "x@h:22 refused the login",
                              kind="login-refused"))
    print_progress(StepResult("Connect", "h", Outcome.FAILED, "something else", kind="command"))
    out = capsys.readouterr().out
    assert out.count("headless: set") == 2
    assert "REGWIZ_SUDO_PASSWORD" in out and "REGWIZ_SSH_PASSWORD" in out


def test_a_certificate_that_differs_from_the_plan_is_never_deployed(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "--plan", str(plan)]) == 0
    plan.write_text(PLAN.replace('["198.18.4.2"]', '["198.18.4.2", "mirror.lab.internal"]'))
    capsys.readouterr()
    assert main(["deploy", "--plan", str(plan)]) == 1
    out = capsys.readouterr().out
    assert "failed  [local] Check the certificate covers 198.18.4.2" in out
    assert "differs from the plan: SAN mirror.lab.internal is in the plan but not in the" in out
    assert "regwiz certs --plan FILE" in out
    assert "skipped  [198.18.4.2] Connect" in out


def test_a_ca_file_holding_a_private_key_is_never_copied(
    plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "--plan", str(plan)]) == 0
    certs = plan.parent / "certs"
    ca_with_key = (certs / "ca.crt").read_bytes() + (certs / "ca.key").read_bytes()
    (certs / "ca.crt").write_bytes(ca_with_key)
    capsys.readouterr()
    assert main(["deploy", "--plan", str(plan)]) == 1
    out = capsys.readouterr().out
    assert "contains a private key; refusing to copy it" in out
    assert "skipped  [198.18.4.2] Connect" in out
