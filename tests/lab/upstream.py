"""An upstream registry for pull-through cache tests (issue 14): a plain TLS Distribution
registry with ITS OWN CA (not the plan's), on the lab's registry host, started with ``docker
run`` (never by regwiz) and holding a few small images.

    from tests.lab.upstream import IMAGES, upstream

    with upstream(lab, port=8592, name="lab-upstream") as up:          # anonymous pulls
        up.url                   # "https://198.18.ID.2:8592": a mirror's remote_url
        up.ca_pem                # its CA (PEM bytes); up.write_ca(path) for remote_ca
        up.digest("library/busybox", "latest")   # the manifest digest it serves
        up.stop(); up.start()    # prove later pulls come from a cache; start waits until up
        up.answers()             # GET /v2/ answers (200, or 401 with a login)

    with upstream(lab, 8593, "lab-upstream-private", login=True) as up:  # pulls need a login
        up.login                 # (user, password): a private mirror's username and password

A login upstream uses token auth, as Docker Hub, ghcr.io and quay.io do (``token_server``):
Distribution's pull-through cache sends its upstream login only to a Bearer realm, never as
Basic auth. Its images are pushed while it is still anonymous, then it is restarted with token
auth on the same data.

``IMAGES`` maps what it holds ("repo:tag") to the lab image pushed there: ``library/busybox:
latest`` (the lab's busybox) and ``lab/second:1.0`` (the same files with another config, so
another digest). The container and its files are removed when the block ends.
"""

from __future__ import annotations

import secrets as random_secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app import registry_api
from tests.deploy_helpers import Pki, make_pki
from tests.lab.lab import BUSYBOX_IMAGE, Lab, LabHost
from tests.lab.tls_registry import push_images, run_tls_registry
from tests.lab.token_server import TokenServer
from tests.polling import poll_until, wait_until

SECOND_IMAGE = "regwiz-lab/second:1.0"  # made from busybox by `docker commit` on the host
IMAGES = {"library/busybox:latest": BUSYBOX_IMAGE, "lab/second:1.0": SECOND_IMAGE}
USER = "upstream-puller"


@dataclass
class Upstream:
    host: LabHost
    name: str
    port: int
    pki: Pki
    login: tuple[str, str] | None = None
    tokens: TokenServer | None = None

    @property
    def reference(self) -> str:
        return f"{self.host.ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.reference}"

    @property
    def ca_pem(self) -> bytes:
        return self.pki.ca_pem

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca_pem)
        return path

    def answers(self) -> bool:
        result = registry_api.ping(self.url, self.ca_pem, timeout=2)
        return result.status == (401 if self.login else 200)

    def digest(self, repository: str, tag: str) -> str | None:
        headers = {"Accept": registry_api.MANIFEST_MEDIA_TYPES}
        if self.tokens is not None:
            token = self.tokens.token([f"repository:{repository}:pull"])
            headers["Authorization"] = f"Bearer {token}"
        answer = registry_api.request(self.url, self.ca_pem, "HEAD",
                                      f"/v2/{repository}/manifests/{tag}", headers=headers)
        return answer.header("docker-content-digest") if answer.status == 200 else None

    def stop(self) -> None:
        self.host.exec(["docker", "stop", "-t", "2", self.name])
        wait_until(lambda: registry_api.ping(self.url, self.ca_pem, timeout=2).status is None,
                   f"upstream {self.name} stopped answering")

    def start(self) -> None:
        self.host.exec(["docker", "start", self.name])
        wait_until(self.answers, f"upstream {self.name} answering again")


@contextmanager
def upstream(lab: Lab, port: int, name: str, *, login: bool = False) -> Iterator[Upstream]:
    """Run it as container ``name`` on ``port`` of the registry host until the block ends;
    ``login``: pulls need ``Upstream.login`` (which also pushed the images)."""
    host = lab["registry"]
    files = f"/registry-image/{name}"  # private to the registry host
    up = Upstream(host, name, port, make_pki([host.ip], cn=f"lab upstream CA {name}"))
    try:
        run_tls_registry(host, name, port, files, up.pki, keep_data=login)
        assert poll_until(up.answers, timeout=60), f"upstream {name} did not answer"
        _make_second_image(host)
        push_images(host, up.reference, up.ca_pem, files, IMAGES)
        if login:
            _require_tokens(up, files)
        yield up
    finally:
        host.exec(["docker", "rm", "-f", name], check=False)
        host.exec(["rm", "-rf", files], check=False)
        if up.tokens is not None:
            up.tokens.stop()


def _require_tokens(up: Upstream, files: str) -> None:
    """Restart ``up`` on the same data with token auth, its tokens signed by its CA's key."""
    key = serialization.load_pem_private_key(up.pki.ca_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    up.login = (USER, random_secrets.token_urlsafe(18))
    up.tokens = TokenServer(up.host.pid, up.host.ip, key, up.login)
    up.host.host_path(f"{files}/token-ca.crt").write_bytes(up.ca_pem)
    run_tls_registry(up.host, up.name, up.port, files, up.pki, keep_data=True,
                     environment=up.tokens.registry_environment("/auth/token-ca.crt"))
    assert poll_until(up.answers, timeout=60), f"upstream {up.name} did not ask for a login"


def _make_second_image(host: LabHost) -> None:
    """SECOND_IMAGE: busybox's layer under another config (a label), so another digest."""
    if host.exec(["docker", "image", "inspect", SECOND_IMAGE], check=False).returncode == 0:
        return
    scratch = "regwiz-lab-second-scratch"
    host.exec(["docker", "rm", "-f", scratch], check=False)
    host.exec(["docker", "create", "--name", scratch, BUSYBOX_IMAGE])
    try:
        host.exec(["docker", "commit", "-c", "LABEL io.regwiz.lab=second", scratch,
                   SECOND_IMAGE])
    finally:
        host.exec(["docker", "rm", "-f", scratch], check=False)
