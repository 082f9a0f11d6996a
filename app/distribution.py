"""Which Distribution (the registry server) an image holds, and what differs between 2 and 3.

regwiz configures the registry with ``REGISTRY_*`` environment variables over the image's own
config file, and that prefix, the API, the data layout under ``/var/lib/registry`` and the
``registry`` binary are the same in 2.x and 3.x. What differs for regwiz:

- the config file the image starts with: ``/etc/docker/registry/config.yml`` (2.x),
  ``/etc/distribution/config.yml`` (3.x); ``registry garbage-collect`` must be given it;
- 3.x exports OpenTelemetry traces to localhost:4318 unless ``OTEL_TRACES_EXPORTER=none``
  (regwiz sets it for every image; 2.x ignores it);
- 3.x dropped the oss and swift storage drivers, Docker schema 1 manifests and libtrust
  (regwiz uses none of them; a schema 1 image cannot be pushed to a 3.x registry).

The version is read from the image itself (``docker image inspect``: the config file its
command names), never from a tag or a log line: ``registry:latest`` or a mirror's name says
nothing, and the lab's ``registry:2`` is built from Debian's binary with its own command.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

V2_CONFIG = "/etc/docker/registry/config.yml"
V3_CONFIG = "/etc/distribution/config.yml"


@dataclass(frozen=True)
class Distribution:
    major: int
    config_path: str  # the config file the image's command starts the registry with

    @property
    def label(self) -> str:
        return f"Distribution {self.major}"


DISTRIBUTION_2 = Distribution(2, V2_CONFIG)
DISTRIBUTION_3 = Distribution(3, V3_CONFIG)

#: the images the wizard and the example plan offer, with what choosing each one means
IMAGE_CHOICES: tuple[tuple[str, str], ...] = (
    ("registry:2", "Distribution 2.8: the default, what most guides (and regwiz's test lab) "
                   "run"),
    ("registry:3", "Distribution 3: config at /etc/distribution/config.yml, OpenTelemetry "
                   "tracing (regwiz turns it off), no schema 1 images, no oss/swift storage; "
                   "same API and data directory"),
)


def choice_note(image: str) -> str:
    """The line the wizard shows under the image field."""
    for name, note in IMAGE_CHOICES:
        if image == name:
            return note
    return "another image: regwiz reads its Distribution version from the image at deploy"


def from_image_config(config: dict[str, Any] | None) -> Distribution:
    """The Distribution an image runs, from its ``Config`` (``docker image inspect``): the
    config file named in its entrypoint or command. An image naming none (a custom build that
    starts the registry some other way) is taken as 2.x, whose file names are regwiz's default."""
    config = config or {}
    words = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    for word in words:
        if isinstance(word, str) and _is_config_file(word):
            major = 3 if word.startswith("/etc/distribution/") else 2
            return Distribution(major, word)
    return DISTRIBUTION_2


def _is_config_file(word: str) -> bool:
    return (word.startswith("/") and posixpath.splitext(word)[1] in (".yml", ".yaml"))
