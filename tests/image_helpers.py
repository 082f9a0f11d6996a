"""Push images with chosen layers and creation times, and multi-platform OCI indexes, with raw
registry API calls (a model: tests/deploy_helpers.push_tiny_image)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.plan import new_plan, save_plan

if TYPE_CHECKING:
    from tests.deploy_helpers import LocalRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest_of(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(frozen=True)
class Pushed:
    digest: str
    size: int  # the manifest's own size
    blob_bytes: int  # config + layers


@dataclass
class Pusher:
    base: str  # https://HOST:PORT
    ca_path: Path
    auth_header: str | None = None

    def call(self, method: str, path: str, body: bytes = b"",
             extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        host, port = self.base.removeprefix("https://").rsplit(":", 1)
        context = ssl.create_default_context(cafile=str(self.ca_path))
        headers = {"Authorization": self.auth_header} if self.auth_header else {}
        connection = http.client.HTTPSConnection(host.strip("[]"), int(port), context=context,
                                                 timeout=15)
        try:
            connection.request(method, path, body=body, headers={**headers, **(extra or {})})
            answer = connection.getresponse()
            data = answer.read()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data
        finally:
            connection.close()

    def upload(self, repository: str, blob: bytes) -> str:
        digest = digest_of(blob)
        status, headers, _ = self.call("POST", f"/v2/{repository}/blobs/uploads/")
        assert status == 202, status
        location = headers.get("location", "")
        if "://" in location:
            location = "/" + location.split("://", 1)[1].split("/", 1)[1]
        joiner = "&" if "?" in location else "?"
        status, _, _ = self.call("PUT", f"{location}{joiner}digest={digest}", blob,
                                 {"Content-Type": "application/octet-stream"})
        assert status == 201, status
        return digest

    def put_manifest(self, repository: str, reference: str, manifest: bytes,
                     media_type: str) -> str:
        status, _, body = self.call("PUT", f"/v2/{repository}/manifests/{reference}", manifest,
                                    {"Content-Type": media_type})
        assert status == 201, (status, body[:200])
        return digest_of(manifest)

    def image(self, repository: str, tag: str | None, layers: list[bytes],
              created: str | None, *, arch: str = "amd64") -> Pushed:
        """An image of ``layers`` whose config says ``created``; tagged ``tag`` (None: pushed
        by digest only, e.g. an index's child)."""
        config_data: dict[str, object] = {
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(x) for x in layers]}}
        if created is not None:
            config_data["created"] = created
        config = json.dumps(config_data).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": self.upload(repository, config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": self.upload(repository, layer), "size": len(layer)}
                       for layer in layers],
        }).encode()
        digest = self.put_manifest(repository, tag or digest_of(manifest), manifest,
                                   OCI_MANIFEST)
        return Pushed(digest, len(manifest), len(config) + sum(len(x) for x in layers))

    def index(self, repository: str, tag: str, children: list[tuple[Pushed, str]]) -> Pushed:
        """An OCI index of ``children`` (each with its architecture)."""
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest,
                           "size": child.size, "platform": {"architecture": arch, "os": "linux"}}
                          for child, arch in children],
        }).encode()
        digest = self.put_manifest(repository, tag, manifest, OCI_INDEX)
        return Pushed(digest, len(manifest), sum(child.blob_bytes for child, _ in children))

    def head(self, repository: str, reference: str) -> str | None:
        accept = ", ".join([OCI_INDEX, OCI_MANIFEST,
                            "application/vnd.docker.distribution.manifest.v2+json"])
        status, headers, _ = self.call("HEAD", f"/v2/{repository}/manifests/{reference}",
                                       extra={"Accept": accept})
        return headers.get("docker-content-digest") if status == 200 else None


def local_plan(path: Path, registry: LocalRegistry, **registry_keys: object) -> Path:
    """A plan for the local registry: host "local", no auth, delete enabled, its data dir."""
    plan = new_plan(path)
    plan.certificate.directory = str(registry.ca_path.parent)
    plan.registry.host = "local"
    plan.registry.sudo = False
    plan.registry.address = "127.0.0.1"
    plan.registry.port = int(registry.base.rsplit(":", 1)[1])
    plan.registry.auth = "none"
    plan.registry.delete_enabled = True
    plan.registry.data_dir = str(registry.ca_path.parent.parent / "data")
    for key, value in registry_keys.items():
        setattr(plan.registry, key, value)
    return save_plan(plan)
