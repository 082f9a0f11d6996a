"""The registry image pinned by digest (``registry.image_digest``).

A tag such as ``registry:2`` names whatever was last pulled, loaded or built under it on the
registry host. The first successful deploy records the exact image the registry runs: its
repository digest (``registry@sha256:…``, the manifest digest a registry serves, which a pull by
digest brings back), or its image ID (the digest of its config) when it has none — images built
or loaded locally, as in the test lab, have no repository digest. Later deploys run that image,
whatever the tag says now; only ``regwiz upgrade`` moves the pin.

Pure functions over ``docker image inspect`` data; the deploy and status use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.errors import UsageError
from app.images.references import DOCKER_HUB, parse_reference

REPO_DIGEST = "repository digest"
IMAGE_ID = "image ID"


def familiar_repository(image: str) -> str:
    """The repository as Docker writes it in ``RepoDigests``: ``registry`` for
    ``docker.io/library/registry:2``, ``host:5000/team/app`` for a registry of one's own."""
    try:
        ref = parse_reference(image)
    except UsageError:
        return image.split("@", 1)[0].rsplit(":", 1)[0]
    if ref.registry != DOCKER_HUB:
        return f"{ref.registry}/{ref.repository}"
    return ref.repository.removeprefix("library/")


@dataclass(frozen=True)
class ImageFacts:
    """What ``docker image inspect`` says about one image that matters for the pin."""

    image_id: str  # "sha256:…" of the config
    repo_digests: tuple[str, ...] = ()  # "registry@sha256:…", one per repository it came from
    #: the image's ``Config`` (entrypoint, command, ...): which Distribution it holds
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> ImageFacts:
        return cls(str(attrs.get("Id") or ""), tuple(attrs.get("RepoDigests") or ()),
                   dict(attrs.get("Config") or {}))

    def pin_for(self, image: str) -> str:
        """The pin to record when this image runs as ``image``: its repository digest for that
        repository, else its image ID (built or loaded locally: no registry ever served it)."""
        prefix = familiar_repository(image) + "@"
        for entry in self.repo_digests:
            if entry.startswith(prefix):
                return entry[len(prefix):]
        return self.image_id

    def matches(self, pin: str) -> bool:
        """This image is the pinned one (by image ID or by any repository digest)."""
        return pin == self.image_id or any(entry.endswith("@" + pin)
                                           for entry in self.repo_digests)

    def pin_kind(self, pin: str) -> str:
        return IMAGE_ID if pin == self.image_id else REPO_DIGEST

    def run_reference(self, image: str, pin: str) -> str:
        """What ``docker run`` gets for the pinned image: ``repo@digest`` when that names it,
        else its image ID (never the tag, which may have moved)."""
        prefix = familiar_repository(image) + "@"
        if prefix + pin in self.repo_digests:
            return prefix + pin
        return self.image_id


def lookup_references(image: str, pin: str) -> list[str]:
    """Where Docker finds the pinned image on a host: by ``repo@digest`` (a repository digest)
    or by its ID (an image ID); which one it is shows only once found, so both are tried."""
    return [f"{familiar_repository(image)}@{pin}", pin]


def moved_note(image: str, where: str, pin: str, tag_id: str | None) -> str:
    """The line a deploy shows when ``image`` on the host no longer is the pinned image."""
    if tag_id is None:
        return (f"{image} is not on {where}; the registry runs the pinned image {short(pin)} "
                "(registry.image_digest)")
    return (f"the tag {image} on {where} moved to {short(tag_id)}; the registry keeps running "
            f"the pinned image {short(pin)} (registry.image_digest). To run the new one: "
            f"regwiz upgrade --plan FILE --image {image}")


def pin_detail(image: str, pin: str | None) -> str:
    """The dry run's line: which image will run."""
    if pin is None:
        return (f"not pinned yet: runs what {image} names now, and records it as "
                "registry.image_digest once the deploy succeeded")
    return (f"pinned: runs {pin} (registry.image_digest) whatever {image} names now; "
            "regwiz upgrade moves the pin")


def short(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits, as ``docker images`` shows IDs."""
    return digest[:19]
