"""Renewing the server certificate on day two (issue 15, item 4) on the lab: `regwiz renew` and the
Status step's "Renew certificate…" reissue tls.crt from the same CA, deploy it behind the front,
and the registry then serves it, with every image it held and the CA unchanged (nodes need
nothing)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.certs import inspect_certificate
from app.images.endpoint import RegistryEndpoint
from app.registry_api import BasicAuth, tls_context
from tests.lab.lab import Lab
from tests.lab.status_actions import run_status_action
from tests.lab.test_private_lab import Private, private_registry

pytestmark = pytest.mark.lab


@pytest.fixture
def deployed(lab: Lab, tmp_path: Path) -> Iterator[Private]:
    with private_registry(lab, tmp_path, "rwp-renew-lab") as made:
        assert made.cli("deploy") == 0
        yield made


def served_fingerprint(private: Private) -> str:
    pem = ssl.get_server_certificate((private.host.ip, private.port), timeout=10)
    return inspect_certificate(pem.encode()).fingerprint


def fingerprints(private: Private) -> tuple[str, str]:
    """(CA, tls.crt) on disk."""
    return (inspect_certificate(private.certs / "ca.crt").fingerprint,
            inspect_certificate(private.certs / "tls.crt").fingerprint)


def push_marker(private: Private) -> str:
    from tests.deploy_helpers import push_tiny_image

    login = BasicAuth("operator", private.password("operator"))
    return push_tiny_image(f"https://{private.address}", private.certs / "ca.crt",
                           "team/kept", "1.0", login.header())


def image_digest(private: Private) -> str | None:
    endpoint = RegistryEndpoint(private.address, tls_context(private.ca_pem),
                                BasicAuth("cluster", private.password("cluster")),
                                basic_first=True)
    return endpoint.manifest_digest("team/kept", "1.0")


def test_renew_serves_a_new_certificate_from_the_same_ca_and_keeps_the_images(
        deployed: Private, capsys: pytest.CaptureFixture[str]) -> None:
    pushed = push_marker(deployed)
    ca_before, tls_before = fingerprints(deployed)
    assert served_fingerprint(deployed) == tls_before
    capsys.readouterr()
    assert deployed.cli("renew") == 0
    out = capsys.readouterr().out
    ca_after, tls_after = fingerprints(deployed)
    assert ca_after == ca_before and tls_after != tls_before
    assert served_fingerprint(deployed) == tls_after
    assert "the registry serves it" in out and "nodes need nothing" in out, out
    assert image_digest(deployed) == pushed


async def test_the_status_step_renews_after_a_confirmation(
        deployed: Private, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, tls_before = fingerprints(deployed)
    text = await run_status_action(
        deployed, tmp_path / "data", monkeypatch, "#renew",
        lambda shown: "renewed tls.crt" in shown or "✗" in shown)
    assert "✓ renewed" in text, text
    _, tls_after = fingerprints(deployed)
    assert tls_after != tls_before and served_fingerprint(deployed) == tls_after
