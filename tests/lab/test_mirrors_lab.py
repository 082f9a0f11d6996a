"""Pull-through caches (issue 14) on the lab: what the caches proxy is ``tests.lab.upstream``,
a plain TLS registry with its own CA on the registry host."""

from __future__ import annotations

from app import registry_api
from tests.lab.lab import Lab
from tests.lab.upstream import IMAGES, upstream


def test_the_lab_upstream_serves_its_images_stops_and_starts(lab: Lab) -> None:
    with upstream(lab, 8594, "lab-upstream-smoke") as up:
        digests = {target: up.digest(*target.split(":")) for target in IMAGES}
        assert all(d and d.startswith("sha256:") for d in digests.values())
        assert len(set(digests.values())) == len(IMAGES)  # two images, two digests
        up.stop()
        assert not up.answers()
        up.start()
        assert up.digest("library/busybox", "latest") == digests["library/busybox:latest"]


def test_the_lab_upstream_with_a_login_refuses_anonymous_pulls(lab: Lab) -> None:
    with upstream(lab, 8595, "lab-upstream-smoke-login", login=True) as up:
        assert up.login is not None
        assert registry_api.ping(up.url, up.ca_pem).status == 401
        assert up.digest("lab/second", "1.0")
