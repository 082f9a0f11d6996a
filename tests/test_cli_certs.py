"""``regwiz certs`` end to end: real files, exit codes, and what the operator reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.certs import CertFiles, inspect_certificate
from app.cli import main

PLAN = """\
# my registry
[certificate]
common_name = "registry.example.internal"
country = "KR"
subject_alt_names = ["198.18.0.2"]

[registry]
host = "local"
address = "198.18.0.2"
"""


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_create_then_rerun_then_renew(plan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "certs", "--plan", str(plan_file))
    assert code == 0, err
    files = CertFiles(plan_file.parent / "certs")
    ca_fp = inspect_certificate(files.ca_crt).fingerprint
    assert "CA (created)" in out and "server (created)" in out
    assert ca_fp in out
    assert "198.18.0.2, registry.example.internal" in out
    assert str(files.directory) in out
    serial = inspect_certificate(files.tls_crt).serial

    code, out, _ = run(capsys, "certs", "--plan", str(plan_file))
    assert code == 0 and "CA (reused)" in out and "server (unchanged)" in out
    assert inspect_certificate(files.tls_crt).serial == serial

    code, out, _ = run(capsys, "certs", "--plan", str(plan_file), "--renew")
    assert code == 0 and "server (renewed)" in out
    assert inspect_certificate(files.tls_crt).serial != serial
    assert inspect_certificate(files.ca_crt).fingerprint == ca_fp
    assert plan_file.read_text() == PLAN  # the command never rewrites the plan


def test_top_level_plan_option_is_honoured(
    plan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--plan", str(plan_file), "certs")
    assert code == 0, err
    assert (plan_file.parent / "certs" / "tls.crt").exists()


def test_new_ca_says_to_reonboard(plan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "certs", "--plan", str(plan_file))[0] == 0
    code, out, _ = run(capsys, "certs", "--plan", str(plan_file), "--new-ca")
    assert code == 0
    assert "CA (replaced)" in out and "onboarded again" in out


def test_invalid_plan_exits_2_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(PLAN.replace('country = "KR"', 'country = "Korea"') + "port = 0\n")
    code, out, err = run(capsys, "certs", "--plan", str(bad))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"regwiz: invalid plan {bad} (2 problems):"
    assert lines[1].startswith("  certificate.country: expected a two-letter")
    assert lines[2] == "  registry.port: expected an integer from 1 to 65535, got 0"
    assert not (tmp_path / "certs").exists()


def test_missing_plan_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "certs", "--plan", str(tmp_path / "nope.toml"))
    assert code == 2 and "file not found" in err


def test_usage_errors_exit_2(plan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "certs", "--plan", str(plan_file), "--import-cert", "x.crt")
    assert code == 2 and "--import-cert and --import-key go together" in err
    code, _, err = run(capsys, "certs", "--plan", str(plan_file), "--renew", "--csr-only")
    assert code == 2 and "cannot be combined" in err
    with pytest.raises(SystemExit) as caught:
        main(["certs", "--bogus"])
    assert caught.value.code == 2


def test_certificate_failures_exit_1(
    plan_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "certs", "--plan", str(plan_file))[0] == 0
    files = CertFiles(plan_file.parent / "certs")
    files.ca_crt.unlink()
    code, _, err = run(capsys, "certs", "--plan", str(plan_file))
    assert code == 1
    assert "ca.crt is missing" in err and "hint:" in err and "--new-ca" in err
    assert "PRIVATE KEY" not in err


def test_csr_only_then_import_own_key(plan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "certs", "--plan", str(plan_file), "--csr-only")
    assert code == 0, err
    files = CertFiles(plan_file.parent / "certs")
    assert files.tls_csr.exists() and files.tls_key.exists() and not files.ca_crt.exists()
    assert "--import-cert" in out
    verify = subprocess.run(
        ["openssl", "req", "-in", str(files.tls_csr), "-verify", "-noout"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr


def test_import_rejection_exits_1(
    plan_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A certificate from a different plan's CA, with a key that is not its own.
    other = tmp_path / "other"
    other.mkdir()
    (other / "plan.toml").write_text(PLAN)
    assert run(capsys, "certs", "--plan", str(other / "plan.toml"))[0] == 0
    assert run(capsys, "certs", "--plan", str(plan_file), "--csr-only")[0] == 0
    own_key = plan_file.parent / "certs" / "tls.key"
    code, _, err = run(
        capsys,
        "certs",
        "--plan",
        str(plan_file),
        "--import-cert",
        str(other / "certs" / "tls.crt"),
        "--import-key",
        str(own_key),
        "--import-chain",
        str(other / "certs" / "ca.crt"),
    )
    assert code == 1 and "private key does not belong" in err
    code, out, err = run(
        capsys,
        "certs",
        "--plan",
        str(plan_file),
        "--import-cert",
        str(other / "certs" / "tls.crt"),
        "--import-key",
        str(other / "certs" / "tls.key"),
        "--import-chain",
        str(other / "certs" / "ca.crt"),
    )
    assert code == 0, err
    assert "server (imported)" in out


def test_inspect(plan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "certs", "--plan", str(plan_file))[0] == 0
    tls = plan_file.parent / "certs" / "tls.crt"
    code, out, _ = run(capsys, "certs", "inspect", str(tls))
    assert code == 0
    info = inspect_certificate(tls)
    assert info.fingerprint in out and "198.18.0.2" in out and "days left" in out
    code, _, err = run(capsys, "certs", "inspect", str(plan_file))
    assert code == 1 and "does not hold a valid PEM or DER certificate" in err


def test_installed_entry_point_help() -> None:
    regwiz = shutil.which("regwiz")
    command = [regwiz] if regwiz else [sys.executable, "-m", "app"]
    result = subprocess.run(
        [*command, "certs", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "regwiz certs inspect FILE" in result.stdout
    assert "--import-chain" in result.stdout
