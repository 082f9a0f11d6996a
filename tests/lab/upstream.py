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

from app import registry_api
from tests.deploy_helpers import Pki, make_pki
from tests.lab.lab import BUSYBOX_IMAGE, Lab, LabHost
from tests.lab.tls_registry import push_images, run_tls_registry
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
        auth = registry_api.BasicAuth(*self.login) if self.login else None
        return registry_api.manifest_digest(self.url, self.ca_pem, repository, tag, auth=auth)

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
    credentials = (USER, random_secrets.token_urlsafe(18)) if login else None
    up = Upstream(host, name, port, make_pki([host.ip], cn=f"lab upstream CA {name}"),
                  credentials)
    try:
        run_tls_registry(host, name, port, files, up.pki,
                         dict([credentials]) if credentials else None)
        assert poll_until(up.answers, timeout=60), f"upstream {name} did not answer"
        _make_second_image(host)
        push_images(host, up.reference, up.ca_pem, files, IMAGES, credentials)
        yield up
    finally:
        host.exec(["docker", "rm", "-f", name], check=False)
        host.exec(["rm", "-rf", files], check=False)


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
