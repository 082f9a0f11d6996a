"""regwiz k8s: pod spec and imagePullSecret YAML, parsed back with a real YAML parser."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from app.cli import main
from app.errors import UsageError
from app.htpasswd import Credentials, write_credentials
from app.k8s import (
    check_image_name,
    image_reference,
    pod_manifest,
    pod_name_for,
    pull_secret_manifest,
)
from app.plan import new_plan, save_plan


def write_plan(tmp_path: Path, *, auth: str = "none") -> Path:
    plan = new_plan(tmp_path / "plan.toml")
    plan.registry.address = "198.18.6.2"
    plan.registry.port = 8443
    plan.registry.auth = auth
    plan.certificate.subject_alt_names = ["198.18.6.2"]
    return save_plan(plan, tmp_path / "plan.toml")


def htpasswd_argv(tmp_path: Path) -> list[str]:
    """``regwiz k8s`` arguments for an htpasswd plan and the credentials file deploy wrote."""
    plan = write_plan(tmp_path, auth="htpasswd")
    creds = tmp_path / "creds.json"
    write_credentials(creds, Credentials("198.18.6.2:8443", "regwiz", "s3cret-pw"))
    return ["k8s", "--plan", str(plan), "--credentials-file", str(creds)]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", "198.18.6.2:8443/busybox:latest"),
        ("team/app:1.0", "198.18.6.2:8443/team/app:1.0"),
        ("a/b@sha256:" + "a" * 64, "198.18.6.2:8443/a/b@sha256:" + "a" * 64),
    ],
)
def test_image_reference(image: str, expected: str) -> None:
    assert image_reference("198.18.6.2:8443", image) == expected


@pytest.mark.parametrize(
    "bad", ["", "Team/App", "https://x/y", "/abs", "a b", "reg.example:5000/app", "app:"]
)
def test_invalid_images_are_rejected_with_a_message(bad: str) -> None:
    assert check_image_name(bad)
    with pytest.raises(UsageError):
        image_reference("r:1", bad)


@given(st.text(max_size=80))
def test_image_check_never_crashes(text: str) -> None:
    problem = check_image_name(text)
    assert problem is None or isinstance(problem, str)


def test_pod_manifest_parses_as_yaml() -> None:
    doc = yaml.safe_load(pod_manifest("198.18.6.2:8443/team/my_app:1", pull_secret="regcred"))
    assert doc["kind"] == "Pod" and doc["metadata"]["name"] == "my-app"
    container = doc["spec"]["containers"][0]
    assert container["image"] == "198.18.6.2:8443/team/my_app:1"
    assert doc["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert "imagePullSecrets" not in yaml.safe_load(pod_manifest("r:1/x:1"))["spec"]


def test_pod_name_is_a_dns_label() -> None:
    assert pod_name_for("Team/__Weird..Name__:v1") == "weird-name"
    assert pod_name_for("___") == "app"


def test_pull_secret_is_a_dockerconfigjson() -> None:
    text = pull_secret_manifest("198.18.6.2:8443", "regwiz", 'p"ss:word', namespace="apps")
    doc = yaml.safe_load(text)
    assert doc["type"] == "kubernetes.io/dockerconfigjson"
    assert doc["metadata"] == {"name": "regwiz-registry", "namespace": "apps"}
    config = json.loads(base64.b64decode(doc["data"][".dockerconfigjson"]))
    entry = config["auths"]["198.18.6.2:8443"]
    assert entry["username"] == "regwiz" and entry["password"] == 'p"ss:word'
    assert base64.b64decode(entry["auth"]).decode() == 'regwiz:p"ss:word'


def test_bad_secret_name_rejected() -> None:
    with pytest.raises(UsageError, match="DNS label"):
        pull_secret_manifest("r:1", "u", "p", name="Bad_Name")


def test_cli_prints_pod_only_without_auth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(tmp_path)
    assert main(["k8s", "--plan", str(plan), "--image", "team/app:2"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert len(docs) == 1 and docs[0]["spec"]["containers"][0]["image"] == (
        "198.18.6.2:8443/team/app:2"
    )


def test_cli_htpasswd_needs_the_credentials_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(tmp_path, auth="htpasswd")
    assert main(["k8s", "--plan", str(plan)]) == 2
    assert "--credentials-file" in capsys.readouterr().err


def test_cli_htpasswd_secret_from_credentials_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(htpasswd_argv(tmp_path)) == 0
    secret, pod = yaml.safe_load_all(capsys.readouterr().out)
    assert secret["kind"] == "Secret"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regwiz-registry"}]
    assert "s3cret-pw" not in (tmp_path / "plan.toml").read_text()


def test_cli_secret_out_writes_a_0600_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "secret.yaml"
    assert main([*htpasswd_argv(tmp_path), "--secret-out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "s3cret-pw" not in captured.out and "dockerconfigjson" not in captured.out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert yaml.safe_load(out.read_text())["kind"] == "Secret"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["creds.json", "plan.toml", "secret.yaml"]


@pytest.mark.parametrize(("target", "reason"), [("missing-folder/secret.yaml", "No such file"),
                                                ("a-folder", "Is a directory")])
def test_cli_secret_out_that_cannot_be_written_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, reason: str
) -> None:
    (tmp_path / "a-folder").mkdir()
    out = tmp_path / target
    assert main([*htpasswd_argv(tmp_path), "--secret-out", str(out)]) == 1
    assert f"cannot write {out}: {reason}" in capsys.readouterr().err
    assert not (tmp_path / "missing-folder").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "creds.json", "plan.toml"]


def test_cli_missing_credentials_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(tmp_path, auth="htpasswd")
    missing = tmp_path / "nope.json"
    assert main(["k8s", "--plan", str(plan), "--credentials-file", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_bad_image_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(tmp_path)
    assert main(["k8s", "--plan", str(plan), "--image", "Bad Image"]) == 2
    assert "image" in capsys.readouterr().err
