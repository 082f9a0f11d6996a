"""OCI image layouts for tests: small single- and multi-platform images with random layers, written
as a directory the way ``skopeo copy ... oci:DIR:TAG`` writes one."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class LayoutImage:
    tag: str
    digest: str  # of the index (multi-platform) or the manifest
    platforms: int


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(size: int) -> bytes:
    """An uncompressed layer tar holding one file of ``size`` random bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        content = os.urandom(size)
        info = tarfile.TarInfo("data.bin")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.entries: list[dict[str, object]] = []

    def blob(self, data: bytes) -> dict[str, object]:
        digest = _digest(data)
        (self.root / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    def manifest(self, architecture: str, layer_sizes: list[int]) -> dict[str, object]:
        layers = [_layer(size) for size in layer_sizes]
        config = json.dumps({"architecture": architecture, "os": "linux",
                             "created": "2026-01-01T00:00:00Z",
                             "rootfs": {"type": "layers",
                                        "diff_ids": [_digest(layer) for layer in layers]}}
                            ).encode()
        body = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **self.blob(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **self.blob(layer)}
                       for layer in layers],
        }).encode()
        return {"mediaType": OCI_MANIFEST, **self.blob(body),
                "platform": {"architecture": architecture, "os": "linux"}}

    def add(self, tag: str, architectures: list[str], layer_sizes: list[int]) -> LayoutImage:
        children = [self.manifest(arch, layer_sizes) for arch in architectures]
        if len(children) == 1:
            entry = {key: value for key, value in children[0].items() if key != "platform"}
        else:
            index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                "manifests": children}).encode()
            entry = {"mediaType": OCI_INDEX, **self.blob(index)}
        self.entries.append({**entry, "annotations": {"org.opencontainers.image.ref.name": tag}})
        (self.root / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}))
        return LayoutImage(tag, str(entry["digest"]), len(children))
