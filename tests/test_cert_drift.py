"""A certificate that no longer says what the plan asks for is found, named, and reissued."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from app.cert_drift import extra_sans, missing_sans, plan_differences, planned_san
from app.certs import CertFiles, ensure_certificates
from app.plan import Plan, new_plan


def issued_plan(tmp_path: Path) -> Plan:
    plan = new_plan(tmp_path / "plan.toml")
    plan.certificate.common_name = "registry.example.internal"
    plan.certificate.organization = "Example Corp"
    plan.certificate.email = "ops@example.internal"
    plan.certificate.subject_alt_names = [
        "198.18.0.2", "registry.example.internal", "old.example.internal",
    ]
    plan.registry.address = "198.18.0.2"
    ensure_certificates(plan)
    return plan


def served(plan: Plan) -> x509.Certificate:
    return x509.load_pem_x509_certificate(CertFiles(plan.cert_dir).tls_crt.read_bytes())


def test_a_fresh_certificate_matches_its_plan(tmp_path: Path) -> None:
    plan = issued_plan(tmp_path)
    assert plan_differences(plan, served(plan), issued_here=True) == []


def test_an_added_san_is_named(tmp_path: Path) -> None:
    plan = issued_plan(tmp_path)
    plan.certificate.subject_alt_names.append("mirror.example.internal")
    cert = served(plan)
    assert [str(s) for s in missing_sans(plan, cert)] == ["mirror.example.internal"]
    assert plan_differences(plan, cert, issued_here=True) == [
        "SAN mirror.example.internal is in the plan but not in the certificate"
    ]


def test_a_dropped_san_is_named_but_not_for_a_foreign_ca(tmp_path: Path) -> None:
    plan = issued_plan(tmp_path)
    plan.certificate.subject_alt_names = ["198.18.0.2"]
    cert = served(plan)
    assert [str(s) for s in extra_sans(plan, cert)] == ["old.example.internal"]
    assert plan_differences(plan, cert, issued_here=True) == [
        "SAN old.example.internal is in the certificate but no longer in the plan"
    ]
    assert plan_differences(plan, cert, issued_here=False) == []


def test_subject_and_key_type_changes_are_named(tmp_path: Path) -> None:
    plan = issued_plan(tmp_path)
    plan.certificate.organization = "New Corp"
    plan.certificate.key_type = "rsa-2048"
    lines = plan_differences(plan, served(plan), issued_here=True)
    assert lines == [
        "subject O (certificate.organization): the plan says 'New Corp', "
        "the certificate 'Example Corp'",
        "key type: the plan says rsa-2048, the certificate has ecdsa-p256",
    ]


def test_a_dns_name_spelled_like_an_ip_is_not_that_ip() -> None:
    assert planned_san("198.18.0.2") != planned_san("registry")
    assert planned_san("FD00::0002").value == "fd00::2"
    assert planned_san("Registry.Example").value == "registry.example"


def test_ensure_certificates_reissues_on_a_renamed_subject_or_dropped_san(tmp_path: Path) -> None:
    plan = issued_plan(tmp_path)
    plan.certificate.organization = "New Corp"
    plan.certificate.subject_alt_names = ["198.18.0.2"]
    summary = ensure_certificates(plan)
    assert summary.leaf_action == "reissued"
    assert any("no longer in the plan" in reason for reason in summary.reasons)
    assert any("certificate.organization" in reason for reason in summary.reasons)
    assert plan_differences(plan, served(plan), issued_here=True) == []
    assert ensure_certificates(plan).leaf_action == "unchanged"
