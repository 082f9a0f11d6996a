"""A registry regwiz did not deploy (issue 16): the plan's keys, the CA chain judgement, the
named verify image and the commands that refuse. Pure logic; the lab test proves the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from app.ca_fetch import CaFetchError, judge_chain, save_root
from app.credential_files import CredentialFileError
from app.errors import UsageError
from app.node_credentials import external_pull_login, pull_credential
from app.plan import Plan, PlanError, parse_plan, render_plan, require_managed, validate_plan
from app.verify import named_image, registry_auth
from tests.deploy_helpers import make_pki

EXTERNAL = """\
[registry]
managed = false
address = "harbor.example.com"
port = 443
ca_file = "harbor-ca.crt"
pull_auth_file = "robot.json"
verify_image = "library/busybox:1.36"
"""


def _plan(tmp_path: Path, text: str = EXTERNAL) -> Plan:
    return parse_plan(text, tmp_path / "plan.toml")


def test_an_external_registry_needs_no_host_and_no_certificate_section(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert not plan.registry.managed
    assert plan.trusted_ca_path == tmp_path / "harbor-ca.crt"
    assert plan.registry_reference == "harbor.example.com"
    assert validate_plan(plan) == []


def test_a_managed_registry_still_needs_its_host_and_common_name() -> None:
    with pytest.raises(PlanError) as raised:
        parse_plan('[registry]\naddress = "r.example"\n')
    assert "registry.host: missing" in str(raised.value)
    assert "certificate.common_name: missing" in str(raised.value)


def test_saving_an_external_plan_writes_only_what_was_set(tmp_path: Path) -> None:
    text = render_plan(_plan(tmp_path))
    assert "[certificate]" not in text and "container_name" not in text
    again = parse_plan(text, tmp_path / "plan.toml")
    assert again.registry == _plan(tmp_path).registry


@pytest.mark.parametrize(("value", "problem"), [
    ("ghcr.io/org/app:1", "without the registry"),
    ("localhost/app:1", "without the registry"),
    ("Upper/case", "expected an image"),
    ("app:bad tag", "expected an image"),
])
def test_verify_image_names_an_image_in_the_plans_registry(tmp_path: Path, value: str,
                                                           problem: str) -> None:
    with pytest.raises(PlanError) as raised:
        _plan(tmp_path, EXTERNAL.replace("library/busybox:1.36", value))
    assert "registry.verify_image: " in str(raised.value) and problem in str(raised.value)


@pytest.mark.parametrize(("value", "reference"), [
    ("library/busybox:1.36", "harbor.example.com/library/busybox:1.36"),
    ("project/app", "harbor.example.com/project/app:latest"),
    ("app@sha256:" + "a" * 64, "harbor.example.com/app@sha256:" + "a" * 64),
])
def test_the_named_image_reference(tmp_path: Path, value: str, reference: str) -> None:
    plan = _plan(tmp_path, EXTERNAL.replace("library/busybox:1.36", value))
    assert named_image(plan).reference == reference


def test_verify_without_a_named_image_says_what_to_set(tmp_path: Path) -> None:
    plan = _plan(tmp_path, EXTERNAL.replace('verify_image = "library/busybox:1.36"\n', ""))
    with pytest.raises(Exception, match="registry.verify_image is not set"):
        named_image(plan)


@pytest.mark.parametrize("command", ["deploy", "uninstall", "certs", "accounts"])
def test_commands_for_the_registry_host_refuse(tmp_path: Path, command: str) -> None:
    with pytest.raises(UsageError, match="managed = false") as raised:
        require_managed(_plan(tmp_path), command)
    assert raised.value.exit_code == 2


def test_the_pull_login_comes_from_the_auth_file_with_a_dollar_in_the_name(
        tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with pytest.raises(CredentialFileError, match="does not exist"):
        pull_credential(plan)
    robot = {"auths": {"harbor.example.com": {"username": "robot$ci", "password": "s3cret"}}}
    (tmp_path / "robot.json").write_text(json.dumps(robot))
    login = external_pull_login(plan)
    assert login is not None and (login.username, login.password) == ("robot$ci", "s3cret")
    wanted = pull_credential(plan)
    assert wanted is not None and wanted.username == "robot$ci" and not wanted.remove
    assert registry_auth(plan, secrets=None) == ("robot$ci", "s3cret")  # type: ignore[arg-type]
    (tmp_path / "robot.json").write_text(json.dumps({"auths": {"other:5000": {}}}))
    with pytest.raises(CredentialFileError, match="holds no login for harbor.example.com"):
        pull_credential(plan)


def _certs(pki_pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pki_pem)


def test_a_chain_with_its_root_gives_that_root(tmp_path: Path) -> None:
    pki = make_pki(["harbor.example.com"], cn="Corp Root")
    chain = judge_chain("harbor.example.com:443", _certs(pki.cert_pem + pki.ca_pem))
    assert chain.root_pem == pki.ca_pem and not chain.problems
    assert save_root(_plan(tmp_path), chain).read_bytes() == pki.ca_pem


def test_a_chain_without_its_root_gives_nothing_and_says_why(tmp_path: Path) -> None:
    pki = make_pki(["harbor.example.com"], cn="Corp Root")
    chain = judge_chain("harbor.example.com:443", _certs(pki.cert_pem))
    assert chain.root_pem is None
    assert "does not send its root CA" in chain.problems[0]
    with pytest.raises(CaFetchError):
        save_root(_plan(tmp_path), chain)
    assert not (tmp_path / "harbor-ca.crt").exists()


def test_a_root_that_did_not_sign_the_chain_is_not_offered() -> None:
    served, stranger = make_pki(["harbor.example.com"]), make_pki(["x"], cn="Stranger")
    chain = judge_chain("h:443", _certs(served.cert_pem + stranger.ca_pem))
    assert chain.root_pem is None and "is not signed by the next" in chain.problems[0]
