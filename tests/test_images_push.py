"""``regwiz images push`` against real Distribution registries on 127.0.0.1 (each with its own CA;
the target with htpasswd auth): OCI layouts, a multi-platform index kept whole, a docker save
archive, re-runs that send nothing, and damaged input refused. The lab test does the same
through the nginx front of a deployed registry and pulls the results on nodes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.htpasswd import htpasswd_line
from app.images.copy import copy_images
from app.images.endpoint import RegistryEndpoint
from app.images.references import parse_reference
from app.images.sources import DockerArchiveSource, OciLayoutSource, RegistrySource
from app.registry_api import BasicAuth, tls_context
from app.selftest_image import build_selftest_image
from tests.deploy_helpers import LocalRegistry, local_registry, make_pki
from tests.image_layouts import Layout

LOGIN = BasicAuth("operator", "operator-password")


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[tuple[LocalRegistry, LocalRegistry]]:
    """(upstream, target): two registries with CAs of their own; the target needs a login."""
    htpasswd = htpasswd_line(LOGIN.username, LOGIN.password, rounds=4) + "\n"
    with local_registry(tmp_path / "up", make_pki(["127.0.0.1"], cn="upstream CA")) as up, \
            local_registry(tmp_path / "ours", make_pki(["127.0.0.1"], cn="our CA"),
                           htpasswd=htpasswd) as ours:
        yield up, ours


def endpoint(registry: LocalRegistry, login: BasicAuth | None = None) -> RegistryEndpoint:
    host = registry.base.removeprefix("https://")
    return RegistryEndpoint(host, tls_context(registry.ca_path), login, basic_first=True)


def test_a_multi_platform_index_goes_through_a_registry_whole_and_a_rerun_sends_nothing(
        registries: tuple[LocalRegistry, LocalRegistry], tmp_path: Path) -> None:
    upstream, ours = registries
    layout = Layout(tmp_path / "layout")
    multi = layout.add("1.0", ["amd64", "arm64"], [2000, 70_000])
    single = layout.add("slim", ["amd64"], [3000])
    oci = OciLayoutSource.directory(layout.root)
    seeded = copy_images(oci.images("team/app"), oci, endpoint(upstream))
    assert seeded.ok, [image.message for image in seeded.images]

    source = RegistrySource(upstream.ca_path.read_bytes())
    host = upstream.base.removeprefix("https://")
    images = [source.image(parse_reference(f"{host}/team/app:{tag}")) for tag in ("1.0", "slim")]
    first = copy_images(images, source, endpoint(ours, LOGIN), parallel=3)
    assert first.ok, [image.message for image in first.images]
    assert [image.digest for image in first.images] == [multi.digest, single.digest]
    assert first.images[0].platforms == 2 and first.images[0].blobs_sent == 6
    target = endpoint(ours, LOGIN)
    assert target.manifest_digest("team/app", "1.0") == multi.digest
    index = json.loads(target.get_manifest("team/app", "1.0").body)
    for child in index["manifests"]:  # every platform is there under its own digest
        assert target.manifest_digest("team/app", child["digest"]) == child["digest"]

    again = copy_images(images, source, endpoint(ours, LOGIN))
    assert again.ok and again.bytes_sent == 0
    assert all(image.blobs_sent == 0 and image.blobs_present > 0 for image in again.images)


def test_a_docker_save_archive_keeps_its_image_id(
        registries: tuple[LocalRegistry, LocalRegistry], tmp_path: Path) -> None:
    _, ours = registries
    image = build_selftest_image("example.internal:5000", tag="saved")
    archive = tmp_path / "image.tar"
    archive.write_bytes(image.archive)
    source = DockerArchiveSource(archive)
    images = source.images(None)
    assert [(i.target_repository, i.target_tag) for i in images] == [("regwiz/selftest", "saved")]
    report = copy_images(images, source, endpoint(ours, LOGIN))
    assert report.ok, report.images[0].message
    manifest = json.loads(endpoint(ours, LOGIN).get_manifest("regwiz/selftest", "saved").body)
    assert manifest["config"]["digest"] == image.image_id  # what docker images calls its ID
    assert [layer["digest"] for layer in manifest["layers"]] == [image.layer_diff_id]


def test_a_damaged_blob_is_refused_and_nothing_is_tagged(
        registries: tuple[LocalRegistry, LocalRegistry], tmp_path: Path) -> None:
    _, ours = registries
    layout = Layout(tmp_path / "layout")
    layout.add("broken", ["amd64"], [5000])
    manifest_path = next(p for p in (tmp_path / "layout" / "blobs" / "sha256").iterdir()
                         if p.stat().st_size > 5000)  # the layer
    data = bytearray(manifest_path.read_bytes())
    data[-1] ^= 0xFF
    manifest_path.write_bytes(bytes(data))
    oci = OciLayoutSource.directory(layout.root)
    report = copy_images(oci.images("team/broken"), oci, endpoint(ours, LOGIN))
    assert not report.ok
    assert "read as" in report.images[0].message or "HTTP 400" in report.images[0].message
    assert endpoint(ours, LOGIN).manifest_digest("team/broken", "broken") is None


def test_without_the_push_login_the_registry_refuses_with_a_hint(
        registries: tuple[LocalRegistry, LocalRegistry], tmp_path: Path) -> None:
    _, ours = registries
    layout = Layout(tmp_path / "layout")
    layout.add("x", ["amd64"], [100])
    oci = OciLayoutSource.directory(layout.root)
    report = copy_images(oci.images("team/x"), oci, endpoint(ours, BasicAuth("operator", "no")))
    assert not report.ok and "HTTP 401" in report.images[0].message
    assert report.images[0].hint and "login" in report.images[0].hint
