"""The CA of a registry regwiz did not deploy (``registry.managed = false``), taken from what the
server presents and kept only after the operator compared its fingerprint, like a host key.

A TLS server sends its own certificate and usually its intermediates, but often not its root: a
chain ending in a certificate that is not self-signed cannot give the root, and the operator is
told to ask the registry's administrator for the CA file instead. The chain is read without
verifying it (that is the point: nothing trusts it yet), so nothing here is trusted until saved.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.certs import describe, fingerprint, issued_by
from app.errors import RegwizError
from app.validate import is_ip_address

if TYPE_CHECKING:
    from app.plan import Plan

FETCH_TIMEOUT = 10.0


class CaFetchError(RegwizError):
    """The server could not be reached, or its chain cannot give a CA to trust."""


@dataclass(frozen=True)
class PresentedCertificate:
    subject: str
    issuer: str
    fingerprint: str
    is_ca: bool
    self_signed: bool
    not_after: str


@dataclass
class PresentedChain:
    """What the server sent, leaf first; ``root`` is the self-signed CA at its end, if sent."""

    where: str
    certificates: list[PresentedCertificate] = field(default_factory=list)
    root_pem: bytes | None = None
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        shown = [f"{self.where} presents {len(self.certificates)} certificate(s):"]
        for index, cert in enumerate(self.certificates):
            role = "root CA" if cert.self_signed else ("CA" if cert.is_ca else "server")
            shown += [f"  [{index}] {role}: {cert.subject}",
                      f"      issuer: {cert.issuer}",
                      f"      valid until: {cert.not_after}",
                      f"      SHA-256: {cert.fingerprint}"]
        shown += [f"  problem: {problem}" for problem in self.problems]
        return shown


def fetch_chain(address: str, port: int, timeout: float = FETCH_TIMEOUT) -> PresentedChain:
    """Connect to ADDRESS:PORT and read the certificates the server presents (not verified)."""
    where = f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"
    ders = _presented_ders(address, port, timeout, where)
    certs = [x509.load_der_x509_certificate(der) for der in ders]
    return judge_chain(where, certs)


def judge_chain(where: str, certs: list[x509.Certificate]) -> PresentedChain:
    """Describe the chain and pick its root: only a self-signed CA that signs the one below."""
    chain = PresentedChain(where)
    for cert in certs:
        info = describe(cert)
        chain.certificates.append(PresentedCertificate(
            info.subject, info.issuer, fingerprint(cert), info.is_ca, _self_signed(cert),
            info.not_after.strftime("%Y-%m-%d")))
    for lower, upper in zip(certs, certs[1:], strict=False):
        if not issued_by(lower, upper):
            chain.problems.append(
                f"{describe(lower).subject} is not signed by the next certificate "
                f"{describe(upper).subject}: the server's chain is out of order or mixed up")
    top = certs[-1] if certs else None
    if top is None:
        chain.problems.append("the server presented no certificate")
    elif not _self_signed(top) or not describe(top).is_ca:
        chain.problems.append(
            "the server does not send its root CA (the last certificate is issued by "
            f"{describe(top).issuer}): ask the registry's administrator for the CA file and set "
            "registry.ca_file to it")
    elif not chain.problems:
        chain.root_pem = top.public_bytes(serialization.Encoding.PEM)
    return chain


def save_root(plan: Plan, chain: PresentedChain) -> Path:
    """Write the chain's root to the plan's CA path (``registry.ca_file`` or certs/ca.crt)."""
    from app.plan import atomic_write

    if chain.root_pem is None:
        raise CaFetchError(f"{chain.where} gave no root CA to save",
                           "; ".join(chain.problems) or None)
    path = plan.trusted_ca_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, chain.root_pem, 0o644)
    except OSError as error:
        raise CaFetchError(f"cannot write {path}: {error.strerror}",
                           "check the folder's permissions, or set registry.ca_file") from None
    return path


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and issued_by(cert, cert)


def _presented_ders(address: str, port: int, timeout: float, where: str) -> list[bytes]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # reading what is presented, before anything is trusted
    server_name = None if is_ip_address(address) else address
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=server_name) as tls:
            return _chain_ders(tls)
    except (OSError, ssl.SSLError) as error:
        raise CaFetchError(f"cannot read the certificates of {where}: {error}",
                           "check registry.address and registry.port, and that it speaks "
                           "TLS") from None


def _chain_ders(tls: ssl.SSLSocket) -> list[bytes]:
    """Every certificate the server sent; Python 3.13 has a public call, 3.10-3.12 only the
    low-level one; without either only the server's own certificate is known."""
    reader = getattr(tls, "get_unverified_chain", None) or getattr(
        getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if reader is not None:
        chain = reader() or []
        return [_der(cert) for cert in chain]
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _der(cert: object) -> bytes:
    if isinstance(cert, bytes):
        return cert
    return bytes(cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
