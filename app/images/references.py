"""Image references as users type them (``busybox``, ``registry.k8s.io/pause:3.9``,
``ghcr.io/org/app@sha256:...``), split into registry, repository and tag or digest the way Docker
reads them: no registry part means docker.io, and a one-word docker.io name lives in ``library/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import UsageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"  # where docker.io's API really answers

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "docker.io", "registry.k8s.io", "198.18.0.9:5000"
    repository: str  # "library/busybox", "org/app"
    reference: str  # a tag ("1.36") or a digest ("sha256:...")

    @property
    def is_digest(self) -> bool:
        return self.reference.startswith("sha256:")

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        separator = "@" if self.is_digest else ":"
        return f"{self.registry}/{self.repository}{separator}{self.reference}"


def parse_reference(text: str) -> ImageRef:
    """``text`` as Docker reads an image reference; UsageError naming what is wrong."""
    value = text.strip()
    name, reference = _split_reference(value)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPOSITORY.fullmatch(path):
        raise UsageError(f"{text!r} is not an image reference",
                         "write it as [REGISTRY/]NAME[:TAG|@sha256:DIGEST], e.g. "
                         "registry.k8s.io/pause:3.9")
    return ImageRef(registry, path, reference)


def _split_reference(value: str) -> tuple[str, str]:
    if "@" in value:
        name, _, digest = value.partition("@")
        if not _DIGEST.fullmatch(digest):
            raise UsageError(f"{value!r}: a digest is sha256: and 64 hex digits")
        return name, digest
    last = value.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = value.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise UsageError(f"{value!r}: {tag!r} is not a valid tag")
        return name, tag
    return value, "latest"
