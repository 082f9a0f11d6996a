"""Issue 12 item 8 (first two), on the lab's real dockerd and registry.

- The registry password deploy generates is never printed when stdout is not a terminal (CI
  logs, pipes): before the fix ``regwiz deploy`` printed it to any stdout.
- The registry's minimum TLS version is pinned to 1.2 (``REGISTRY_HTTP_TLS_MINIMUMTLS``) in the
  container it runs: before the fix the variable was not set. The lab's image (Distribution
  2.8.2) already defaults to 1.2 (older 2.x images default to 1.0), so the handshake checks
  below pass either way; the pin is what keeps them true for any image the plan names. The
  image honours the variable (checked by hand: ``tls1.3`` there refuses a 1.2 client).
"""

from __future__ import annotations

import subprocess

import pytest

from app.htpasswd import read_credentials
from tests.faults.test_deploy_faults import Env, env  # noqa: F401 - the deploy fixture


def _handshake(address: str, version: str) -> bool:
    """Whether openssl completes a handshake with exactly this protocol version."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", address, f"-{version}",
         "-cipher", "DEFAULT:@SECLEVEL=0"],
        input=b"", capture_output=True, timeout=20, check=False)
    return b"Protocol  :" in done.stdout and b"Cipher is (NONE)" not in done.stdout


def test_generated_password_is_not_printed_to_a_non_terminal(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    monkeypatch.delenv("REGWIZ_REGISTRY_PASSWORD", raising=False)
    env.write_plan(auth="htpasswd")
    credentials_file = env.plan_path.parent / "registry-credentials"
    code, output = env.cli(capsys, "deploy", "--credentials-file", str(credentials_file))
    assert code == 0, output
    credentials = read_credentials(credentials_file)
    assert credentials is not None and credentials.password
    assert credentials.password not in output, "the generated password was printed"
    # With accounts (issue 11) deploy never prints a password at all: every account's is in
    # its credential file next to the plan.
    from app.credential_files import read_credential

    for name in ("operator", "cluster"):
        saved = read_credential(env.plan_path.parent / "credentials" / f"{name}.json",
                                credentials.registry)
        assert saved is not None and saved.password not in output, name


def test_registry_minimum_tls_is_pinned_to_1_2(
    env: Env, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    code, output = env.cli(capsys, "deploy")
    assert code == 0, output
    inspected = env.host.exec(["docker", "inspect", "-f", "{{json .Config.Env}}", env.name])
    assert "REGISTRY_HTTP_TLS_MINIMUMTLS=tls1.2" in inspected.stdout.decode()
    assert _handshake(env.address, "tls1_2")
    assert not _handshake(env.address, "tls1_1")
