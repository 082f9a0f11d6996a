"""Copy images into the plan's registry: manifests byte for byte (so every digest, also of a
multi-platform index and each of its platforms, is the source's), blobs streamed and hashed,
several at once, and only those the registry does not already hold. After each image its tag is
read back from the registry and must name the source's digest.

Order matters for a registry that checks references: blobs first, then each platform's manifest
(by digest), then the index or manifest under its tag.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from app.errors import RegwizError
from app.images.digests import HashingReader
from app.images.endpoint import ImageTransferError, RegistryEndpoint
from app.images.sources import ImageSource, SourceImage
from app.registry_api import Manifest
from app.status import format_bytes

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
DEFAULT_PARALLEL = 4


@dataclass(frozen=True)
class ImageEvent:
    """Progress of one image: ``what`` is "manifest", "blob", "skipped", "done" or "failed"."""

    image: str
    what: str
    detail: str = ""
    size: int = 0


@dataclass
class ImageResult:
    shown: str  # the source as the user named it
    target: str  # REGISTRY/REPOSITORY:TAG
    digest: str = ""
    platforms: int = 1
    blobs_sent: int = 0
    blobs_present: int = 0
    bytes_sent: int = 0
    ok: bool = False
    message: str = ""
    hint: str | None = None


@dataclass
class ImagesReport:
    images: list[ImageResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(image.ok for image in self.images)

    @property
    def bytes_sent(self) -> int:
        return sum(image.bytes_sent for image in self.images)


Progress = Callable[[ImageEvent], None]


@dataclass
class _Blob:
    digest: str
    size: int


@dataclass
class _Copy:
    """One image's copy in progress: what it still needs, and its tally."""

    image: SourceImage
    result: ImageResult
    top: Manifest | None = None
    children: list[Manifest] = field(default_factory=list)
    blobs: list[_Blob] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def copy_images(images: Iterable[SourceImage], source: ImageSource, target: RegistryEndpoint,
                *, parallel: int = DEFAULT_PARALLEL, on_progress: Progress | None = None,
                should_stop: Callable[[], bool] | None = None) -> ImagesReport:
    """Copy every image; a failed image never stops the others. Never raises for a copy's
    failure: it is in the report."""
    notify = on_progress or (lambda _event: None)
    stop = should_stop or (lambda: False)
    started = time.monotonic()
    copies = [_Copy(image, ImageResult(image.shown, target_name(target, image)))
              for image in images]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for copy in copies:
            if stop():
                copy.result.message = "cancelled"
                continue
            _run_one(copy, source, target, pool, notify, stop)
    return ImagesReport([copy.result for copy in copies], time.monotonic() - started)


def _run_one(copy: _Copy, source: ImageSource, target: RegistryEndpoint, pool: ThreadPoolExecutor,
             notify: Progress, stop: Callable[[], bool]) -> None:
    result, image = copy.result, copy.image
    try:
        _read_manifests(copy, source)
        notify(ImageEvent(result.target, "manifest", copy.top.digest if copy.top else ""))
        futures = [pool.submit(_copy_blob, copy, blob, source, target, notify, stop)
                   for blob in copy.blobs]
        for future in futures:
            future.result()
        _put_manifests(copy, target)
        _check_tag(copy, target)
        result.ok = True
        result.message = (f"{result.blobs_sent} blob(s) sent ({format_bytes(result.bytes_sent)}), "
                          f"{result.blobs_present} already there")
        notify(ImageEvent(result.target, "done", result.message))
    except RegwizError as error:
        result.message, result.hint = error.message, error.hint
        notify(ImageEvent(result.target, "failed", error.message))
    except (ValueError, KeyError, TypeError) as error:  # a manifest that is not what it says
        result.message = f"{image.shown}: a manifest regwiz cannot read ({error!r})"
        notify(ImageEvent(result.target, "failed", result.message))


def _read_manifests(copy: _Copy, source: ImageSource) -> None:
    image = copy.image
    top = source.manifest(image.repository, image.reference)
    copy.top, copy.result.digest = top, top.digest
    manifests = [top]
    if top.media_type in INDEX_TYPES:
        children = [source.manifest(image.repository, str(entry["digest"]))
                    for entry in _json(top)["manifests"]]
        copy.children, manifests = children, children
        copy.result.platforms = len(children)
    seen: set[str] = set()
    for manifest in manifests:
        for blob in _blobs_of(manifest):
            if blob.digest not in seen:
                seen.add(blob.digest)
                copy.blobs.append(blob)


def _blobs_of(manifest: Manifest) -> list[_Blob]:
    data = _json(manifest)
    entries = [data["config"], *data.get("layers", [])]
    return [_Blob(str(entry["digest"]), int(entry.get("size", 0))) for entry in entries]


def _copy_blob(copy: _Copy, blob: _Blob, source: ImageSource, target: RegistryEndpoint,
               notify: Progress, stop: Callable[[], bool]) -> None:
    repository = copy.image.target_repository
    if stop():
        raise RegwizError("cancelled")
    if target.has_blob(repository, blob.digest):
        with copy.lock:
            copy.result.blobs_present += 1
        notify(ImageEvent(copy.result.target, "skipped", blob.digest, blob.size))
        return
    chunks, length = source.blob(copy.image.repository, blob.digest)
    size = length if length is not None else blob.size
    reader = HashingReader(iter(chunks))
    notify(ImageEvent(copy.result.target, "blob", blob.digest, size))
    target.upload_blob(repository, blob.digest, reader, size)
    if reader.digest != blob.digest or reader.sent != size:
        raise ImageTransferError(
            f"blob {blob.digest[:19]} of {copy.image.shown} read as {reader.digest[:19]} "
            f"({reader.sent} bytes, expected {size})", "the source is damaged or changed")
    with copy.lock:
        copy.result.blobs_sent += 1
        copy.result.bytes_sent += reader.sent


def _put_manifests(copy: _Copy, target: RegistryEndpoint) -> None:
    repository = copy.image.target_repository
    for child in copy.children:
        target.put_manifest(repository, child.digest, child)
    assert copy.top is not None
    target.put_manifest(repository, copy.image.target_tag, copy.top)


def _check_tag(copy: _Copy, target: RegistryEndpoint) -> None:
    """Read the tag back: the registry must now name exactly the source's digest."""
    assert copy.top is not None
    found = target.manifest_digest(copy.image.target_repository, copy.image.target_tag)
    if found != copy.top.digest:
        raise ImageTransferError(
            f"{copy.result.target} reads back as {found}, not the source's {copy.top.digest}",
            "something else pushed to this tag meanwhile: run the copy again")


def _json(manifest: Manifest) -> dict[str, Any]:
    data = json.loads(manifest.body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def target_name(target: RegistryEndpoint, image: SourceImage) -> str:
    """REGISTRY/REPOSITORY:TAG: how reports and progress name an image."""
    return f"{target.host}/{image.target_repository}:{image.target_tag}"
