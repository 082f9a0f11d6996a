"""The registry's certificates: a private CA and a server certificate, or an imported one.

Files in the plan's certificate directory (``CertFiles``):

- ``ca.crt``  the CA certificate every node trusts (the root; for an import, the chain's root)
- ``ca.key``  the CA's private key (0600, optionally passphrase-encrypted); absent after an import
- ``tls.crt`` the server certificate followed by any intermediates. With regwiz's own CA it holds
  the leaf alone: the CA is a trust anchor installed on every node, so sending it is pointless.
- ``tls.key`` the server's private key (0600, never encrypted: the registry must read it)
- ``tls.csr`` a certificate signing request for ``tls.key``, for signing by another CA

While a CA rotation runs (``app.ca_rotation``) the directory also holds ``ca-next.crt`` and
``ca-next.key`` (the new CA, encrypted like ca.key) and ``ca-bundle.crt`` (both CAs: what nodes
trust meanwhile); finishing makes the new pair ca.crt/ca.key and keeps the old as ``*.old-<time>``.

Every file is written atomically with its mode set before content lands. The files of one change
(a new CA and its server certificate, an import) are all written to temp files first and only
then renamed into place, so a full disk or a failed write leaves the previous files as they were.
An existing CA is always reused; a new one only with ``new_ca=True`` (the old files are kept as
``*.old-<time>``), because every node must then be onboarded again. Private key material never
appears in messages or reprs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import ipaddress
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app import validate
from app.cert_drift import (
    cert_sans,
    extra_sans,
    key_type_of,
    plan_differences,
    subject_differences,
)
from app.errors import RegwizError
from app.paths import expand_user
from app.plan import (
    CA_BUNDLE_NAME,
    CertificateSettings,
    Plan,
    atomic_write,
    fsync_directory,
    require_managed,
    sans_cover,
    validate_plan,
    write_temp_beside,
)

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

#: A certificate with fewer days left than this gets a warning.
EXPIRY_WARNING_DAYS = 30
# Backdate notBefore a little so nodes with a slightly slow clock accept a fresh certificate.
CLOCK_SKEW = dt.timedelta(minutes=5)
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


class CertError(RegwizError):
    """A certificate could not be created, loaded, verified or imported."""


_F = TypeVar("_F", bound=Callable[..., Any])


def _file_errors_reported(function: _F) -> _F:
    """Public entry points report any file-system failure as a CertError, never a traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            raise CertError(
                f"file system error{where}: {os_reason(error)}",
                "check the certificate folder's permissions and free space",
            ) from None

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class CertFiles:
    """The files in a certificate directory (and a CA rotation's, while one runs)."""

    directory: Path

    def __init__(self, directory: Path | str) -> None:
        object.__setattr__(self, "directory", Path(directory))

    @property
    def ca_crt(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def tls_crt(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def tls_key(self) -> Path:
        return self.directory / "tls.key"

    @property
    def tls_csr(self) -> Path:
        return self.directory / "tls.csr"

    @property
    def ca_next_crt(self) -> Path:
        return self.directory / "ca-next.crt"

    @property
    def ca_next_key(self) -> Path:
        return self.directory / "ca-next.key"

    @property
    def ca_bundle(self) -> Path:
        return self.directory / CA_BUNDLE_NAME

    @property
    def trusted(self) -> Path:
        """What clients of this registry trust: ca.crt, or both CAs while a rotation runs."""
        return self.ca_bundle if self.ca_bundle.is_file() else self.ca_crt


# --------------------------------------------------------------------------- inspection


@dataclass
class CertInfo:
    """What a certificate says, for summaries and screens (no key material)."""

    subject: str
    issuer: str
    sans: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    days_left: int
    fingerprint: str
    serial: str
    is_ca: bool
    key_type: str

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    def lines(self) -> list[str]:
        return [
            f"subject:     {self.subject}",
            f"issuer:      {self.issuer}",
            f"SANs:        {', '.join(self.sans) or '(none)'}",
            f"valid:       {_day(self.not_before)} to {_day(self.not_after)} "
            f"({self.days_left} days left)",
            f"key:         {self.key_type}{'  (CA)' if self.is_ca else ''}",
            f"serial:      {self.serial}",
            f"SHA-256:     {self.fingerprint}",
        ]


def _day(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as upper-case hex pairs joined by colons ("AB:CD:...")."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# RFC 4514 names only CN, C, O... by default; the e-mail would show as its bare OID.
SUBJECT_ATTRIBUTE_NAMES = {NameOID.EMAIL_ADDRESS: "emailAddress"}


def describe(cert: x509.Certificate) -> CertInfo:
    not_after = cert.not_valid_after_utc
    return CertInfo(
        subject=cert.subject.rfc4514_string(SUBJECT_ATTRIBUTE_NAMES),
        issuer=cert.issuer.rfc4514_string(SUBJECT_ATTRIBUTE_NAMES),
        sans=cert_sans(cert),
        not_before=cert.not_valid_before_utc,
        not_after=not_after,
        days_left=(not_after - _now()).days,
        fingerprint=fingerprint(cert),
        serial=f"{cert.serial_number:x}",
        is_ca=_is_ca(cert),
        key_type=key_type_of(cert.public_key()),
    )


@_file_errors_reported
def inspect_certificate(path_or_pem: str | bytes | Path) -> CertInfo:
    """Summary of the first certificate in a PEM/DER file, PEM text, or PEM/DER bytes."""
    if isinstance(path_or_pem, (bytes, bytearray)):
        data, label = bytes(path_or_pem), "the given data"
    elif isinstance(path_or_pem, str) and "-----BEGIN" in path_or_pem:
        data, label = path_or_pem.encode("ascii", "replace"), "the given text"
    else:
        path = expand_user(path_or_pem)
        data, label = _read(path, "certificate"), str(path)
    return describe(_parse_certificates(data, label)[0])


# --------------------------------------------------------------------------- reading


MAX_FILE_BYTES = 1 << 20  # certificates, chains and keys are a few KiB


def _read(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except ValueError:  # e.g. a NUL byte in the path
        raise CertError(f"not a usable file name: {validate._shown(str(path))}") from None
    except FileNotFoundError:
        raise CertError(f"{what} file not found: {path}", "check the path") from None
    except IsADirectoryError:
        raise CertError(f"{path} is a folder, not a {what} file") from None
    except OSError as error:
        raise CertError(f"cannot read {what} file {path}: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise CertError(f"{path} is larger than 1 MiB: not a {what} file")
    return data


def _parse_certificates(data: bytes, label: str) -> list[x509.Certificate]:
    """All certificates in PEM data (in order), or the one DER certificate."""
    try:
        if b"-----BEGIN" in data:
            if b"-----BEGIN CERTIFICATE-----" not in data:
                raise ValueError("no certificate block")
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except (ValueError, TypeError, UnsupportedAlgorithm):
        hint = None
        if b"PRIVATE KEY-----" in data:
            hint = "this looks like a private key: give the certificate file instead"
        raise CertError(f"{label} does not hold a valid PEM or DER certificate", hint) from None


_CA_KEY_ENCRYPTED_HINT = "set REGWIZ_CA_KEY_PASSPHRASE (or enter it when asked)"
_SERVER_KEY_ENCRYPTED_HINT = (
    "the registry needs an unencrypted key: openssl pkey -in KEY -out plain.key (keep it 0600)"
)


def _parse_private_key(
    data: bytes,
    label: str,
    passphrase: str | None = None,
    encrypted_hint: str = _SERVER_KEY_ENCRYPTED_HINT,
) -> PrivateKey:
    password = passphrase.encode("utf-8") if passphrase else None
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password is None:
            raise CertError(f"{label} is encrypted with a passphrase", encrypted_hint) from None
        # A passphrase that is not needed (e.g. set for all runs) is simply not used.
        return _parse_private_key(data, label, None, encrypted_hint)
    except (ValueError, UnsupportedAlgorithm):
        hint = "check the passphrase" if password else "expected a PEM private key"
        raise CertError(f"cannot load the private key in {label}", hint) from None
    if not isinstance(
        key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise CertError(f"{label}: unsupported key type {key_type_of(key)}")
    return key


def _public_bytes(key: object) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    return _public_bytes(key) == _public_bytes(cert.public_key())


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def certificate_problems(cert_pem: bytes, key_pem: bytes, ca_pem: bytes, address: str,
                         now: dt.datetime | None = None) -> list[str]:
    """Why this tls.crt/tls.key cannot serve ``address`` for clients trusting ca.crt (empty
    when it can): the same checks ``ensure_certificates`` makes before reissuing. ``ca_pem``
    may be a bundle (a CA rotation's old and new CA): any of them may have signed tls.crt."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as error:
        return [f"tls.crt or ca.crt is not a PEM certificate ({error})"]
    problems = []
    if cert.not_valid_after_utc <= (now or _now()):
        problems.append(f"tls.crt expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if address_problem := _address_problem(cert, address):
        problems.append(address_problem)
    if not any(issued_by(cert, ca) for ca in cas):
        problems.append("tls.crt is not signed by ca.crt")
    try:
        key = _parse_private_key(key_pem, "tls.key")
    except CertError:
        key = None
    if key is None or not _key_matches(key, cert):
        problems.append("tls.key does not belong to tls.crt")
    return problems


def _address_problem(cert: x509.Certificate, address: str) -> str | None:
    try:
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return "tls.crt has no subjectAltName: Docker and containerd will reject it"
    sans = cert_sans(cert)
    if sans_cover(sans, address):
        return None
    if validate.is_ip_address(address):
        return f"tls.crt has no IP SAN {address}"
    names = [san.lower() for san in sans if not validate.is_ip_address(san)]
    return f"tls.crt does not cover {address} (DNS names: {', '.join(names) or 'none'})"


# --------------------------------------------------------------------------- creation


def generate_key(key_type: str) -> PrivateKey:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type.startswith("ecdsa-"):
        curves: dict[str, ec.EllipticCurve] = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}
        if key_type[6:] in curves:
            return ec.generate_private_key(curves[key_type[6:]])
    if key_type.startswith("rsa-") and key_type[4:] in ("2048", "3072", "4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise CertError(f"unknown key type {key_type!r}", f"use one of {', '.join(validate.KEY_TYPES)}")


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None  # Ed25519 signs without a separate digest
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _serial() -> int:
    # 159 random bits with the top bit set: always >= 128 bits, positive, fits 20 DER bytes.
    return secrets.randbits(159) | (1 << 158)


def subject_name(settings: CertificateSettings, common_name: str | None = None) -> x509.Name:
    """The subject built from the plan's fields; empty fields are left out."""
    parts = [
        (NameOID.COUNTRY_NAME, settings.country),
        (NameOID.STATE_OR_PROVINCE_NAME, settings.state),
        (NameOID.LOCALITY_NAME, settings.locality),
        (NameOID.ORGANIZATION_NAME, settings.organization),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, settings.organizational_unit),
        (NameOID.COMMON_NAME, common_name or settings.common_name),
        (NameOID.EMAIL_ADDRESS, settings.email),
    ]
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts if value])


def _ca_common_name(common_name: str) -> str:
    # Must differ from the server's subject, or tools take the leaf for a self-signed root.
    return f"{common_name[: validate.MAX_CN_LENGTH - 3]} CA"


def _general_names(sans: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        if validate.is_ip_address(san):
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        else:
            names.append(x509.DNSName(san))
    return names


def _name_constraints(sans: Sequence[str]) -> x509.NameConstraints:
    """Permit exactly the registry's names: DNS names (and their subdomains) and single IPs."""
    permitted: list[x509.GeneralName] = []
    for san in sans:
        if validate.is_ip_address(san):
            address = ipaddress.ip_address(san)
            permitted.append(
                x509.IPAddress(ipaddress.ip_network(f"{address}/{address.max_prefixlen}"))
            )
        else:
            domain = san[2:] if san.startswith("*.") else san
            if x509.DNSName(domain) not in permitted:
                permitted.append(x509.DNSName(domain))
    excluded: list[x509.GeneralName] | None = None
    if not any(validate.is_ip_address(san) for san in sans):
        # No IP SANs: forbid every IP, since an absent IP constraint would allow any.
        excluded = [
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ]
    return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded)


def create_ca(plan: Plan) -> tuple[x509.Certificate, PrivateKey]:
    """A new self-signed CA: pathlen 0, keyCertSign+cRLSign, SKI, optional name constraints."""
    settings = plan.certificate
    key = generate_key(settings.key_type)
    name = subject_name(settings, _ca_common_name(settings.common_name))
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=settings.ca_validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if settings.name_constraints:
        builder = builder.add_extension(_name_constraints(plan.all_sans()), critical=True)
    return builder.sign(key, _hash_for(key)), key


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _server_key_usage(key: PrivateKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        # RSA key exchange (TLS 1.2 without ECDHE) encrypts with the server key.
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue_server_certificate(
    plan: Plan, key: PrivateKey, ca_cert: x509.Certificate, ca_key: PrivateKey
) -> x509.Certificate:
    """A server certificate for all the plan's SANs, never valid past the CA's not-after."""
    settings = plan.certificate
    now = _now()
    not_after = min(
        now + dt.timedelta(days=settings.cert_validity_days), ca_cert.not_valid_after_utc
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name(settings))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(max(now - CLOCK_SKEW, ca_cert.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_server_key_usage(key), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(plan.all_sans())), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    return builder.sign(ca_key, _hash_for(ca_key))


def build_csr(plan: Plan, key: PrivateKey) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_name(plan.certificate))
        .add_extension(x509.SubjectAlternativeName(_general_names(plan.all_sans())), critical=False)
        .sign(key, _hash_for(key))
    )


# --------------------------------------------------------------------------- writing


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey, passphrase: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def os_reason(error: OSError) -> str:
    """The OS's reason for a failed file operation, saying "disk full" when it is."""
    if error.errno == errno.ENOSPC:
        return "no space left on device (disk full)"
    if error.errno == errno.EDQUOT:
        return "disk quota exceeded (no space left for this user)"
    return error.strerror or str(error)


_WRITE_HINT = "free some space or fix the folder's owner and permissions, then run again"


def _write_error(path: Path, error: OSError) -> CertError:
    return CertError(f"cannot write {path}: {os_reason(error)}", _WRITE_HINT)


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        atomic_write(path, data, mode)
    except OSError as error:
        raise _write_error(path, error) from None


class _Changes:
    """Files that change together: all written to temp files first, then renamed into place.

    A full disk shows while writing the temp files, so a failure there changes nothing. The
    renames need no space; if one fails anyway, the files set aside are put back.
    """

    def __init__(self) -> None:
        self._staged: dict[Path, Path] = {}  # final path -> its temp file, in write order
        self._aside: dict[Path, Path] = {}  # existing file -> its *.old-<time> name

    def write(self, path: Path, data: bytes, mode: int) -> None:
        """Stage ``data`` for ``path``; on any failure every staged temp file is removed."""
        try:
            self._staged[path] = write_temp_beside(path, data, mode)
        except OSError as error:
            self.discard()
            raise _write_error(path, error) from None
        except BaseException:
            self.discard()
            raise

    def set_aside(self, paths: Sequence[Path]) -> list[str]:
        """Plan renaming existing files to NAME.old-<UTC time> at commit; returns the new names."""
        stamp = _now().strftime("%Y%m%dT%H%M%SZ")
        for path in paths:
            if path.exists():
                self._aside[path] = _unused_name(path.with_name(f"{path.name}.old-{stamp}"))
        return [target.name for target in self._aside.values()]

    def discard(self) -> None:
        for temp in self._staged.values():
            with contextlib.suppress(OSError):
                temp.unlink()
        self._staged.clear()

    def commit(self) -> None:
        moved_aside: list[Path] = []
        placed: list[Path] = []
        doing = ""
        try:
            for path, target in self._aside.items():
                doing = f"move {path} aside"
                os.replace(path, target)
                moved_aside.append(path)
            for path, temp in self._staged.items():
                doing = f"put the new {path} in place"
                os.replace(temp, path)
                placed.append(path)
        except OSError as error:
            self._undo(moved_aside, placed)
            self.discard()
            raise CertError(f"cannot {doing}: {os_reason(error)}", _WRITE_HINT) from None
        if self._staged:
            fsync_directory(next(iter(self._staged)).parent)
        self._staged.clear()

    def _undo(self, moved_aside: list[Path], placed: list[Path]) -> None:
        """Put set-aside files back (a new file in their place goes: it was never used)."""
        for path in moved_aside:
            with contextlib.suppress(OSError):
                if path in placed:
                    path.unlink()
                os.replace(self._aside[path], path)


def _unused_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``...: never overwrite an earlier set-aside file."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def _prepare_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise CertError(
            f"cannot create the certificate folder {directory}: {error.strerror}"
        ) from None
    if not directory.is_dir():
        raise CertError(f"{directory} is not a folder", "set certificate.directory to a folder")


def _tighten(path: Path) -> None:
    """Private key files must be 0600 even if someone loosened them."""
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(PRIVATE_MODE)


# --------------------------------------------------------------------------- ensure


@dataclass
class CertSummary:
    """The outcome of ensure_certificates or import_certificate, for the CLI and the TUI."""

    files: CertFiles
    ca: CertInfo
    leaf: CertInfo
    ca_action: str  # "created", "replaced", "reused", "imported"
    leaf_action: str  # "created", "renewed", "reissued", "unchanged", "imported"
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.ca_action in ("created", "replaced") or self.leaf_action != "unchanged"

    def lines(self) -> list[str]:
        files = self.files
        lines = [
            f"certificates in {files.directory}",
            f"  CA ({self.ca_action}):  {files.ca_crt.name}  expires {_day(self.ca.not_after)}",
            f"    SHA-256  {self.ca.fingerprint}",
            f"  server ({self.leaf_action}):  {files.tls_crt.name} + {files.tls_key.name}  "
            f"expires {_day(self.leaf.not_after)} ({self.leaf.days_left} days left)",
            f"    SANs     {', '.join(self.leaf.sans)}",
            f"    key      {self.leaf.key_type}, serial {self.leaf.serial}",
        ]
        lines += [f"  why: {reason}" for reason in self.reasons]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        return lines


@dataclass
class _CA:
    cert: x509.Certificate
    # None: an imported chain's root, whose key regwiz never had
    key: PrivateKey | None = field(repr=False)


@_file_errors_reported
def ensure_certificates(
    plan: Plan,
    *,
    renew: bool = False,
    new_ca: bool = False,
    reuse_key: bool = True,
    ca_passphrase: str | None = None,
) -> CertSummary:
    """Make the certificate directory match the plan, changing only what must change.

    The CA is reused (created when there is none; replaced only with ``new_ca``). The server
    certificate is created when missing, renewed when asked, and reissued automatically when it
    no longer covers ``plan.all_sans()``, has expired, was not signed by the CA, or its key type
    differs from the plan. ``reuse_key`` keeps an existing tls.key of the right type.
    """
    _require_valid(plan)
    files = CertFiles(plan.cert_dir)
    if new_ca and files.ca_next_crt.exists():
        # a second new CA would leave the nodes trusting neither the rotation's nor this one
        raise CertError("a CA rotation is under way (its new CA is ca-next.crt): finish it "
                        "instead of making another CA", "run regwiz rotate-ca --plan FILE")
    _prepare_directory(files.directory)
    notes: list[str] = []
    ca_action = "reused"
    changes = _Changes()  # a new CA and its server certificate land together, or not at all
    ca = None if new_ca else _load_ca(files, ca_passphrase)
    if ca is None:
        moved = changes.set_aside([files.ca_crt, files.ca_key]) if new_ca else []
        ca = _create_and_stage_ca(plan, files, ca_passphrase, changes)
        ca_action = "replaced" if moved else "created"
        if moved:
            notes.append(f"the previous CA was kept as {', '.join(moved)}")
        if moved or files.tls_crt.exists():
            notes.append("new CA: every node must be onboarded again to trust it")
    if ca.key is None:
        return _check_imported(plan, files, ca.cert, renew)
    try:
        summary = _ensure_leaf(plan, files, ca, changes, renew=renew, reuse_key=reuse_key)
    except BaseException:
        changes.discard()
        raise
    changes.commit()
    summary.ca_action = ca_action
    summary.notes = notes + summary.notes
    return summary


def _require_valid(plan: Plan) -> None:
    """Certificates are only made from a valid plan (the TUI may pass an edited one)."""
    require_managed(plan, "certs")
    problems = validate_plan(plan)
    if problems:
        raise CertError(
            "the plan has problems: " + "; ".join(problems[:3]),
            "fix the certificate and registry settings first",
        )


def _load_ca(files: CertFiles, passphrase: str | None) -> _CA | None:
    has_crt, has_key = files.ca_crt.exists(), files.ca_key.exists()
    if not has_crt and not has_key:
        return None
    if not has_crt:
        raise CertError(
            f"{files.ca_key} exists but {files.ca_crt.name} is missing",
            "restore ca.crt, or run with --new-ca (re-onboard every node afterwards)",
        )
    cert = _parse_certificates(_read(files.ca_crt, "CA certificate"), str(files.ca_crt))[0]
    if not _is_ca(cert):
        raise CertError(f"{files.ca_crt} is not a CA certificate", "run with --new-ca")
    if cert.not_valid_after_utc <= _now():
        raise CertError(
            f"the CA in {files.ca_crt} expired on {_day(cert.not_valid_after_utc)}",
            "create a new CA with --new-ca and onboard every node again",
        )
    if not has_key:
        return _CA(cert, None)
    _tighten(files.ca_key)
    key = _parse_private_key(
        _read(files.ca_key, "CA key"), str(files.ca_key), passphrase, _CA_KEY_ENCRYPTED_HINT
    )
    if not _key_matches(key, cert):
        raise CertError(
            f"{files.ca_key.name} does not belong to {files.ca_crt.name} in {files.directory}",
            "restore the matching pair, or run with --new-ca",
        )
    return _CA(cert, key)


def _create_and_stage_ca(
    plan: Plan, files: CertFiles, passphrase: str | None, changes: _Changes
) -> _CA:
    cert, key = create_ca(plan)
    # Key first: a ca.crt without its key would look like an imported chain.
    changes.write(files.ca_key, _key_pem(key, passphrase), PRIVATE_MODE)
    changes.write(files.ca_crt, _pem(cert), PUBLIC_MODE)
    return _CA(cert, key)


def _load_leaf(files: CertFiles) -> tuple[x509.Certificate | None, PrivateKey | None]:
    cert = key = None
    if files.tls_crt.exists():
        # An unreadable tls.crt is simply issued again (reported as "reissued").
        with contextlib.suppress(CertError):
            cert = _parse_certificates(_read(files.tls_crt, "certificate"), str(files.tls_crt))[0]
    if files.tls_key.exists():
        _tighten(files.tls_key)
        key = _parse_private_key(_read(files.tls_key, "server key"), str(files.tls_key))
    return cert, key


def _reissue_reasons(
    plan: Plan,
    files: CertFiles,
    ca: _CA,
    cert: x509.Certificate | None,
    key: PrivateKey | None,
    renew: bool,
) -> tuple[str, list[str]]:
    """(action, reasons): "unchanged" with no reasons when the current leaf is fine."""
    if cert is None:
        if files.tls_crt.exists():
            return "reissued", ["tls.crt could not be read as a certificate"]
        return "created", []
    reasons: list[str] = []
    if key is None:
        reasons.append("tls.key was missing")
    elif not _key_matches(key, cert):
        reasons.append("tls.key did not match tls.crt")
    if not issued_by(cert, ca.cert) and not _issued_by_next_ca(files, cert):
        reasons.append("tls.crt was not signed by ca.crt")
    missing = [san for san in plan.all_sans() if not sans_cover(cert_sans(cert), san)]
    if missing:
        reasons.append(f"its SANs did not cover {', '.join(missing)}")
    reasons += _drift_reasons(plan, cert)
    if cert.not_valid_after_utc <= _now():
        reasons.append(f"it expired on {_day(cert.not_valid_after_utc)}")
    if (key_type := key_type_of(cert.public_key())) != plan.certificate.key_type:
        reasons.append(f"key type changed from {key_type} to {plan.certificate.key_type}")
    if reasons:
        return "reissued", reasons
    if renew:
        return "renewed", ["renewal was asked for"]
    return "unchanged", []


def _drift_reasons(plan: Plan, cert: x509.Certificate) -> list[str]:
    """SANs the plan dropped, and a subject the plan renamed: a reissue, never a stale cert."""
    reasons = [f"its SAN {san} is no longer in the plan" for san in extra_sans(plan, cert)]
    return reasons + [f"its {line}" for line in subject_differences(plan.certificate, cert)]


def _ensure_leaf(
    plan: Plan, files: CertFiles, ca: _CA, changes: _Changes, *, renew: bool, reuse_key: bool
) -> CertSummary:
    """Check the server certificate against the plan; stage (not write) what must change."""
    assert ca.key is not None
    _check_name_constraints(ca.cert, plan.all_sans())
    cert, key = _load_leaf(files)
    action, reasons = _reissue_reasons(plan, files, ca, cert, key, renew)
    if action != "unchanged":
        keep_key = key is not None and reuse_key and key_type_of(key) == plan.certificate.key_type
        if not keep_key or key is None:
            key = generate_key(plan.certificate.key_type)
            changes.write(files.tls_key, _key_pem(key), PRIVATE_MODE)
        cert = issue_server_certificate(plan, key, ca.cert, ca.key)
        changes.write(files.tls_crt, _pem(cert), PUBLIC_MODE)
        changes.write(
            files.tls_csr,
            build_csr(plan, key).public_bytes(serialization.Encoding.PEM),
            PUBLIC_MODE,
        )
    assert cert is not None
    leaf, ca_info = describe(cert), describe(ca.cert)
    return CertSummary(
        files=files,
        ca=ca_info,
        leaf=leaf,
        ca_action="reused",
        leaf_action=action,
        reasons=reasons,
        warnings=_expiry_warnings(leaf, ca_info),
        notes=_name_constraint_notes(plan, ca.cert),
    )


def _name_constraint_notes(plan: Plan, ca_cert: x509.Certificate) -> list[str]:
    try:
        ca_cert.extensions.get_extension_for_class(x509.NameConstraints)
        constrained = True
    except x509.ExtensionNotFound:
        constrained = False
    if constrained == plan.certificate.name_constraints:
        return []
    state = "has" if constrained else "has no"
    return [
        f"the existing CA {state} name constraints; certificate.name_constraints only "
        "applies to a new CA (--new-ca, then onboard every node again)"
    ]


def _expiry_warnings(leaf: CertInfo, ca: CertInfo) -> list[str]:
    warnings = []
    if leaf.days_left < EXPIRY_WARNING_DAYS:
        warnings.append(f"the server certificate expires in {leaf.days_left} days: renew it")
    if ca.days_left < EXPIRY_WARNING_DAYS:
        warnings.append(f"the CA expires in {ca.days_left} days: replace it with regwiz "
                        "rotate-ca (nodes keep pulling throughout)")
    return warnings


def _check_name_constraints(ca_cert: x509.Certificate, sans: Sequence[str]) -> None:
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return
    outside = [san for san in sans if not _permitted(constraints, san)]
    if outside:
        raise CertError(
            f"the CA is limited by name constraints and cannot sign {', '.join(outside)}",
            "create a new CA with --new-ca (then onboard every node again)",
        )


def _permitted(constraints: x509.NameConstraints, san: str) -> bool:
    if validate.is_ip_address(san):
        address = ipaddress.ip_address(san)
        networks = [
            name.value
            for name in constraints.permitted_subtrees or []
            if isinstance(name, x509.IPAddress)
        ]
        excluded = [
            name.value
            for name in constraints.excluded_subtrees or []
            if isinstance(name, x509.IPAddress)
        ]
        if any(address in network for network in excluded):  # type: ignore[operator]
            return False
        return not networks or any(address in network for network in networks)  # type: ignore[operator]
    domains = [
        name.value.lower()
        for name in constraints.permitted_subtrees or []
        if isinstance(name, x509.DNSName)
    ]
    host = san.lower().removeprefix("*.")
    return not domains or any(host == d or host.endswith("." + d) for d in domains)


# --------------------------------------------------------------------------- imported certs


def _check_imported(
    plan: Plan, files: CertFiles, ca_cert: x509.Certificate, renew: bool
) -> CertSummary:
    """ca.crt without ca.key: the certificate came from another CA; check it, never reissue."""
    hint = (
        "import a new certificate with --import-cert/--import-key, "
        "or switch to a regwiz CA with --new-ca"
    )
    if renew:
        raise CertError(
            "the server certificate was imported from another CA: regwiz cannot renew it", hint
        )
    if not files.tls_crt.exists() or not files.tls_key.exists():
        raise CertError(
            f"{files.ca_crt.name} has no {files.ca_key.name} and there is no imported "
            f"{files.tls_crt.name}/{files.tls_key.name} in {files.directory}",
            hint,
        )
    chain = _parse_certificates(_read(files.tls_crt, "certificate"), str(files.tls_crt))
    key = _parse_private_key(_read(files.tls_key, "server key"), str(files.tls_key))
    report = _validate_import(plan, chain[0], key, chain[1:], ca_cert)
    return CertSummary(
        files, describe(ca_cert), describe(chain[0]), "imported", "unchanged", warnings=report
    )


@_file_errors_reported
def import_certificate(
    plan: Plan,
    cert_path: Path | str,
    key_path: Path | str,
    chain_path: Path | str | None = None,
) -> CertSummary:
    """Check a certificate from another CA and copy it into the certificate directory.

    Checks: the key matches, the chain verifies up to a root (from the cert file, the chain
    file, or the existing ca.crt), the SANs cover registry.address, EKU allows serverAuth, and
    every certificate is currently valid. Warns when it expires within 30 days or misses other
    SANs of the plan. On success writes tls.crt (leaf + intermediates), tls.key and ca.crt.
    """
    _require_valid(plan)
    files = CertFiles(plan.cert_dir)
    cert_file, key_file = expand_user(cert_path), expand_user(key_path)
    certs = _parse_certificates(_read(cert_file, "certificate"), str(cert_file))
    if chain_path is not None:
        chain_file = expand_user(chain_path)
        certs += _parse_certificates(_read(chain_file, "chain"), str(chain_file))
    key = _parse_private_key(_read(key_file, "key"), str(key_file))
    leaf, others = certs[0], certs[1:]
    existing_ca = _existing_root(files)
    root = next((c for c in others if c.subject == c.issuer and issued_by(c, c)), existing_ca)
    if root is None:
        raise CertError(
            "no root CA certificate to verify the chain against",
            "pass the issuing CA (and any intermediates) with --import-chain",
        )
    intermediates = [c for c in others if c != root]
    warnings = _validate_import(plan, leaf, key, intermediates, root)
    path = _chain_path(leaf, intermediates, root)
    _prepare_directory(files.directory)
    notes: list[str] = []
    ca_action = "reused"
    changes = _Changes()  # the previous CA stays in place unless every new file was written
    if existing_ca is None or fingerprint(existing_ca) != fingerprint(root):
        moved = changes.set_aside([files.ca_crt, files.ca_key])
        ca_action = "imported"
        if moved:
            notes.append(f"the previous CA was kept as {', '.join(moved)}")
            notes.append("the CA changed: every node must be onboarded again to trust it")
    changes.write(files.tls_key, _key_pem(key), PRIVATE_MODE)
    changes.write(files.tls_crt, b"".join(_pem(c) for c in [leaf, *path]), PUBLIC_MODE)
    changes.write(files.ca_crt, _pem(root), PUBLIC_MODE)
    changes.commit()
    with contextlib.suppress(OSError):
        files.tls_csr.unlink()  # it was for another key, or for the certificate just imported
    return CertSummary(
        files, describe(root), describe(leaf), ca_action, "imported", warnings=warnings, notes=notes
    )


def _existing_root(files: CertFiles) -> x509.Certificate | None:
    if not files.ca_crt.exists():
        return None
    with contextlib.suppress(CertError):
        return _parse_certificates(_read(files.ca_crt, "CA certificate"), str(files.ca_crt))[0]
    return None


def _chain_path(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], root: x509.Certificate
) -> list[x509.Certificate]:
    """The intermediates from leaf up to (not including) the root; CertError if none verifies."""
    path: list[x509.Certificate] = []
    current = leaf
    for _ in range(len(intermediates) + 1):
        if issued_by(current, root):
            return path
        issuer = next((c for c in intermediates if c not in path and issued_by(current, c)), None)
        if issuer is None:
            break
        if not _is_ca(issuer):
            raise CertError(f"{issuer.subject.rfc4514_string()} in the chain is not a CA")
        path.append(issuer)
        current = issuer
    raise CertError(
        f"the certificate chain does not verify: nothing given signed "
        f"{current.subject.rfc4514_string()} (issuer {current.issuer.rfc4514_string()})",
        "pass the right CA and intermediates with --import-chain",
    )


def _validate_import(
    plan: Plan,
    leaf: x509.Certificate,
    key: PrivateKey,
    intermediates: list[x509.Certificate],
    root: x509.Certificate,
) -> list[str]:
    """Raise CertError for a certificate the registry must not serve; return warnings."""
    if not _key_matches(key, leaf):
        raise CertError(
            "the private key does not belong to the certificate",
            "give the key the certificate was requested with (see tls.csr)",
        )
    if not _is_ca(root):
        raise CertError(f"{root.subject.rfc4514_string()} is not a CA certificate")
    _chain_path(leaf, intermediates, root)
    now = _now()
    for cert in [leaf, *intermediates, root]:
        name = cert.subject.rfc4514_string()
        if cert.not_valid_after_utc <= now:
            raise CertError(
                f"{name} expired on {_day(cert.not_valid_after_utc)}", "get a renewed certificate"
            )
        if cert.not_valid_before_utc > now:
            raise CertError(
                f"{name} is not valid before {_day(cert.not_valid_before_utc)}",
                "check this machine's clock, or wait",
            )
    sans = cert_sans(leaf)
    if not sans_cover(sans, plan.registry.address):
        raise CertError(
            f"the certificate's SANs ({', '.join(sans) or 'none'}) do not cover "
            f"registry.address {plan.registry.address}",
            "request a certificate with that name or IP in its subjectAltName",
        )
    _check_server_auth(leaf)
    warnings = [
        f"the certificate does not cover {san}, which the plan lists"
        for san in plan.all_sans()
        if not sans_cover(sans, san)
    ]
    days_left = (leaf.not_valid_after_utc - now).days
    if days_left < EXPIRY_WARNING_DAYS:
        warnings.append(f"the certificate expires in {days_left} days")
    return warnings


def _check_server_auth(leaf: x509.Certificate) -> None:
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no EKU extension means any use is allowed
    allowed = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if not allowed.intersection(usages):
        raise CertError(
            "the certificate is not for TLS servers (its extended key usage lacks serverAuth)",
            "request a server certificate (EKU serverAuth)",
        )


# --------------------------------------------------------------------------- CSR export


@_file_errors_reported
def export_csr(plan: Plan) -> Path:
    """Write tls.csr for tls.key (created when missing) with the plan's subject and SANs.

    An existing tls.key is always reused, so the certificate being served keeps its key until
    the signed certificate is imported.
    """
    _require_valid(plan)
    files = CertFiles(plan.cert_dir)
    _prepare_directory(files.directory)
    if files.tls_key.exists():
        _tighten(files.tls_key)
        key = _parse_private_key(_read(files.tls_key, "server key"), str(files.tls_key))
    else:
        key = generate_key(plan.certificate.key_type)
        _write(files.tls_key, _key_pem(key), PRIVATE_MODE)
    csr = build_csr(plan, key)
    _write(files.tls_csr, csr.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
    return files.tls_csr


def on_disk_differences(plan: Plan) -> list[str]:
    """How the server certificate in the plan's directory differs from the plan ([] if none).

    A missing or unreadable tls.crt is not a difference (deploy and the Review step report it
    on their own). A certificate is taken as regwiz's own when ca.key sits beside it.
    """
    files = CertFiles(plan.cert_dir)
    try:
        cert = x509.load_pem_x509_certificate(files.tls_crt.read_bytes())
    except (OSError, ValueError):
        return []
    return plan_differences(plan, cert, issued_here=files.ca_key.exists())


# --------------------------------------------------------------------------- CA rotation


def _issued_by_next_ca(files: CertFiles, cert: x509.Certificate) -> bool:
    """Is ``cert`` signed by a CA rotation's new CA? Then it is current, not one to reissue."""
    if not files.ca_next_crt.exists():
        return False
    with contextlib.suppress(CertError):
        next_ca = _parse_certificates(_read(files.ca_next_crt, "CA certificate"),
                                      str(files.ca_next_crt))[0]
        return issued_by(cert, next_ca)
    return False


def _load_next_ca(files: CertFiles, passphrase: str | None) -> _CA | None:
    """The rotation's new CA, or None when it is not (completely) there yet."""
    if not files.ca_next_crt.exists() or not files.ca_next_key.exists():
        return None  # _Changes writes the pair together; a lone half was never trusted
    cert = _parse_certificates(_read(files.ca_next_crt, "CA certificate"),
                               str(files.ca_next_crt))[0]
    _tighten(files.ca_next_key)
    key = _parse_private_key(_read(files.ca_next_key, "CA key"), str(files.ca_next_key),
                             passphrase, _CA_KEY_ENCRYPTED_HINT)
    if not _key_matches(key, cert):
        raise CertError(f"{files.ca_next_key.name} does not belong to {files.ca_next_crt.name}",
                        "remove both, then run regwiz rotate-ca again (it makes a new pair)")
    return _CA(cert, key)


@_file_errors_reported
def prepare_next_ca(plan: Plan, passphrase: str | None) -> tuple[CertInfo, CertInfo]:
    """A CA rotation's first step: the new CA as ca-next.crt/ca-next.key (made once, then
    reused; its key encrypted with ``passphrase`` like ca.key) and ca-bundle.crt holding the
    current and the new CA. Returns (current CA, new CA)."""
    _require_valid(plan)
    files = CertFiles(plan.cert_dir)
    current = _load_ca(files, passphrase)  # also proves the passphrase opens ca.key
    if current is None:
        raise CertError(f"there is no CA in {files.directory} to rotate",
                        "create it first: regwiz certs --plan FILE")
    if current.key is None:
        raise CertError("the CA was imported (there is no ca.key): regwiz can only rotate a CA "
                        "it made", "import a certificate from your new CA with --import-cert")
    upcoming = _load_next_ca(files, passphrase)
    if upcoming is None:
        cert, key = create_ca(plan)
        changes = _Changes()
        changes.write(files.ca_next_key, _key_pem(key, passphrase), PRIVATE_MODE)
        changes.write(files.ca_next_crt, _pem(cert), PUBLIC_MODE)
        changes.commit()
        upcoming = _CA(cert, key)
    _write(files.ca_bundle, _pem(current.cert) + _pem(upcoming.cert), PUBLIC_MODE)
    return describe(current.cert), describe(upcoming.cert)


@_file_errors_reported
def issue_from_next_ca(plan: Plan, passphrase: str | None) -> CertSummary:
    """A CA rotation's switch: tls.crt (with a new key) signed by ca-next.crt, unless the one
    there already is (a re-run changes nothing)."""
    _require_valid(plan)
    files = CertFiles(plan.cert_dir)
    upcoming = _load_next_ca(files, passphrase)
    if upcoming is None:
        raise CertError(f"the new CA ({files.ca_next_crt.name}, {files.ca_next_key.name}) is "
                        f"not in {files.directory}",
                        "run regwiz rotate-ca again: its add phase makes it")
    changes = _Changes()
    try:
        summary = _ensure_leaf(plan, files, upcoming, changes, renew=False, reuse_key=False)
    except BaseException:
        changes.discard()
        raise
    changes.commit()
    summary.ca_action = "new (rotation)"
    if summary.leaf_action != "unchanged":
        summary.reasons = ["the CA rotation: signed by the new CA"]
    return summary


@_file_errors_reported
def promote_next_ca(plan: Plan) -> list[str]:
    """A CA rotation's finish: ca-next.crt/ca-next.key become ca.crt/ca.key, the previous pair
    is kept as ca.crt.old-<time>/ca.key.old-<time>, and the bundle goes. Safe to re-run: a pair
    already promoted is not set aside again. Returns the backups' names."""
    files = CertFiles(plan.cert_dir)
    moved: list[str] = []
    if files.ca_next_crt.exists():
        next_crt = _read(files.ca_next_crt, "CA certificate")
        if not files.ca_crt.exists() or _read(files.ca_crt, "CA certificate") != next_crt:
            changes = _Changes()  # the backups and the new pair, all or nothing
            moved = changes.set_aside([files.ca_crt, files.ca_key])
            changes.write(files.ca_key, _read(files.ca_next_key, "CA key"), PRIVATE_MODE)
            changes.write(files.ca_crt, next_crt, PUBLIC_MODE)
            changes.commit()
        files.ca_next_key.unlink(missing_ok=True)
        files.ca_next_crt.unlink()
    files.ca_bundle.unlink(missing_ok=True)
    fsync_directory(files.directory)
    return moved


def certificate_signed_by(cert_path: Path, ca_path: Path) -> bool:
    """Is the first certificate in ``cert_path`` signed by the first one in ``ca_path``? False
    when either is missing or unreadable."""
    try:
        cert = _parse_certificates(_read(cert_path, "certificate"), str(cert_path))[0]
        ca = _parse_certificates(_read(ca_path, "CA certificate"), str(ca_path))[0]
    except CertError:
        return False
    return issued_by(cert, ca)
