"""What the user asked to copy (references, an archive or a layout), turned into a source and its
images, and the plan's registry as the copy's target; shared by the CLI and the wizard."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import UsageError
from app.images.endpoint import RegistryEndpoint
from app.images.sources import (
    DockerArchiveSource,
    ImageSource,
    OciLayoutSource,
    RegistrySource,
    SourceImage,
)
from app.registry_api import BasicAuth, tls_context

if TYPE_CHECKING:
    from app.htpasswd import Credentials
    from app.plan import Plan, Secrets


@dataclass(frozen=True)
class PushRequest:
    """One way of naming images: ``refs`` in registries, a ``tar`` archive or an ``oci`` dir."""

    refs: tuple[str, ...] = ()
    tar: Path | None = None
    oci: Path | None = None
    repository: str | None = None  # for archive/layout images named by a tag alone
    source_ca: Path | None = None  # a CA to trust for source registries, besides the system's


def resolve(request: PushRequest, environ: Mapping[str, str] | None = None
            ) -> tuple[ImageSource, list[SourceImage]]:
    """The source and the images to copy; UsageError naming what is wrong."""
    from app.images.references import parse_reference

    chosen = [on for on in (request.refs, request.tar, request.oci) if on]
    if len(chosen) != 1:
        raise UsageError("name the images one way: references, an archive or an OCI layout"
                         if chosen else "no images named",
                         "e.g. registry.k8s.io/pause:3.9")
    if request.tar is not None:
        archive = DockerArchiveSource(request.tar)
        return archive, archive.images(request.repository)
    if request.oci is not None:
        layout = OciLayoutSource.directory(request.oci)
        return layout, layout.images(request.repository)
    registries = RegistrySource(_read_ca(request.source_ca), source_login(environ))
    return registries, [registries.image(parse_reference(ref), request.repository)
                        for ref in request.refs]


def source_login(environ: Mapping[str, str] | None = None) -> BasicAuth | None:
    """A source registry's login: REGWIZ_SOURCE_USERNAME and REGWIZ_SOURCE_PASSWORD."""
    env = os.environ if environ is None else environ
    user, password = env.get("REGWIZ_SOURCE_USERNAME"), env.get("REGWIZ_SOURCE_PASSWORD")
    return BasicAuth(user, password) if user and password else None


def target_endpoint(plan: Plan, secrets: Secrets, credentials: Credentials | None = None
                    ) -> RegistryEndpoint:
    """The plan's registry, trusted by the plan's CA, with a push login: ``credentials``, else
    the operator account's (or REGWIZ_REGISTRY_PASSWORD)."""
    from app.verify import registry_auth

    login = registry_auth(plan, secrets, credentials)
    return RegistryEndpoint(plan.registry_reference, tls_context(plan.trusted_ca_path),
                            BasicAuth(*login) if login else None, basic_first=True)


def _read_ca(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"source CA {path}: {error.strerror}") from None
