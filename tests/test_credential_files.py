"""Credential files: Docker's config.json format, 0600 in a 0700 folder, never shown."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from app.credential_files import (
    CredentialFileError,
    RegistryCredential,
    credential_path,
    read_credential,
    write_credential,
)
from app.plan import new_plan


def test_round_trip_mode_and_format(tmp_path: Path) -> None:
    plan = new_plan(tmp_path / "plan.toml")
    path = credential_path(plan, "cluster")
    assert path == tmp_path / "credentials" / "cluster.json"
    credential = RegistryCredential("198.18.0.2:8443", "cluster", "s3cret:with-colon")
    write_credential(path, credential)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert list(data["auths"]) == ["198.18.0.2:8443"]
    assert read_credential(path, "198.18.0.2:8443") == credential
    assert read_credential(path, "other:5000") is None
    assert "s3cret" not in repr(credential)


def test_skopeo_reads_the_file_as_an_authfile(tmp_path: Path) -> None:
    path = tmp_path / "credentials" / "operator.json"
    write_credential(path, RegistryCredential("198.18.0.2:8443", "operator", "pw"))
    # skopeo's own reading of the file (no registry needed): logout finds the entry it parsed.
    done = subprocess.run(["skopeo", "logout", "--authfile", str(path), "198.18.0.2:8443"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(path.read_text())["auths"] == {}


@pytest.mark.parametrize("content", [b"not json", b'{"auths": {"r:1": {}}}',
                                     b'{"auths": {"r:1": {"auth": "!!!"}}}', b"[1]"])
def test_damaged_files_are_named_not_crashed_on(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "cluster.json"
    path.write_bytes(content)
    with pytest.raises(CredentialFileError) as raised:
        read_credential(path, "r:1")
    assert str(path) in raised.value.message
