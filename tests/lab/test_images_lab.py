"""``regwiz images push`` on the lab (issue 14, part 3): a registry deployed by regwiz (nginx front,
accounts), an "upstream" standing in for a public registry (a plain Distribution registry with its
own CA and login, started without regwiz, see tests/lab/external_registry.py), and the lab's
dockerd for a real ``docker save`` archive and a real pull of what was pushed.

- a multi-platform image (built here as an OCI index of two platforms, put on the upstream) is
  copied whole: the index and each platform keep the upstream's digests; a second run sends no
  blob again (bytes sent measured from the command's own report);
- a ``docker save`` archive of the lab's busybox goes in with --tar, and a Docker node pulls and
  runs it with the cluster (pull) account.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.images.copy import copy_images
from app.images.endpoint import RegistryEndpoint
from app.images.sources import OciLayoutSource
from app.registry_api import BasicAuth, tls_context
from tests.image_layouts import Layout
from tests.lab.external_registry import ROBOT, external_registry
from tests.lab.lab import BUSYBOX_IMAGE, Lab
from tests.lab.test_private_lab import Private, private_registry

pytestmark = pytest.mark.lab
UPSTREAM_PORT = 8593


def _bytes_sent(output: str) -> int:
    found = re.search(r"; (\d+) bytes sent", output)
    assert found, output
    return int(found.group(1))


@pytest.fixture
def private(lab: Lab, tmp_path: Path) -> Iterator[Private]:
    """A registry deployed by regwiz, with its front and accounts."""
    with private_registry(lab, tmp_path, "rwp-images-lab") as made:
        assert made.cli("deploy") == 0
        yield made


def test_images_push_keeps_digests_resends_nothing_and_nodes_pull_them(
        lab: Lab, private: Private, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with external_registry(lab, UPSTREAM_PORT, "images-lab-upstream") as upstream:
        # the upstream gets a two-platform image (the robot login may push there)
        layout = Layout(tmp_path / "layout")
        multi = layout.add("1.0", ["amd64", "arm64"], [4096, 200_000])
        oci = OciLayoutSource.directory(layout.root)
        login = BasicAuth(ROBOT, upstream.robot_password)
        seeded = copy_images(oci.images("team/multi"), oci, RegistryEndpoint(
            upstream.reference, tls_context(upstream.pki.ca_pem), login, basic_first=True))
        assert seeded.ok, seeded.images[0].message
        ca_file = tmp_path / "upstream-ca.crt"
        ca_file.write_bytes(upstream.pki.ca_pem)
        monkeypatch.setenv("REGWIZ_SOURCE_USERNAME", ROBOT)
        monkeypatch.setenv("REGWIZ_SOURCE_PASSWORD", upstream.robot_password)
        capsys.readouterr()
        ref = f"{upstream.reference}/team/multi:1.0"
        push = ["images", "push", "--plan", str(private.plan), "--source-ca", str(ca_file), ref]
        assert main(push) == 0
        first = capsys.readouterr().out
        assert main(push) == 0
        second = capsys.readouterr().out
    ours = RegistryEndpoint(private.address, tls_context(private.ca_pem),
                            BasicAuth("cluster", private.password("cluster")), basic_first=True)
    assert ours.manifest_digest("team/multi", "1.0") == multi.digest
    assert _bytes_sent(first) > 200_000 * 2
    assert _bytes_sent(second) == 0 and "already there" in second
    print(f"\nMEASURED images push of a 2-platform image: first run sent {_bytes_sent(first)} "
          f"bytes, second run {_bytes_sent(second)}")

    docker = lab["docker"]
    archive = tmp_path / "busybox.tar"
    docker.exec(["docker", "save", BUSYBOX_IMAGE, "-o", str(archive)])
    assert main(["images", "push", "--plan", str(private.plan), "--tar", str(archive)]) == 0
    _pull_and_run_on(docker, private, f"{private.address}/{BUSYBOX_IMAGE}")


def _pull_and_run_on(node: object, private: Private, reference: str) -> None:
    """Pull with the cluster account (a throwaway client config) and run the image."""
    from tests.lab.lab import LabHost

    assert isinstance(node, LabHost)
    certs = node.host_path(f"/etc/docker/certs.d/{private.address}")
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "ca.crt").write_bytes(private.ca_pem)
    config = f"/tmp/regwiz-images-lab-{private.port}"
    try:
        node.exec(["docker", "--config", config, "login", "-u", "cluster", "--password-stdin",
                   private.address], input=private.password("cluster").encode())
        node.exec(["docker", "--config", config, "pull", reference], timeout=120)
        ran = node.exec(["docker", "run", "--rm", reference, "echo", "pulled-and-ran"])
        assert b"pulled-and-ran" in ran.stdout
    finally:
        node.exec(["docker", "rmi", reference], check=False)
        node.exec(["rm", "-rf", config, str(f"/etc/docker/certs.d/{private.address}")],
                  check=False)
