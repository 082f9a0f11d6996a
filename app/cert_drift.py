"""Does a server certificate still say what the plan asks for? (SANs, subject, key type)

A plan edited after its certificate was issued (a SAN added, the organisation renamed, another
key type) must never ship the old certificate as if it were current: deploy refuses it, status
reports it, and ``ensure_certificates`` reissues it. Each difference is one line naming what the
plan says and what the certificate says.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from app import validate
from app.plan import CertificateSettings, Plan

# Subject attributes the plan sets, with the names the plan file and openssl use for them.
SUBJECT_FIELDS: tuple[tuple[x509.ObjectIdentifier, str, str], ...] = (
    (NameOID.COUNTRY_NAME, "C", "country"),
    (NameOID.STATE_OR_PROVINCE_NAME, "ST", "state"),
    (NameOID.LOCALITY_NAME, "L", "locality"),
    (NameOID.ORGANIZATION_NAME, "O", "organization"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU", "organizational_unit"),
    (NameOID.COMMON_NAME, "CN", "common_name"),
    (NameOID.EMAIL_ADDRESS, "emailAddress", "email"),
)


def key_type_of(key: object) -> str:
    """The plan's key_type name for a public or private key ("ecdsa-p256", "rsa-2048", ...)."""
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return f"rsa-{key.key_size}"
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(
            key.curve.name, f"ecdsa-{key.curve.name}"
        )
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return "ed25519"
    return type(key).__name__


@dataclass(frozen=True)
class TypedSan:
    """A SAN with its type, so a DNS name spelled like an IP never counts as that IP."""

    kind: str  # "dns" or "ip"
    value: str  # lower-case DNS name, or the canonical IP text

    def __str__(self) -> str:
        return self.value


def planned_san(name: str) -> TypedSan:
    if validate.is_ip_address(name):
        return TypedSan("ip", str(ipaddress.ip_address(name)))
    return TypedSan("dns", name.lower())


def cert_sans(cert: x509.Certificate) -> list[str]:
    """DNS names and IP addresses from the SAN extension, in certificate order."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    for general_name in extension.value:
        if isinstance(general_name, x509.DNSName):
            names.append(general_name.value)
        elif isinstance(general_name, x509.IPAddress):
            names.append(str(general_name.value))
    return names


def certificate_sans(cert: x509.Certificate) -> list[TypedSan]:
    return [planned_san(name) for name in cert_sans(cert)]


def missing_sans(plan: Plan, cert: x509.Certificate) -> list[TypedSan]:
    """The plan's SANs that the certificate does not carry."""
    present = certificate_sans(cert)
    return [san for san in map(planned_san, plan.all_sans()) if san not in present]


def extra_sans(plan: Plan, cert: x509.Certificate) -> list[TypedSan]:
    """SANs the certificate carries that the plan no longer lists."""
    wanted = [planned_san(name) for name in plan.all_sans()]
    return [san for san in certificate_sans(cert) if san not in wanted]


def san_differences(plan: Plan, cert: x509.Certificate, *, extra_too: bool = True) -> list[str]:
    """Planned SANs the certificate lacks, and (``extra_too``) SANs the plan no longer has."""
    lines = [f"SAN {san} is in the plan but not in the certificate"
             for san in missing_sans(plan, cert)]
    if extra_too:
        lines += [f"SAN {san} is in the certificate but no longer in the plan"
                  for san in extra_sans(plan, cert)]
    return lines


def subject_differences(settings: CertificateSettings, cert: x509.Certificate) -> list[str]:
    lines: list[str] = []
    for oid, short, key in SUBJECT_FIELDS:
        planned = str(getattr(settings, key) or "")
        found = ", ".join(str(a.value) for a in cert.subject.get_attributes_for_oid(oid))
        if planned != found:
            lines.append(f"subject {short} (certificate.{key}): the plan says "
                         f"{planned or '(empty)'!r}, the certificate {found or '(empty)'!r}")
    return lines


def key_type_difference(settings: CertificateSettings, cert: x509.Certificate) -> list[str]:
    found = key_type_of(cert.public_key())
    if found == settings.key_type:
        return []
    return [f"key type: the plan says {settings.key_type}, the certificate has {found}"]


def plan_differences(plan: Plan, cert: x509.Certificate, *, issued_here: bool) -> list[str]:
    """Every way ``cert`` differs from what the plan would issue today ([] when it matches).

    A certificate from another CA (``issued_here`` False) was made to that CA's rules: only the
    plan's SANs it fails to cover count, since subject and key type are not ours to decide.
    """
    if not issued_here:
        return san_differences(plan, cert, extra_too=False)
    return [
        *san_differences(plan, cert),
        *subject_differences(plan.certificate, cert),
        *key_type_difference(plan.certificate, cert),
    ]

