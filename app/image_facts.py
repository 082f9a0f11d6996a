"""What each tag of a repository is: its manifest digest, the blobs it uses and when the image
was made, read from the registry API (never by walking the registry's directory).

Manifests are content-addressed, so what is learnt from one (its blobs and their sizes, its
children, its config's ``created``) never changes: it is kept in a JSON cache next to the plan,
keyed by digest, and a later run only fetches the manifests it has not seen. A run costs one
``HEAD`` per tag (tags move) plus a ``GET`` per new manifest and per new image config.

Used by ``regwiz status`` (the number of tags and the unique size of each repository) and by
``regwiz prune`` (which tags are the newest).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import ssl
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import RegwizError

if TYPE_CHECKING:
    from app.plan import Plan
    from app.registry_api import BasicAuth, Manifest

CACHE_NAME = "manifest-cache.json"
CACHE_VERSION = 1
MAX_CACHE_ENTRIES = 20_000
PARALLEL_REQUESTS = 8
TAG_GONE = "the tag is gone"

INDEX_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})
IMAGE_TYPES = frozenset({
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
})


@dataclass
class ManifestFacts:
    """What one manifest says, for good (it is content-addressed)."""

    digest: str
    media_type: str
    #: config and layer digests -> size (an index: none of its own; see ``children``)
    blobs: dict[str, int] = field(default_factory=dict)
    #: an index's child manifests (digests)
    children: list[str] = field(default_factory=list)
    #: the image config's ``created`` (ISO 8601, UTC), None when it has none
    created: str | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestFacts:
        return cls(str(data["digest"]), str(data["media_type"]),
                   {str(k): int(v) for k, v in dict(data.get("blobs") or {}).items()},
                   [str(c) for c in data.get("children") or []],
                   data.get("created") if isinstance(data.get("created"), str) else None)


@dataclass
class TagFacts:
    """One tag: the manifest it points at now, what that manifest uses, when it was made."""

    tag: str
    digest: str | None = None
    created: str | None = None  # ISO 8601 UTC; an index: the newest of its children's
    #: the manifests deleting this tag's digest would touch: its own and an index's children
    manifests: list[str] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)  # config + layers (an index: children's)
    error: str | None = None

    @property
    def created_at(self) -> dt.datetime | None:
        return parse_created(self.created)


@dataclass
class RepositoryFacts:
    name: str
    tags: list[TagFacts] = field(default_factory=list)
    error: str | None = None

    @property
    def unique_bytes(self) -> int:
        """The size of the distinct blobs (configs and layers) its tags use: a layer shared
        by several tags counts once."""
        blobs: dict[str, int] = {}
        for tag in self.tags:
            blobs.update(tag.blobs)
        return sum(blobs.values())

    @property
    def unsized_tags(self) -> int:
        """Tags whose size is not known (their manifest could not be read)."""
        return sum(1 for tag in self.tags if tag.error is not None)


# --- creation times -------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$")


def parse_created(text: object) -> dt.datetime | None:
    """An image config's ``created`` (RFC 3339, nanoseconds allowed) as an aware datetime."""
    if not isinstance(text, str):
        return None
    match = _RFC3339.match(text.strip())
    if match is None:
        return None
    date, time, fraction, zone = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z", "z") else zone
    if len(offset) == 5:  # +0900
        offset = offset[:3] + ":" + offset[3:]
    try:
        value = dt.datetime.fromisoformat(f"{date}T{time}.{micro}{offset}")
    except ValueError:
        return None
    if value.year < 1971:  # reproducible builds write the epoch: no creation time
        return None
    return value.astimezone(dt.timezone.utc)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


# --- the cache ------------------------------------------------------------------------------


class ManifestCache:
    """Manifest facts by digest, loaded from and saved to a JSON file (thread-safe)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, ManifestFacts] = {}
        self._used: set[str] = set()
        self.fetched = 0  # manifests read from the registry by this cache's users
        self._load()

    @classmethod
    def for_plan(cls, plan: Plan) -> ManifestCache:
        """The cache file next to the plan (none for a plan never saved)."""
        return cls(None if plan.path is None else plan.path.parent / CACHE_NAME)

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION:
                return
            for item in data.get("manifests") or []:
                facts = ManifestFacts.from_dict(item)
                self._entries[facts.digest] = facts
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            self._entries = {}  # a missing or broken cache is only slower

    def get(self, digest: str) -> ManifestFacts | None:
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                self._used.add(digest)
            return found

    def put(self, facts: ManifestFacts) -> None:
        with self._lock:
            self._entries[facts.digest] = facts
            self._used.add(facts.digest)
            self.fetched += 1

    def __len__(self) -> int:
        return len(self._entries)

    def save(self) -> None:
        """Write the cache atomically (0600); the entries used in this run first, then older
        ones up to ``MAX_CACHE_ENTRIES``. A failure to write is not an error (only slower)."""
        from app.plan import atomic_write

        if self.path is None:
            return
        with self._lock:
            used = [self._entries[d] for d in self._entries if d in self._used]
            rest = [self._entries[d] for d in self._entries if d not in self._used]
            kept = (used + rest)[:MAX_CACHE_ENTRIES]
        data = {"version": CACHE_VERSION, "manifests": [asdict(f) for f in kept]}
        with contextlib.suppress(OSError):
            atomic_write(self.path, json.dumps(data, separators=(",", ":")).encode(), 0o600)


# --- reading the registry -------------------------------------------------------------------


@dataclass
class RegistryReader:
    """The registry API with the plan's CA and login; one TLS context for every request."""

    base: str
    ca_path: Path
    auth: BasicAuth | None
    cache: ManifestCache
    timeout: float = 10.0
    context: ssl.SSLContext = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from app.registry_api import tls_context

        self.context = tls_context(self.ca_path)

    @classmethod
    def for_plan(cls, plan: Plan, auth: tuple[str, str] | None,
                 cache: ManifestCache | None = None) -> RegistryReader:
        from app import registry_api

        base = registry_api.base_url(plan.registry.address, plan.registry.port)
        return cls(base, plan.trusted_ca_path,
                   registry_api.BasicAuth(*auth) if auth else None,
                   cache if cache is not None else ManifestCache.for_plan(plan))

    def catalog(self) -> list[str]:
        from app import registry_api

        return registry_api.catalog(self.base, self.ca_path, auth=self.auth,
                                    timeout=self.timeout)

    def tags(self, repository: str) -> list[str]:
        from app import registry_api

        return registry_api.tags(self.base, self.ca_path, repository, auth=self.auth,
                                 timeout=self.timeout)

    def digest(self, repository: str, tag: str) -> str | None:
        from app import registry_api

        return registry_api.manifest_digest(self.base, self.ca_path, repository, tag,
                                            auth=self.auth, timeout=self.timeout,
                                            context=self.context)

    def delete(self, repository: str, digest: str) -> None:
        from app import registry_api

        registry_api.delete_manifest(self.base, self.ca_path, repository, digest,
                                     auth=self.auth, timeout=self.timeout)

    def manifest(self, repository: str, digest: str) -> ManifestFacts:
        """The facts of a manifest (and, for an index, of its children), cached by digest."""
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        from app import registry_api

        raw = registry_api.get_manifest(self.base, self.ca_path, repository, digest,
                                        auth=self.auth, timeout=self.timeout,
                                        context=self.context)
        facts = self._facts(repository, raw)
        self.cache.put(facts)
        return facts

    def _facts(self, repository: str, raw: Manifest) -> ManifestFacts:
        data = raw.data()
        media_type = raw.media_type or str(data.get("mediaType") or "")
        if media_type not in INDEX_TYPES | IMAGE_TYPES and "manifests" in data:
            media_type = "application/vnd.oci.image.index.v1+json"
        facts = ManifestFacts(raw.digest, media_type)
        if media_type in INDEX_TYPES:
            facts.children = [str(d["digest"]) for d in _descriptors(data.get("manifests"))]
            return facts
        if media_type not in IMAGE_TYPES:
            raise RegwizError(f"{repository}@{raw.digest}: a {media_type or 'schema 1'} "
                              "manifest: its size is not counted")
        config = _descriptors([data.get("config")])
        layers = _descriptors(data.get("layers"))
        facts.blobs = {str(d["digest"]): int(d["size"]) for d in config + layers}
        if config:
            facts.created = self._created(repository, config[0])
        return facts

    def _created(self, repository: str, descriptor: dict[str, Any]) -> str | None:
        from app import registry_api

        if int(descriptor["size"]) > registry_api.MAX_CONFIG_BYTES:
            return None
        body = registry_api.get_blob(self.base, self.ca_path, repository,
                                     str(descriptor["digest"]), auth=self.auth,
                                     timeout=self.timeout, context=self.context)
        try:
            config = json.loads(body)
        except ValueError:
            return None  # an artifact's config need not be JSON: no creation time
        return _iso(parse_created(config.get("created"))) if isinstance(config, dict) else None

    def tag_facts(self, repository: str, tag: str) -> TagFacts:
        """What ``repository:tag`` is now; a failure is the tag's ``error``, never raised."""
        facts = TagFacts(tag)
        try:
            digest = self.digest(repository, tag)
            if digest is None:
                facts.error = TAG_GONE
                return facts
            facts.digest = digest
            top = self.manifest(repository, digest)
            facts.manifests = [digest, *top.children]
            if not top.is_index:
                facts.blobs, facts.created = dict(top.blobs), top.created
                return facts
            newest: dt.datetime | None = None
            for child in top.children:
                child_facts = self.manifest(repository, child)
                facts.blobs.update(child_facts.blobs)
                created = parse_created(child_facts.created)
                if created is not None and (newest is None or created > newest):
                    newest = created
            facts.created = _iso(newest)
        except RegwizError as error:
            facts.error = error.message
        except (KeyError, TypeError, ValueError) as error:
            facts.error = f"an unexpected manifest: {error!r}"
        return facts

    def repository(self, name: str, tags: list[str] | None = None) -> RepositoryFacts:
        """Every tag's facts (``tags`` when the caller already listed them)."""
        result = RepositoryFacts(name)
        try:
            listed = self.tags(name) if tags is None else tags
        except RegwizError as error:
            result.error = error.message
            return result
        with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
            result.tags = list(pool.map(lambda tag: self.tag_facts(name, tag), listed))
        return result


def _descriptors(value: object) -> list[dict[str, Any]]:
    """The well-formed descriptors (a digest and a size) of a manifest's list."""
    if not isinstance(value, list):
        return []
    return [d for d in value if isinstance(d, dict) and isinstance(d.get("digest"), str)
            and isinstance(d.get("size"), int) and not isinstance(d.get("size"), bool)]


def repositories_facts(reader: RegistryReader, names: Iterable[str],
                       listed: Callable[[str], list[str] | None] = lambda name: None,
                       ) -> list[RepositoryFacts]:
    """Facts of several repositories, then the cache saved once."""
    try:
        return [reader.repository(name, listed(name)) for name in names]
    finally:
        reader.cache.save()
