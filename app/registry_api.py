"""A small HTTPS client for the Distribution (registry v2) API.

TLS is verified against *our* CA only (``ca.crt`` from the plan's cert dir), never the system
store: a registry that only passes because of some public CA would hide a broken setup. Every
request has a timeout. Failures become ``RegistryAPIError`` with a message a user can act on
(x509 problems are spelled out, not dumped as OpenSSL strings).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import RegwizError
from app.images.digests import sha256_digest

API_VERSION_HEADER = "Docker-Distribution-API-Version"
DEFAULT_TIMEOUT = 10.0
MANIFEST_MEDIA_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


class RegistryAPIError(RegwizError):
    """A registry request failed: unreachable, TLS not trusted, unexpected status."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None):
        super().__init__(message, hint)
        self.status = status


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str = field(repr=False)

    def header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"

    def __repr__(self) -> str:  # the password never shows up in logs or tracebacks
        return f"BasicAuth(username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True)
class PingResult:
    """Outcome of ``GET /v2/``. ``status`` is None when no HTTP answer came back."""

    status: int | None
    api_version_header: str | None
    latency_ms: float | None
    error: str | None = None
    hint: str | None = None

    @property
    def is_up(self) -> bool:
        """A registry is up when /v2/ answers 200 (open) or 401 (auth on) with the API header."""
        return self.status in (200, 401) and bool(self.api_version_header)

    @property
    def needs_auth(self) -> bool:
        return self.status == 401


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def base_url(address: str, port: int) -> str:
    """``https://HOST:PORT`` (IPv6 literals bracketed)."""
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    return f"https://{host}:{port}"


def tls_context(ca: Path | str | bytes) -> ssl.SSLContext:
    """An SSL context trusting exactly ``ca`` (a path or PEM bytes), hostname checks on."""
    # A bare client context has an empty trust store (unlike create_default_context).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        if isinstance(ca, bytes):
            context.load_verify_locations(cadata=ca.decode("ascii", errors="replace"))
        else:
            context.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError, ValueError) as error:
        raise RegistryAPIError(
            f"cannot load the CA certificate {ca if not isinstance(ca, bytes) else '(PEM)'}: "
            f"{error}",
            "run `regwiz certs --plan FILE` to create the CA, or check the plan's directory",
        ) from None
    return context


def _split_base(base: str) -> tuple[str, int]:
    if "://" not in base:
        base = f"https://{base}"
    try:
        parsed = urllib.parse.urlsplit(base)
        scheme, host, port = parsed.scheme, parsed.hostname, parsed.port or 443
    except ValueError:  # bad IPv6 literal, port out of range
        scheme, host, port = "", None, 0
    if scheme != "https" or not host or any(c.isspace() or not c.isprintable() for c in host):
        raise RegistryAPIError(f"not an https registry address: {base!r}", "use https://HOST:PORT")
    return host, port


def explain_tls_error(error: ssl.SSLError, where: str) -> tuple[str, str]:
    """Turn an OpenSSL verification failure into (message, hint)."""
    reason = getattr(error, "verify_message", None) or getattr(error, "reason", None) or str(error)
    text = str(reason).lower()
    if "mismatch" in text or "hostname" in text:
        return (
            f"x509: the certificate served by {where} does not cover this address ({reason})",
            "add the address to certificate.subject_alt_names, run `regwiz certs --renew` and "
            "deploy again",
        )
    if "expired" in text:
        return (
            f"x509: the certificate served by {where} has expired",
            "renew it with `regwiz certs --renew --plan FILE` and deploy again",
        )
    if "not yet valid" in text:
        return (
            f"x509: the certificate served by {where} is not valid yet (clock skew?)",
            "check the clocks of this machine and the registry host",
        )
    if "issuer" in text or "self-signed" in text or "self signed" in text or "unknown ca" in text:
        return (
            f"x509: the certificate served by {where} is not signed by our CA (ca.crt)",
            "the registry serves another certificate: deploy again so it uses the plan's "
            "tls.crt, or check that the plan points at the right cert directory",
        )
    return (f"TLS handshake with {where} failed: {reason}", "check the registry's certificate")


def request(
    base: str,
    ca: Path | str | bytes,
    method: str,
    path: str,
    *,
    auth: BasicAuth | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    context: ssl.SSLContext | None = None,
) -> Response:
    """One HTTPS request; raises RegistryAPIError for network/TLS failures (not for statuses)."""
    host, port = _split_base(base)
    where = f"{host}:{port}"
    connection = http.client.HTTPSConnection(
        host, port, timeout=timeout, context=context or tls_context(ca)
    )
    sent = {"User-Agent": "regwiz", **(headers or {})}
    if auth is not None:
        sent["Authorization"] = auth.header()
    try:
        connection.request(method, path, headers=sent)
        answer = connection.getresponse()
        body = answer.read()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, body)
    except ssl.SSLCertVerificationError as error:
        message, hint = explain_tls_error(error, where)
        raise RegistryAPIError(message, hint) from None
    except ssl.SSLError as error:
        raise RegistryAPIError(
            f"TLS handshake with {where} failed: {error.reason or error}",
            "is something other than the registry listening on that port (plain HTTP?)",
        ) from None
    except ConnectionRefusedError:
        raise RegistryAPIError(
            f"connection to {where} refused: nothing listens there",
            "check that the registry container runs and publishes this port",
        ) from None
    except TimeoutError:
        raise RegistryAPIError(
            f"no answer from {where} within {timeout:g} s",
            "check the address, the port and any firewall between here and the host",
        ) from None
    except OSError as error:
        raise RegistryAPIError(
            f"cannot reach {where}: {error.strerror or error}",
            "check the address and the network route to the registry host",
        ) from None
    except http.client.HTTPException as error:
        raise RegistryAPIError(f"{where} sent a broken HTTP answer: {error!r}") from None
    finally:
        connection.close()


def ping(
    base: str,
    ca: Path | str | bytes,
    *,
    auth: BasicAuth | None = None,
    timeout: float = 5.0,
) -> PingResult:
    """``GET /v2/``; never raises for network trouble: the error is in the result."""
    started = time.monotonic()
    try:
        answer = request(base, ca, "GET", "/v2/", auth=auth, timeout=timeout)
    except RegistryAPIError as error:
        return PingResult(None, None, None, error.message, error.hint)
    latency = (time.monotonic() - started) * 1000.0
    header = answer.header(API_VERSION_HEADER)
    problem = None
    if answer.status not in (200, 401):
        problem = f"/v2/ answered HTTP {answer.status}"
    elif not header:
        problem = f"/v2/ answered without the {API_VERSION_HEADER} header: not a registry?"
    return PingResult(answer.status, header, latency, problem)


def _check(answer: Response, what: str, ok: tuple[int, ...] = (200,)) -> Response:
    if answer.status in ok:
        return answer
    if answer.status == 401:
        raise RegistryAPIError(
            f"{what}: authentication required or wrong credentials (HTTP 401)",
            "pass the registry credentials (REGWIZ_REGISTRY_PASSWORD or --credentials-file)",
            status=401,
        )
    if answer.status == 404:
        raise RegistryAPIError(f"{what}: not found (HTTP 404)", status=404)
    if answer.status == 405:
        raise RegistryAPIError(
            f"{what}: the registry does not allow this (HTTP 405)",
            "deleting needs registry.delete_enabled = true in the plan (then deploy again)",
            status=405,
        )
    detail = answer.body[:200].decode("utf-8", errors="replace").strip()
    raise RegistryAPIError(f"{what}: HTTP {answer.status} {detail}", status=answer.status)


def _json(answer: Response, what: str) -> dict[str, object]:
    try:
        data = json.loads(answer.body)
    except ValueError:
        raise RegistryAPIError(f"{what}: the registry sent invalid JSON") from None
    if not isinstance(data, dict):
        raise RegistryAPIError(f"{what}: unexpected JSON from the registry")
    return data


_LINK_NEXT = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")


def catalog(
    base: str,
    ca: Path | str | bytes,
    *,
    auth: BasicAuth | None = None,
    page_size: int = 100,
    limit: int = 10_000,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """Repository names, following ``Link: <...>; rel="next"`` pagination up to ``limit``."""
    context = tls_context(ca)
    path: str | None = f"/v2/_catalog?n={page_size}"
    names: list[str] = []
    while path and len(names) < limit:
        answer = request(base, ca, "GET", path, auth=auth, timeout=timeout, context=context)
        data = _json(_check(answer, "listing repositories"), "listing repositories")
        page = data.get("repositories") or []
        names += [str(name) for name in page] if isinstance(page, list) else []
        match = _LINK_NEXT.search(answer.header("link") or "")
        path = match.group(1) if match and page else None
    return names[:limit]


def _repo_path(repository: str) -> str:
    if not repository or repository.startswith("/") or ".." in repository.split("/"):
        raise RegistryAPIError(f"invalid repository name {repository!r}")
    return urllib.parse.quote(repository, safe="/")


def tags(
    base: str,
    ca: Path | str | bytes,
    repository: str,
    *,
    auth: BasicAuth | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    what = f"listing tags of {repository}"
    answer = request(
        base, ca, "GET", f"/v2/{_repo_path(repository)}/tags/list", auth=auth, timeout=timeout
    )
    found = _json(_check(answer, what), what).get("tags") or []
    return [str(tag) for tag in found] if isinstance(found, list) else []


def _manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{_repo_path(repository)}/manifests/{urllib.parse.quote(reference, safe=':')}"


def manifest_digest(
    base: str,
    ca: Path | str | bytes,
    repository: str,
    reference: str,
    *,
    auth: BasicAuth | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    context: ssl.SSLContext | None = None,
) -> str | None:
    """The ``Docker-Content-Digest`` of a tag or digest, or None when it does not exist."""
    path = _manifest_path(repository, reference)
    answer = request(
        base, ca, "HEAD", path, auth=auth, timeout=timeout, context=context,
        headers={"Accept": MANIFEST_MEDIA_TYPES},
    )
    if answer.status == 404:
        return None
    _check(answer, f"reading manifest {repository}:{reference}")
    return answer.header("docker-content-digest")


def delete_manifest(
    base: str,
    ca: Path | str | bytes,
    repository: str,
    digest: str,
    *,
    auth: BasicAuth | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Delete a manifest by digest (the registry needs delete enabled: else HTTP 405)."""
    if not digest.startswith("sha256:"):
        raise RegistryAPIError(f"a manifest is deleted by digest (sha256:...), got {digest!r}")
    path = f"/v2/{_repo_path(repository)}/manifests/{digest}"
    answer = request(base, ca, "DELETE", path, auth=auth, timeout=timeout)
    _check(answer, f"deleting {repository}@{digest}", ok=(200, 202))


# --- manifests and blobs (sizes, creation times, retention) ------------------------------------

MAX_MANIFEST_BYTES = 4 << 20  # the registry itself refuses manifests over 4 MiB
MAX_CONFIG_BYTES = 8 << 20  # an image config is JSON: a few KiB, rarely a few MiB


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry serves it, its digest checked against its bytes."""

    digest: str
    media_type: str
    body: bytes

    def data(self) -> dict[str, object]:
        try:
            parsed = json.loads(self.body)
        except ValueError:
            raise RegistryAPIError(f"manifest {self.digest} is not JSON") from None
        if not isinstance(parsed, dict):
            raise RegistryAPIError(f"manifest {self.digest} is not a JSON object")
        return parsed


def get_manifest(
    base: str,
    ca: Path | str | bytes,
    repository: str,
    reference: str,
    *,
    auth: BasicAuth | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    context: ssl.SSLContext | None = None,
) -> Manifest:
    """``GET`` a manifest (image, OCI index or Docker manifest list) by tag or digest.

    Raises RegistryAPIError (``status`` 404 when it does not exist); a body whose digest is
    not the one asked for (or announced) is refused.
    """
    what = f"reading manifest {repository}:{reference}"
    path = _manifest_path(repository, reference)
    answer = _check(request(base, ca, "GET", path, auth=auth, timeout=timeout, context=context,
                            headers={"Accept": MANIFEST_MEDIA_TYPES}), what)
    if len(answer.body) > MAX_MANIFEST_BYTES:
        raise RegistryAPIError(f"{what}: larger than {MAX_MANIFEST_BYTES} bytes")
    digest = sha256_digest(answer.body)
    expected = reference if reference.startswith("sha256:") else answer.header(
        "docker-content-digest")
    if expected and expected != digest:
        raise RegistryAPIError(f"{what}: the body's digest {digest} is not {expected}")
    media_type = (answer.header("content-type") or "").split(";")[0].strip()
    return Manifest(digest, media_type, answer.body)


def get_blob(
    base: str,
    ca: Path | str | bytes,
    repository: str,
    digest: str,
    *,
    auth: BasicAuth | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    context: ssl.SSLContext | None = None,
    limit: int = MAX_CONFIG_BYTES,
) -> bytes:
    """A small blob (an image config) by digest, checked against that digest."""
    what = f"reading blob {repository}@{digest}"
    if not digest.startswith("sha256:"):
        raise RegistryAPIError(f"{what}: only sha256 digests are read")
    path = f"/v2/{_repo_path(repository)}/blobs/{digest}"
    answer = request(base, ca, "GET", path, auth=auth, timeout=timeout, context=context)
    if answer.status in (301, 302, 303, 307, 308):
        raise RegistryAPIError(f"{what}: the registry redirects blob reads (a storage "
                               "redirect): not followed", status=answer.status)
    _check(answer, what)
    if len(answer.body) > limit:
        raise RegistryAPIError(f"{what}: larger than {limit} bytes")
    if sha256_digest(answer.body) != digest:
        raise RegistryAPIError(f"{what}: the body does not match its digest")
    return answer.body
