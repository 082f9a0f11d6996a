"""One registry's v2 API for copying images: manifests, blob existence, streamed blob reads and
uploads, with the two ways registries ask for a login (Basic, and Docker Hub's Bearer tokens).

Unlike ``app.registry_api`` (small JSON answers, read whole), blobs are streamed in both
directions and hashed on the way, so a layer of any size is never held in memory and a digest
that does not match is caught before the upload is committed. Every connection has a timeout.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from app.errors import RegwizError
from app.images.digests import sha256_digest
from app.registry_api import MANIFEST_MEDIA_TYPES, BasicAuth, Manifest, explain_tls_error

CHUNK = 1 << 20
TIMEOUT = 60.0
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
# An open connection and its response (the caller reads the body, then closes the connection).
Exchange = tuple[http.client.HTTPSConnection, http.client.HTTPResponse]


class Readable(Protocol):
    """A body streamed to the registry (a file, or a reader that hashes what it passes on)."""

    def read(self, size: int = -1, /) -> bytes: ...


class ImageTransferError(RegwizError):
    """A registry refused or broke a step of a copy. ``status``: its HTTP status, if any."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None):
        super().__init__(message, hint)
        self.status = status


@dataclass
class RegistryEndpoint:
    """``host`` ("HOST:PORT" or a name) over HTTPS verified with ``context``; ``login`` is
    sent as Basic auth when asked, or traded for a Bearer token when the registry wants one."""

    host: str
    context: ssl.SSLContext
    login: BasicAuth | None = None
    timeout: float = TIMEOUT
    basic_first: bool = False  # our own registry: send the login without waiting for a 401
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)  # scope -> Bearer token
    _basic: bool = field(default=False, repr=False)  # the registry asked for Basic auth

    # --- manifests --------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        status, headers, body = self._call("GET", _manifest_path(repository, reference),
                                           repository, headers={"Accept": MANIFEST_MEDIA_TYPES})
        _expect(status, (200,), f"reading {self.host}/{repository}:{reference}", body)
        media_type = headers.get("content-type", "").split(";")[0].strip() or _media_type_of(body)
        return Manifest(sha256_digest(body), media_type, body)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        status, headers, body = self._call("HEAD", _manifest_path(repository, reference),
                                           repository, headers={"Accept": MANIFEST_MEDIA_TYPES})
        if status == 404:
            return None
        _expect(status, (200,), f"reading {self.host}/{repository}:{reference}", body)
        return headers.get("docker-content-digest")

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        status, headers, body = self._call(
            "PUT", _manifest_path(repository, reference), repository, push=True,
            headers={"Content-Type": manifest.media_type}, body=manifest.body)
        _expect(status, (201, 200), f"storing {self.host}/{repository}:{reference}", body)
        return headers.get("docker-content-digest") or manifest.digest

    # --- blobs ------------------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        status, _, body = self._call("HEAD", f"/v2/{_quote(repository)}/blobs/{digest}",
                                     repository, push=True)
        if status == 404:
            return False
        _expect(status, (200,), f"checking blob {digest[:19]} in {self.host}/{repository}", body)
        return True

    def open_blob(self, repository: str, digest: str) -> tuple[Iterator[bytes], int | None]:
        """The blob's bytes in chunks (and its length when known), following redirects."""
        path = f"/v2/{_quote(repository)}/blobs/{digest}"
        connection, answer = self._open("GET", self.host, path, repository, self.context)
        for _ in range(5):
            if answer.status not in (301, 302, 303, 307, 308):
                break
            location = answer.getheader("Location") or ""
            answer.read()
            connection.close()
            connection, answer = self._follow(location, path)
        if answer.status != 200:
            body = answer.read()
            connection.close()
            _expect(answer.status, (200,), f"reading blob {digest[:19]} of {repository}", body)
        length = answer.getheader("Content-Length")
        return _chunks(connection, answer), (int(length) if length and length.isdigit() else None)

    def upload_blob(self, repository: str, digest: str, data: Readable, length: int) -> None:
        """Monolithic upload (POST, then PUT with the body); the registry checks the digest."""
        status, headers, body = self._call("POST", f"/v2/{_quote(repository)}/blobs/uploads/",
                                           repository, push=True)
        _expect(status, (202,), f"starting an upload to {self.host}/{repository}", body)
        location = headers.get("location", "")
        target = urllib.parse.urlsplit(location)
        query = "&".join(part for part in (target.query, f"digest={digest}") if part)
        status, _, body = self._call(
            "PUT", f"{target.path}?{query}", repository, push=True, body=data,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(length)})
        _expect(status, (201,), f"uploading blob {digest[:19]} to {self.host}/{repository}", body)

    # --- the HTTP exchange ----------------------------------------------------------------

    def _call(self, method: str, path: str, repository: str, *, push: bool = False,
              headers: dict[str, str] | None = None, body: bytes | Readable | None = None
              ) -> tuple[int, dict[str, str], bytes]:
        rewindable = body is None or isinstance(body, bytes)
        for attempt in range(2):
            connection, answer = self._open(method, self.host, path, repository, self.context,
                                            headers=headers, body=body, push=push)
            data = answer.read()
            connection.close()
            if answer.status != 401 or attempt or not rewindable or not self._learn(answer,
                                                                                 repository, push):
                break
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data

    def _open(self, method: str, host: str, path: str, repository: str,
              context: ssl.SSLContext, *, headers: dict[str, str] | None = None,
              body: bytes | Readable | None = None, push: bool = False,
              authorize: bool = True) -> Exchange:
        name, port = _split_host(host)
        connection = http.client.HTTPSConnection(name, port, timeout=self.timeout,
                                                 context=context)
        sent = {"User-Agent": "regwiz", **(headers or {})}
        if authorize and (auth := self._authorization(repository, push)) is not None:
            sent["Authorization"] = auth
        try:
            connection.request(method, path, body=body, headers=sent)
            return connection, connection.getresponse()
        except ssl.SSLCertVerificationError as error:
            connection.close()
            message, hint = explain_tls_error(error, host)
            raise ImageTransferError(message, hint) from None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise ImageTransferError(f"cannot reach {host}: {error}",
                                     "check the address and the network route") from None

    def _follow(self, location: str, path: str) -> Exchange:
        """A blob redirect (often to a CDN): no registry login goes along to another host."""
        target = urllib.parse.urlsplit(urllib.parse.urljoin(f"https://{self.host}{path}",
                                                            location))
        if target.scheme != "https":
            raise ImageTransferError(f"{self.host} redirected a blob to {target.scheme}://, "
                                     "not https: refused")
        same = target.netloc == self.host
        context = self.context if same else ssl.create_default_context()
        query = f"?{target.query}" if target.query else ""
        return self._open("GET", target.netloc, f"{target.path}{query}", "", context,
                          authorize=same)

    def _authorization(self, repository: str, push: bool) -> str | None:
        token = self._tokens.get(_scope(repository, push))
        if token is not None:
            return f"Bearer {token}"
        if self.login is not None and (self.basic_first or self._basic):
            return self.login.header()
        return None

    def _learn(self, answer: http.client.HTTPResponse, repository: str, push: bool) -> bool:
        """Act on a 401's challenge; True when a retry may now succeed."""
        challenge = answer.getheader("WWW-Authenticate") or ""
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic" and self.login is not None and not self._basic:
            self._basic = True
            return True
        if scheme == "bearer":
            params = dict(_CHALLENGE_PARAM.findall(challenge))
            scope = params.get("scope") or _scope(repository, push)
            self._tokens[_scope(repository, push)] = self._fetch_token(params, scope)
            return True
        return False

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        realm = urllib.parse.urlsplit(params.get("realm", ""))
        if realm.scheme != "https" or not realm.netloc:
            raise ImageTransferError(f"{self.host} asks for a token from {params.get('realm')!r}"
                                     ", which is not an https address")
        query = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope})
        context = self.context if realm.netloc == self.host else ssl.create_default_context()
        name, port = _split_host(realm.netloc)
        connection = http.client.HTTPSConnection(name, port, timeout=self.timeout,
                                                 context=context)
        headers = {"User-Agent": "regwiz"}
        if self.login is not None:
            headers["Authorization"] = self.login.header()
        try:
            connection.request("GET", f"{realm.path}?{query}", headers=headers)
            answer = connection.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as error:
            raise ImageTransferError(f"cannot get a token from {realm.netloc}: {error}") from None
        finally:
            connection.close()
        _expect(answer.status, (200,), f"getting a pull token from {realm.netloc}", body)
        try:
            data = json.loads(body)
            return str(data.get("token") or data["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise ImageTransferError(f"{realm.netloc} sent no token") from None


def _chunks(connection: http.client.HTTPSConnection, answer: http.client.HTTPResponse
            ) -> Iterator[bytes]:
    try:
        while chunk := answer.read(CHUNK):
            yield chunk
    finally:
        connection.close()


def _scope(repository: str, push: bool) -> str:
    return f"repository:{repository}:{'pull,push' if push else 'pull'}"


def _quote(repository: str) -> str:
    return urllib.parse.quote(repository, safe="/")


def _manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{_quote(repository)}/manifests/{urllib.parse.quote(reference, safe=':')}"


def _split_host(host: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(f"https://{host}")
    return parsed.hostname or host, parsed.port or 443


def _media_type_of(body: bytes) -> str:
    try:
        return str(json.loads(body).get("mediaType") or "")
    except (ValueError, AttributeError):
        return ""


def _expect(status: int, ok: tuple[int, ...], what: str, body: bytes) -> None:
    if status in ok:
        return
    detail = body[:300].decode("utf-8", errors="replace").strip()
    hints = {401: "check the login (REGWIZ_REGISTRY_PASSWORD, --credentials-file, or the "
                  "source's REGWIZ_SOURCE_PASSWORD)",
             403: "this account may not do that (a pull account cannot push)",
             404: "check the image name and tag"}
    raise ImageTransferError(f"{what}: HTTP {status} {detail}".strip(), hints.get(status),
                             status=status)
