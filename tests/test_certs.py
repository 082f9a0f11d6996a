"""The certificate engine on real files, checked with cryptography and the openssl CLI."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.certs import (
    CertError,
    CertFiles,
    ensure_certificates,
    export_csr,
    fingerprint,
    import_certificate,
    inspect_certificate,
    key_type_of,
)
from app.plan import Plan, new_plan
from app.validate import KEY_TYPES

SANS = ["198.18.0.2", "registry.example.internal", "fd00::2", "*.apps.example.internal"]


def make_plan(tmp_path: Path, key_type: str = "ecdsa-p256", **cert: object) -> Plan:
    plan = new_plan(tmp_path / "plan.toml")
    plan.certificate.common_name = "registry.example.internal"
    plan.certificate.country = "KR"
    plan.certificate.organization = "Example Corp"
    plan.certificate.subject_alt_names = list(SANS)
    plan.certificate.key_type = key_type
    plan.registry.address = "198.18.0.2"
    plan.certificate.name_constraints = False  # new plans have them (issue 11); tests opt in
    for name, value in cert.items():
        setattr(plan.certificate, name, value)
    return plan


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ext(cert: x509.Certificate, kind: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module", params=KEY_TYPES)
def issued(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """One CA + server certificate per key type (RSA-4096 generation is the slow part)."""
    plan = make_plan(tmp_path_factory.mktemp(request.param), request.param)
    ensure_certificates(plan)
    return plan


def test_ca_extensions(issued: Plan) -> None:
    ca = load(CertFiles(issued.cert_dir).ca_crt)
    basic = ext(ca, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ext(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert ca.serial_number > 0 and ca.serial_number.bit_length() >= 128
    assert ca.subject == ca.issuer
    assert ca.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "KR"
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=3650) <= lifetime <= dt.timedelta(days=3650, minutes=10)
    with pytest.raises(x509.ExtensionNotFound):
        ext(ca, x509.NameConstraints)
    assert key_type_of(ca.public_key()) == issued.certificate.key_type


def test_server_extensions(issued: Plan) -> None:
    files = CertFiles(issued.cert_dir)
    ca, leaf = load(files.ca_crt), load(files.tls_crt)
    basic = ext(leaf, x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = ext(leaf, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert usage.value.key_encipherment == issued.certificate.key_type.startswith("rsa")
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = ext(leaf, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("198.18.0.2"),
        ipaddress.ip_address("fd00::2"),
    ]
    assert sans.get_values_for_type(x509.DNSName) == [
        "registry.example.internal",
        "*.apps.example.internal",
    ]
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert ext(leaf, x509.SubjectKeyIdentifier).value.digest
    assert leaf.serial_number.bit_length() >= 128
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert dt.timedelta(days=825) <= lifetime <= dt.timedelta(days=825, minutes=10)
    leaf.verify_directly_issued_by(ca)


def test_openssl_verifies_and_shows_sans(issued: Plan) -> None:
    files = CertFiles(issued.cert_dir)
    verify = openssl("verify", "-CAfile", str(files.ca_crt), str(files.tls_crt))
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.strip().endswith("OK")
    for host in ("registry.example.internal", "x.apps.example.internal"):
        named = openssl(
            "verify", "-CAfile", str(files.ca_crt), "-verify_hostname", host, str(files.tls_crt)
        )
        assert named.returncode == 0, named.stderr
    wrong = openssl(
        "verify",
        "-CAfile",
        str(files.ca_crt),
        "-verify_hostname",
        "other.example",
        str(files.tls_crt),
    )
    assert wrong.returncode != 0
    text = openssl("x509", "-in", str(files.tls_crt), "-text", "-noout").stdout
    assert "IP Address:198.18.0.2" in text
    assert "DNS:registry.example.internal" in text
    assert "DNS:*.apps.example.internal" in text
    assert "TLS Web Server Authentication" in text


def test_key_files_are_private_and_match(issued: Plan) -> None:
    files = CertFiles(issued.cert_dir)
    for key_file in (files.ca_key, files.tls_key):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(files.tls_key.read_bytes(), password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(serialization.Encoding.DER, public) == load(
        files.tls_crt
    ).public_key().public_bytes(serialization.Encoding.DER, public)


def test_csr_verifies(issued: Plan) -> None:
    files = CertFiles(issued.cert_dir)
    result = openssl("req", "-in", str(files.tls_csr), "-verify", "-noout")
    assert result.returncode == 0, result.stderr
    csr = x509.load_pem_x509_csr(files.tls_csr.read_bytes())
    assert csr.is_signature_valid
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "registry.example.internal" in names.get_values_for_type(x509.DNSName)


def test_rerun_keeps_everything(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    first = ensure_certificates(plan)
    assert (first.ca_action, first.leaf_action) == ("created", "created")
    files = first.files
    before = {p: p.read_bytes() for p in (files.ca_crt, files.ca_key, files.tls_crt, files.tls_key)}
    second = ensure_certificates(plan)
    assert (second.ca_action, second.leaf_action) == ("reused", "unchanged")
    assert not second.changed
    assert second.ca.fingerprint == first.ca.fingerprint
    assert {p: p.read_bytes() for p in before} == before


def test_renew_changes_leaf_serial_not_ca(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    first = ensure_certificates(plan)
    renewed = ensure_certificates(plan, renew=True)
    assert renewed.leaf_action == "renewed"
    assert renewed.leaf.serial != first.leaf.serial
    assert renewed.ca.fingerprint == first.ca.fingerprint
    # reuse_key (the default) keeps the server key; reuse_key=False replaces it.
    key_before = renewed.files.tls_key.read_bytes()
    ensure_certificates(plan, renew=True)
    assert renewed.files.tls_key.read_bytes() == key_before
    ensure_certificates(plan, renew=True, reuse_key=False)
    assert renewed.files.tls_key.read_bytes() != key_before


def test_new_san_reissues_automatically(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    first = ensure_certificates(plan)
    plan.certificate.subject_alt_names.append("10.1.2.3")
    again = ensure_certificates(plan)
    assert again.leaf_action == "reissued"
    assert any("10.1.2.3" in reason for reason in again.reasons)
    assert "10.1.2.3" in again.leaf.sans
    assert again.ca.fingerprint == first.ca.fingerprint


def test_key_type_change_reissues_with_new_key(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    ensure_certificates(plan)
    plan.certificate.key_type = "ed25519"
    again = ensure_certificates(plan)
    assert again.leaf_action == "reissued" and again.leaf.key_type == "ed25519"


def test_new_ca_only_when_asked(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    first = ensure_certificates(plan)
    replaced = ensure_certificates(plan, new_ca=True)
    assert replaced.ca_action == "replaced"
    assert replaced.ca.fingerprint != first.ca.fingerprint
    assert replaced.leaf_action == "reissued"
    assert any("onboarded again" in note for note in replaced.notes)
    kept = sorted(p.name for p in replaced.files.directory.glob("ca.*.old-*"))
    assert len(kept) == 2 and kept[0].startswith("ca.crt") and kept[1].startswith("ca.key")
    result = openssl("verify", "-CAfile", str(replaced.files.ca_crt), str(replaced.files.tls_crt))
    assert result.returncode == 0, result.stderr


def test_two_ca_rotations_in_one_second_keep_both_old_cas(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    first = ensure_certificates(plan).files.ca_crt.read_bytes()
    second = ensure_certificates(plan, new_ca=True).files.ca_crt.read_bytes()
    directory = ensure_certificates(plan, new_ca=True).files.directory
    # Rotations within the same second get a "-2" suffix instead of overwriting the first.
    kept = sorted(p.read_bytes() for p in directory.glob("ca.crt.old-*"))
    assert kept == sorted([first, second])


def test_a_failed_ca_rotation_puts_the_current_ca_back(tmp_path: Path) -> None:
    """The last rename of a rotation fails (tls.csr is a folder): the old CA is restored."""
    plan = make_plan(tmp_path)
    files = ensure_certificates(plan).files
    before = {path: path.read_bytes() for path in (files.ca_crt, files.ca_key)}
    files.tls_csr.unlink()
    files.tls_csr.mkdir()
    (files.tls_csr / "in-the-way").write_text("x")
    with pytest.raises(CertError, match="tls.csr") as caught:
        ensure_certificates(plan, new_ca=True)
    assert "Is a directory" in caught.value.message and caught.value.hint
    assert {path: path.read_bytes() for path in before} == before
    assert list(files.directory.glob("*.old-*")) == []
    assert list(files.directory.glob(".*.tmp")) == []


def test_ca_key_without_cert_is_not_silently_replaced(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    files = ensure_certificates(plan).files
    files.ca_crt.unlink()
    key_before = files.ca_key.read_bytes()
    with pytest.raises(CertError, match="ca.crt is missing") as caught:
        ensure_certificates(plan)
    assert "--new-ca" in (caught.value.hint or "")
    assert files.ca_key.read_bytes() == key_before


def test_mismatched_ca_pair_is_refused(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    files = ensure_certificates(plan).files
    other = make_plan(tmp_path / "other")
    other_files = ensure_certificates(other).files
    files.ca_key.write_bytes(other_files.ca_key.read_bytes())
    with pytest.raises(CertError, match="does not belong"):
        ensure_certificates(plan)


def test_encrypted_ca_key(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    created = ensure_certificates(plan, ca_passphrase="correct horse")
    assert b"ENCRYPTED" in created.files.ca_key.read_bytes()
    with pytest.raises(CertError, match="encrypted") as caught:
        ensure_certificates(plan, renew=True)
    assert "REGWIZ_CA_KEY_PASSPHRASE" in (caught.value.hint or "")
    with pytest.raises(CertError) as wrong:
        ensure_certificates(plan, renew=True, ca_passphrase="wrong")
    assert "wrong" not in str(wrong.value)
    assert ensure_certificates(plan, renew=True, ca_passphrase="correct horse").leaf_action == (
        "renewed"
    )


def test_name_constraints(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, name_constraints=True)
    summary = ensure_certificates(plan)
    constraints = ext(load(summary.files.ca_crt), x509.NameConstraints)
    assert constraints.critical
    permitted = constraints.value.permitted_subtrees
    assert x509.DNSName("registry.example.internal") in permitted
    assert x509.DNSName("apps.example.internal") in permitted
    assert x509.IPAddress(ipaddress.ip_network("198.18.0.2/32")) in permitted
    assert x509.IPAddress(ipaddress.ip_network("fd00::2/128")) in permitted
    result = openssl("verify", "-CAfile", str(summary.files.ca_crt), str(summary.files.tls_crt))
    assert result.returncode == 0, result.stderr
    assert summary.notes == []
    plan.certificate.name_constraints = False
    assert "only applies to a new CA" in ensure_certificates(plan).notes[0]
    plan.certificate.subject_alt_names.append("10.9.9.9")
    with pytest.raises(CertError, match="name constraints") as caught:
        ensure_certificates(plan)
    assert "--new-ca" in (caught.value.hint or "")


def test_validity_capped_by_ca(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, ca_validity_days=30, cert_validity_days=30)
    summary = ensure_certificates(plan)
    # The plan now allows longer, but the existing CA ends sooner: the leaf stops with it.
    plan.certificate.ca_validity_days, plan.certificate.cert_validity_days = 3650, 825
    renewed = ensure_certificates(plan, renew=True)
    assert renewed.leaf.not_after <= summary.ca.not_after
    assert any("expires in" in w for w in renewed.warnings)


def test_relative_directory_resolves_against_plan(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, directory="pki/registry")
    summary = ensure_certificates(plan)
    assert summary.files.directory == tmp_path / "pki" / "registry"
    assert stat.S_IMODE(summary.files.directory.stat().st_mode) & 0o077 == 0


def test_inspect_and_fingerprint(tmp_path: Path) -> None:
    summary = ensure_certificates(make_plan(tmp_path))
    leaf = load(summary.files.tls_crt)
    info = inspect_certificate(summary.files.tls_crt)
    assert info.fingerprint == fingerprint(leaf)
    assert len(info.fingerprint.split(":")) == 32 and info.fingerprint.isupper() is True
    assert info.sans == [
        "198.18.0.2",
        "registry.example.internal",
        "fd00::2",
        "*.apps.example.internal",
    ]
    assert not info.is_ca and info.days_left in (823, 824, 825)
    assert inspect_certificate(summary.files.ca_crt.read_text()).is_ca
    der = leaf.public_bytes(serialization.Encoding.DER)
    assert inspect_certificate(der).serial == f"{leaf.serial_number:x}"
    assert (
        "sha256"
        in openssl(
            "x509", "-in", str(summary.files.tls_crt), "-noout", "-fingerprint", "-sha256"
        ).stdout.lower()
    )
    shown = openssl("x509", "-in", str(summary.files.tls_crt), "-noout", "-fingerprint", "-sha256")
    assert shown.stdout.strip().split("=", 1)[1] == info.fingerprint


def test_inspect_rejects_non_certificates(tmp_path: Path) -> None:
    summary = ensure_certificates(make_plan(tmp_path))
    with pytest.raises(CertError, match="not hold a valid") as caught:
        inspect_certificate(summary.files.tls_key)
    assert "private key" in (caught.value.hint or "")
    key_text = summary.files.tls_key.read_text()
    assert key_text.splitlines()[1] not in str(caught.value)
    with pytest.raises(CertError, match="not found"):
        inspect_certificate(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\x00\xff junk")
    with pytest.raises(CertError):
        inspect_certificate(garbage)
    with pytest.raises(CertError, match="folder"):
        inspect_certificate(tmp_path)


# --------------------------------------------------------------------------- import


class ExternalPKI:
    """A root CA and an intermediate, as another organisation's PKI would issue."""

    def __init__(self, name: str = "Corp") -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._cert(f"{name} Root", self.root_key, self.root_key, None, ca=True)
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = self._cert(
            f"{name} Issuing", self.inter_key, self.root_key, self.root, ca=True
        )

    def _cert(
        self,
        cn: str,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        issuer: x509.Certificate | None,
        *,
        ca: bool,
        sans: list[str] | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        days: tuple[int, int] = (-1, 90),
    ) -> x509.Certificate:
        now = dt.datetime.now(dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days[0]))
            .not_valid_after(now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            names: list[x509.GeneralName] = [
                x509.IPAddress(ipaddress.ip_address(s)) if s[0].isdigit() else x509.DNSName(s)
                for s in sans
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def leaf(
        self,
        sans: list[str] | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        days: tuple[int, int] = (-1, 90),
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._cert(
            "registry.example.internal",
            key,
            self.inter_key,
            self.inter,
            ca=False,
            sans=sans if sans is not None else ["198.18.0.2", "registry.example.internal"],
            eku=eku if eku is not None else [ExtendedKeyUsageOID.SERVER_AUTH],
            days=days,
        )
        return cert, key


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_import(
    tmp_path: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *chain: x509.Certificate,
) -> tuple[Path, Path, Path]:
    cert_file, key_file, chain_file = (tmp_path / n for n in ("in.crt", "in.key", "chain.pem"))
    cert_file.write_bytes(pem(cert))
    key_file.write_bytes(key_pem(key))
    chain_file.write_bytes(pem(*chain))
    return cert_file, key_file, chain_file


def test_import_valid_chain(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, subject_alt_names=["198.18.0.2"])
    own = ensure_certificates(plan)
    pki = ExternalPKI()
    leaf, key = pki.leaf()
    cert_file, key_file, chain_file = write_import(tmp_path, leaf, key, pki.inter, pki.root)
    report = import_certificate(plan, cert_file, key_file, chain_file)
    files = report.files
    assert report.leaf_action == "imported" and report.ca_action == "imported"
    assert report.ca.fingerprint == fingerprint(pki.root) != own.ca.fingerprint
    assert any("onboarded again" in note for note in report.notes)
    assert files.tls_crt.read_bytes() == pem(leaf, pki.inter)  # leaf then intermediates
    assert files.ca_crt.read_bytes() == pem(pki.root)
    assert not files.ca_key.exists()
    assert stat.S_IMODE(files.tls_key.stat().st_mode) == 0o600
    verify = openssl(
        "verify", "-CAfile", str(files.ca_crt), "-untrusted", str(files.tls_crt), str(files.tls_crt)
    )
    assert verify.returncode == 0, verify.stderr
    # A later run checks the imported files and keeps them; renewing is not possible here.
    again = ensure_certificates(plan)
    assert (again.ca_action, again.leaf_action) == ("imported", "unchanged")
    with pytest.raises(CertError, match="imported"):
        ensure_certificates(plan, renew=True)


def test_import_chain_in_cert_file_and_warnings(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)  # SANs the imported certificate lacks -> warnings, not errors
    pki = ExternalPKI()
    leaf, key = pki.leaf(days=(-1, 10))
    cert_file, key_file, _ = write_import(tmp_path, leaf, key)
    cert_file.write_bytes(pem(leaf, pki.inter, pki.root))
    report = import_certificate(plan, cert_file, key_file)
    assert any("fd00::2" in w for w in report.warnings)
    assert any("expires in" in w for w in report.warnings)


def test_import_rejects_mismatched_key(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    pki = ExternalPKI()
    leaf, _ = pki.leaf()
    _, other_key = pki.leaf()
    files = write_import(tmp_path, leaf, other_key, pki.inter, pki.root)
    with pytest.raises(CertError, match="private key does not belong"):
        import_certificate(plan, *files)
    assert not CertFiles(plan.cert_dir).tls_crt.exists()


def test_import_rejects_wrong_ca(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    pki, other = ExternalPKI("Corp"), ExternalPKI("Other")
    leaf, key = pki.leaf()
    files = write_import(tmp_path, leaf, key, other.inter, other.root)
    with pytest.raises(CertError, match="does not verify") as caught:
        import_certificate(plan, *files)
    assert "--import-chain" in (caught.value.hint or "")


def test_import_without_any_root_says_what_to_pass(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    pki = ExternalPKI()
    leaf, key = pki.leaf()
    cert_file, key_file, _ = write_import(tmp_path, leaf, key)
    with pytest.raises(CertError, match="no root CA") as caught:
        import_certificate(plan, cert_file, key_file)
    assert "--import-chain" in (caught.value.hint or "")


def test_import_rejects_missing_san(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    pki = ExternalPKI()
    leaf, key = pki.leaf(sans=["other.example.internal"])
    files = write_import(tmp_path, leaf, key, pki.inter, pki.root)
    with pytest.raises(CertError, match="do not cover registry.address 198.18.0.2"):
        import_certificate(plan, *files)


def test_import_rejects_expired(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    pki = ExternalPKI()
    leaf, key = pki.leaf(days=(-100, -1))
    files = write_import(tmp_path, leaf, key, pki.inter, pki.root)
    with pytest.raises(CertError, match="expired on"):
        import_certificate(plan, *files)


def test_import_rejects_client_only_eku(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    pki = ExternalPKI()
    leaf, key = pki.leaf(eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    files = write_import(tmp_path, leaf, key, pki.inter, pki.root)
    with pytest.raises(CertError, match="serverAuth"):
        import_certificate(plan, *files)


def test_csr_export_then_import_keeps_key(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    csr_path = export_csr(plan)
    files = CertFiles(plan.cert_dir)
    assert stat.S_IMODE(files.tls_key.stat().st_mode) == 0o600
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    assert openssl("req", "-in", str(csr_path), "-verify", "-noout").returncode == 0
    # Another CA signs the CSR's public key; the import takes the key regwiz made.
    pki = ExternalPKI()
    now = dt.datetime.now(dt.timezone.utc)
    signed = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(pki.inter.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
            critical=False,
        )
        .sign(pki.inter_key, hashes.SHA256())
    )
    signed_file, chain_file = tmp_path / "signed.crt", tmp_path / "chain.pem"
    signed_file.write_bytes(pem(signed))
    chain_file.write_bytes(pem(pki.inter, pki.root))
    key_before = files.tls_key.read_bytes()
    report = import_certificate(plan, signed_file, files.tls_key, chain_file)
    assert report.leaf.fingerprint == fingerprint(signed)
    assert files.tls_key.read_bytes() == key_before
    assert export_csr(plan) == csr_path  # a second export reuses the same key
    assert files.tls_key.read_bytes() == key_before


def test_unreadable_server_files(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    files = ensure_certificates(plan).files
    files.tls_crt.write_text("not a certificate")
    again = ensure_certificates(plan)
    assert again.leaf_action == "reissued"
    assert again.reasons == ["tls.crt could not be read as a certificate"]
    encrypted = serialization.load_pem_private_key(files.tls_key.read_bytes(), None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    )
    files.tls_key.write_bytes(encrypted)
    with pytest.raises(CertError, match="encrypted") as caught:
        ensure_certificates(plan)
    assert "unencrypted" in (caught.value.hint or "")


def test_loosened_key_permissions_are_tightened(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    files = ensure_certificates(plan).files
    files.tls_key.chmod(0o644)
    files.ca_key.chmod(0o640)
    ensure_certificates(plan)
    assert stat.S_IMODE(files.tls_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- served for real


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_real_registry_serves_and_go_client_trusts(tmp_path: Path, key_type: str) -> None:
    """Distribution (Go TLS server) serves our files; skopeo (Go TLS client) trusts only ca.crt."""
    from tests.deploy_helpers import Pki, local_registry, push_tiny_image

    plan = make_plan(tmp_path, key_type, subject_alt_names=["127.0.0.1"], name_constraints=True)
    plan.registry.address = "127.0.0.1"
    files = ensure_certificates(plan).files
    pki = Pki(*(p.read_bytes() for p in (files.ca_crt, files.ca_key, files.tls_crt, files.tls_key)))
    trust = tmp_path / "trust"  # ca.crt alone: a leaf in --cert-dir would itself be trusted
    trust.mkdir()
    (trust / "ca.crt").write_bytes(files.ca_crt.read_bytes())
    with local_registry(tmp_path / "run", pki) as registry:
        push_tiny_image(registry.base, registry.ca_path, "selftest/tiny", "v1")
        image = f"docker://{registry.base.removeprefix('https://')}/selftest/tiny:v1"
        trusted = subprocess.run(
            ["skopeo", "inspect", "--raw", "--cert-dir", str(trust), image],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert trusted.returncode == 0, trusted.stderr
        assert "schemaVersion" in trusted.stdout
        untrusted = subprocess.run(
            ["skopeo", "inspect", "--raw", image],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert untrusted.returncode != 0 and "x509" in untrusted.stderr


def test_unwritable_folder_is_a_cert_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the certificate folder should be")
    plan = make_plan(tmp_path, directory="blocker/certs")
    with pytest.raises(CertError, match="certificate folder|file system error"):
        ensure_certificates(plan)
    with pytest.raises(CertError):
        export_csr(plan)


def test_invalid_in_memory_plan_is_refused(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, common_name="bad\nname")
    with pytest.raises(CertError, match="the plan has problems: certificate.common_name"):
        ensure_certificates(plan)
    with pytest.raises(CertError, match="the plan has problems"):
        export_csr(plan)
    assert not (tmp_path / "certs").exists()


def test_unneeded_passphrase_is_ignored(tmp_path: Path) -> None:
    plan = make_plan(tmp_path)
    ensure_certificates(plan)
    again = ensure_certificates(plan, renew=True, ca_passphrase="not needed")
    assert again.leaf_action == "renewed"
    assert b"ENCRYPTED" not in again.files.ca_key.read_bytes()


def test_unusable_certificate_paths(tmp_path: Path) -> None:
    with pytest.raises(CertError, match="not a usable file name"):
        inspect_certificate("bad\x00name.pem")
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 << 20))
    with pytest.raises(CertError, match="larger than 1 MiB"):
        inspect_certificate(huge)
