"""The in-memory self-test image is a valid docker-archive (checked with the real skopeo)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from app.selftest_image import (
    build_selftest_image,
    new_selftest_tag,
    normalize_architecture,
)


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_archive_layout_and_digests_are_consistent() -> None:
    image = build_selftest_image("198.18.6.2:8443", tag="t1", marker="abc123")
    files = members(image.archive)
    manifest = json.loads(files["manifest.json"])[0]
    assert manifest["RepoTags"] == ["198.18.6.2:8443/regwiz/selftest:t1"]
    config = files[manifest["Config"]]
    assert image.image_id == "sha256:" + hashlib.sha256(config).hexdigest()
    layer = files[manifest["Layers"][0]]
    assert image.layer_diff_id == "sha256:" + hashlib.sha256(layer).hexdigest()
    assert json.loads(config)["rootfs"]["diff_ids"] == [image.layer_diff_id]
    layer_files = members(layer)
    assert b"marker: abc123" in layer_files["regwiz-selftest"]
    assert image.reference == "198.18.6.2:8443/regwiz/selftest:t1"


def test_each_image_is_unique_unless_marker_and_tag_are_fixed() -> None:
    first = build_selftest_image("reg:5000")
    second = build_selftest_image("reg:5000")
    assert first.tag != second.tag and first.image_id != second.image_id
    again = build_selftest_image("reg:5000", tag="x", marker="m")
    assert again.archive == build_selftest_image("reg:5000", tag="x", marker="m").archive


def test_random_tags_are_valid_and_bad_tags_rejected() -> None:
    assert new_selftest_tag().startswith("check-")
    with pytest.raises(ValueError, match="invalid image tag"):
        build_selftest_image("reg", tag="bad tag")


@pytest.mark.parametrize(
    ("machine", "expected"),
    [("x86_64", "amd64"), ("aarch64", "arm64"), ("AMD64", "amd64"), ("s390x", "s390x")],
)
def test_architecture_names(machine: str, expected: str) -> None:
    assert normalize_architecture(machine) == expected


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_reads_and_copies_the_archive(tmp_path: Path) -> None:
    image = build_selftest_image("198.18.6.2:8443", tag="t2", architecture="x86_64")
    tar_path = tmp_path / "selftest.tar"
    tar_path.write_bytes(image.archive)
    inspected = subprocess.run(
        ["skopeo", "inspect", f"docker-archive:{tar_path}"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(inspected.stdout)
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Labels"]["io.regwiz.selftest"] == image.marker
    # A copy to an OCI layout re-reads every blob and checks every digest.
    subprocess.run(
        ["skopeo", "copy", f"docker-archive:{tar_path}", f"oci:{tmp_path / 'oci'}:t2"],
        capture_output=True,
        check=True,
    )
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    assert len(index["manifests"]) == 1
