"""Where images come from: a registry this machine can reach, a ``docker save`` archive, or an
OCI image layout directory. Each gives manifests (exact bytes, so digests survive the copy) and
blobs as streams; none is unpacked to disk.

A ``docker save`` archive of Docker before 25 holds the config and uncompressed layer tars with a
``manifest.json``; it becomes an OCI image manifest whose layers are those tars as they are
(``application/vnd.oci.image.layer.v1.tar``: their digests are the config's ``diff_ids``, so the
image ID stays the same). An archive from Docker 25 or later is an OCI layout inside the tar and
is read as one.
"""

from __future__ import annotations

import json
import ssl
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from app.errors import UsageError
from app.images.digests import sha256_digest
from app.images.endpoint import ImageTransferError, RegistryEndpoint
from app.images.references import ImageRef
from app.registry_api import BasicAuth, Manifest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
FULL_NAME = "io.containerd.image.name"
CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceImage:
    """One image to copy: where it is in its source, and the name it gets in our registry."""

    repository: str  # in the source ("library/busybox"; an archive's own key)
    reference: str  # tag or digest in the source
    target_repository: str
    target_tag: str
    shown: str  # how the user named it


class ImageSource(Protocol):
    where: str

    def manifest(self, repository: str, reference: str) -> Manifest: ...

    def blob(self, repository: str, digest: str) -> tuple[Iterator[bytes], int | None]: ...


# --- a registry --------------------------------------------------------------------------------


class RegistrySource:
    """Registries this machine reaches (one endpoint per host), trusting the system store plus
    ``extra_ca`` (a PEM, e.g. a lab or corporate upstream's CA)."""

    def __init__(self, extra_ca: bytes | None = None, login: BasicAuth | None = None) -> None:
        self.where = "registries"
        self.context = ssl.create_default_context()
        if extra_ca:
            try:
                self.context.load_verify_locations(cadata=extra_ca.decode("ascii"))
            except (ssl.SSLError, ValueError, UnicodeDecodeError):
                raise UsageError("--source-ca: not a PEM certificate") from None
        self.login = login
        self._endpoints: dict[str, RegistryEndpoint] = {}

    def endpoint(self, host: str) -> RegistryEndpoint:
        if host not in self._endpoints:
            self._endpoints[host] = RegistryEndpoint(host, self.context, self.login)
        return self._endpoints[host]

    def image(self, ref: ImageRef, target_repository: str | None = None) -> SourceImage:
        tag = ref.reference if not ref.is_digest else ref.reference.split(":", 1)[1][:12]
        return SourceImage(f"{ref.api_host}/{ref.repository}", ref.reference,
                           target_repository or ref.repository, tag, str(ref))

    def manifest(self, repository: str, reference: str) -> Manifest:
        host, path = repository.split("/", 1)
        return self.endpoint(host).get_manifest(path, reference)

    def blob(self, repository: str, digest: str) -> tuple[Iterator[bytes], int | None]:
        host, path = repository.split("/", 1)
        return self.endpoint(host).open_blob(path, digest)


# --- an OCI layout (a directory, or inside a tar) ----------------------------------------------


class _Files(Protocol):
    def read(self, name: str) -> bytes: ...

    def open(self, name: str) -> tuple[IO[bytes], int]: ...


class _Directory:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as error:
            raise UsageError(f"{self.root}: cannot read {name}: {error.strerror}") from None

    def open(self, name: str) -> tuple[IO[bytes], int]:
        path = self.root / name
        try:
            return path.open("rb"), path.stat().st_size
        except OSError as error:
            raise UsageError(f"{self.root}: cannot read {name}: {error.strerror}") from None


class _Tar:
    def __init__(self, archive: tarfile.TarFile, where: str) -> None:
        self.archive, self.where = archive, where
        self.names = {_clean(member.name): member for member in archive.getmembers()}

    def read(self, name: str) -> bytes:
        stream, _ = self.open(name)
        with stream:
            return stream.read()

    def open(self, name: str) -> tuple[IO[bytes], int]:
        member = self.names.get(_clean(name))
        while member is not None and (member.issym() or member.islnk()):
            # docker save links a layer seen twice to its first copy
            base = str(Path(_clean(member.name)).parent / member.linkname) if member.issym() \
                else member.linkname
            member = self.names.get(_clean(base))
        stream = self.archive.extractfile(member) if member is not None else None
        if member is None or stream is None:
            raise UsageError(f"{self.where}: {name} is missing from the archive",
                             "make it again with docker save, or check it was copied whole")
        return stream, member.size


class OciLayoutSource:
    """An OCI image layout: ``index.json`` names the images, ``blobs/sha256/`` holds the rest."""

    def __init__(self, files: _Files, where: str) -> None:
        self.files, self.where = files, where

    @classmethod
    def directory(cls, path: Path) -> OciLayoutSource:
        if not (path / "index.json").is_file():
            raise UsageError(f"--oci {path}: no index.json there, so not an OCI image layout",
                             "make one with skopeo copy ... oci:DIR:TAG, or name the right dir")
        return cls(_Directory(path), str(path))

    def images(self, repository: str | None) -> list[SourceImage]:
        """Every image ``index.json`` names; ``repository`` for those named by tag alone."""
        found = []
        for entry in _index_entries(self.files.read("index.json"), self.where):
            annotations = entry.get("annotations") or {}
            full = annotations.get(FULL_NAME) or ""
            name = annotations.get(REF_NAME) or ""
            target, tag = _target_of(full or name, repository, self.where)
            found.append(SourceImage("", str(entry["digest"]), target, tag, full or name))
        return found

    def manifest(self, repository: str, reference: str) -> Manifest:
        body = self.files.read(_blob_name(reference))
        data = _json_object(body, f"{self.where} {reference}")
        return Manifest(sha256_digest(body), str(data.get("mediaType") or OCI_MANIFEST), body)

    def blob(self, repository: str, digest: str) -> tuple[Iterator[bytes], int | None]:
        stream, size = self.files.open(_blob_name(digest))
        return _read_chunks(stream), size


# --- a docker save archive ---------------------------------------------------------------------


class DockerArchiveSource:
    """``docker save`` output: an OCI layout inside (Docker 25+), or the older format whose
    images are made into OCI manifests here."""

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        try:
            self.archive = tarfile.open(path)  # noqa: SIM115 - open while the copy reads it
        except (OSError, tarfile.TarError) as error:
            raise UsageError(f"--tar {path}: not a readable tar archive ({error})",
                             "make it with docker save IMAGE -o FILE") from None
        self.files = _Tar(self.archive, self.where)
        self.layout = OciLayoutSource(self.files, self.where) \
            if "index.json" in self.files.names and "manifest.json" not in self.files.names \
            else None
        self._made: dict[str, Manifest] = {}  # the manifests made for older-format images
        self._paths: dict[str, str] = {}  # digest -> member name of a config or layer tar

    def images(self, repository: str | None) -> list[SourceImage]:
        if self.layout is not None:
            return self.layout.images(repository)
        found = []
        for entry in _archive_entries(self.files.read("manifest.json"), self.where):
            manifest = self._make_manifest(entry)
            for name in entry.get("RepoTags") or [None]:
                target, tag = _target_of(name or "", repository, self.where)
                found.append(SourceImage("", manifest.digest, target, tag, name or target))
        return found

    def manifest(self, repository: str, reference: str) -> Manifest:
        if self.layout is not None:
            return self.layout.manifest(repository, reference)
        return self._made[reference]

    def blob(self, repository: str, digest: str) -> tuple[Iterator[bytes], int | None]:
        if self.layout is not None:
            return self.layout.blob(repository, digest)
        stream, size = self.files.open(self._paths[digest])
        return _read_chunks(stream), size

    def _make_manifest(self, entry: dict[str, Any]) -> Manifest:
        """An OCI manifest for one image of the older format: its layer tars as they are."""
        config_name = str(entry.get("Config") or "")
        config = self.files.read(config_name)
        diff_ids = _json_object(config, config_name).get("rootfs", {})
        ids = diff_ids.get("diff_ids") if isinstance(diff_ids, dict) else None
        layers = [str(name) for name in entry.get("Layers") or []]
        if not isinstance(ids, list) or len(ids) != len(layers):
            raise UsageError(f"{self.where}: {config_name} does not list one diff_id per layer")
        config_digest = sha256_digest(config)
        self._paths[config_digest] = config_name
        descriptors = []
        for diff_id, layer in zip(ids, layers, strict=True):
            self._paths[str(diff_id)] = layer
            _, size = self.files.open(layer)
            descriptors.append({"mediaType": OCI_LAYER_TAR, "digest": str(diff_id), "size": size})
        body = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": descriptors,
        }, separators=(",", ":")).encode()
        manifest = Manifest(sha256_digest(body), OCI_MANIFEST, body)
        self._made[manifest.digest] = manifest
        return manifest


# --- helpers ----------------------------------------------------------------------------------


def _clean(name: str) -> str:
    return name.removeprefix("./")


def _blob_name(digest: str) -> str:
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64 or not all(
            c in "0123456789abcdef" for c in hex_digest):
        raise ImageTransferError(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hex_digest}"


def _read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(CHUNK):
            yield chunk


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise UsageError(f"{what}: not valid JSON") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what}: not a JSON object")
    return data


def _index_entries(body: bytes, where: str) -> list[dict[str, Any]]:
    entries = _json_object(body, f"{where} index.json").get("manifests")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{where}: index.json lists no images")
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)]


def _archive_entries(body: bytes, where: str) -> list[dict[str, Any]]:
    try:
        entries = json.loads(body)
    except ValueError:
        raise UsageError(f"{where}: manifest.json is not valid JSON") from None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{where}: manifest.json lists no images")
    return [e for e in entries if isinstance(e, dict)]


def _target_of(name: str, repository: str | None, where: str) -> tuple[str, str]:
    """(repository, tag) in our registry for an image called ``name`` in an archive: a full
    name keeps its path without the registry; a bare tag needs ``--repository``."""
    from app.images.references import parse_reference

    if name and ("/" in name or ":" in name) and not name.startswith(":"):
        ref = parse_reference(name)
        return repository or ref.repository, ref.reference
    if repository is None:
        raise UsageError(f"{where}: an image is named only {name!r} (or not at all)",
                         "say which repository it goes to with --repository NAME")
    return repository, name or "latest"
