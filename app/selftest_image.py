"""A tiny self-test image that regwiz builds offline, in memory, for the push/pull proof.

The image is a ``docker save`` ("docker-archive") tar: ``manifest.json``, ``repositories``, one
config JSON and one layer tar holding ``/regwiz-selftest`` (a text file with a random marker).
Nothing is downloaded: any dockerd can ``docker load`` it, any registry can store it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import tarfile
from dataclasses import dataclass

SELFTEST_REPOSITORY = "regwiz/selftest"
SELFTEST_FILE = "regwiz-selftest"
# A fixed timestamp keeps the layer bytes reproducible; only the marker differs between images.
_EPOCH = "1970-01-01T00:00:00Z"
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Docker's and Go's names for the CPU architectures a node may report.
_ARCH_ALIASES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "arm": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class SelftestImage:
    """The archive plus what a verifier needs to recognise the image again."""

    reference: str  # REGISTRY/regwiz/selftest:TAG
    repository: str  # REGISTRY/regwiz/selftest
    tag: str
    marker: str
    image_id: str  # "sha256:<hex of the config>", what ``docker images`` calls the image ID
    layer_diff_id: str  # "sha256:<hex of the uncompressed layer tar>"
    archive: bytes  # the docker-archive tar for ``images.load``

    @property
    def repository_path(self) -> str:
        """The repository as the registry's API names it (no registry host)."""
        return SELFTEST_REPOSITORY


# The one tag every run pushes to when the registry cannot delete: each run replaces it
# instead of leaving a new tag behind (runs on one registry are then one at a time).
REUSED_SELFTEST_TAG = "check"


def new_selftest_tag() -> str:
    """A random tag, so concurrent or repeated runs never see each other's images."""
    return f"check-{secrets.token_hex(6)}"


def normalize_architecture(machine: str) -> str:
    """Map ``uname -m`` / dockerd's Arch to the OCI name (x86_64 → amd64); unknown names pass."""
    return _ARCH_ALIASES.get(machine.strip().lower(), machine.strip().lower() or "amd64")


def build_selftest_image(
    registry_reference: str,
    *,
    tag: str | None = None,
    marker: str | None = None,
    architecture: str = "amd64",
) -> SelftestImage:
    """Build the docker-archive tar for ``<registry_reference>/regwiz/selftest:<tag>``.

    ``architecture`` should be the pushing daemon's (containerd refuses a single-platform image
    of another architecture when it unpacks).
    """
    tag = tag or new_selftest_tag()
    if not _TAG_RE.match(tag):
        raise ValueError(f"invalid image tag {tag!r}: use letters, digits, '_', '.', '-' (max 128)")
    marker = marker or secrets.token_hex(16)
    repository = f"{registry_reference}/{SELFTEST_REPOSITORY}"
    layer = _layer_tar(marker)
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = _config_json(marker, f"sha256:{layer_hex}", normalize_architecture(architecture))
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = [
        {
            "Config": f"{config_hex}.json",
            "RepoTags": [f"{repository}:{tag}"],
            "Layers": [f"{layer_hex}/layer.tar"],
        }
    ]
    members = {
        f"{config_hex}.json": config,
        f"{layer_hex}/VERSION": b"1.0",
        f"{layer_hex}/json": json.dumps({"id": layer_hex, "created": _EPOCH}).encode(),
        f"{layer_hex}/layer.tar": layer,
        "manifest.json": json.dumps(manifest).encode(),
        "repositories": json.dumps({repository: {tag: layer_hex}}).encode(),
    }
    return SelftestImage(
        reference=f"{repository}:{tag}",
        repository=repository,
        tag=tag,
        marker=marker,
        image_id=f"sha256:{config_hex}",
        layer_diff_id=f"sha256:{layer_hex}",
        archive=_tar(members, directories=[layer_hex]),
    )


def _layer_tar(marker: str) -> bytes:
    content = f"regwiz self-test image\nmarker: {marker}\n".encode()
    return _tar({SELFTEST_FILE: content})


def _config_json(marker: str, diff_id: str, architecture: str) -> bytes:
    config = {
        "architecture": architecture,
        "os": "linux",
        "created": _EPOCH,
        "config": {
            "Labels": {"io.regwiz.selftest": marker},
            # No shell in the image: this command only documents what the image holds.
            "Cmd": [f"/{SELFTEST_FILE}"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": _EPOCH, "created_by": "regwiz self-test (built in memory)"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _tar(files: dict[str, bytes], directories: list[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for directory in directories or []:
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
