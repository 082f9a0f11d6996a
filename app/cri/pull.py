"""A pull through a node's CRI image service, as the kubelet makes it: PullImage with the
kubelet's credential, ImageStatus for the digest, RemoveImage to clean up.

``CriUnreachable`` means the proof could not be attempted (no relay, no socket, no CRI on it):
the caller falls back to its runtime's own pull and says what was not proven. A failed pull
raises ``GrpcError`` with the runtime's own message (x509, 401, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.cri.grpc_stream import GrpcError
from app.cri.image_service import ImageServiceClient, PullAuth
from app.cri.relay import open_cri
from app.errors import RegwizError

if TYPE_CHECKING:
    from app.transport.base import Transport


class CriUnreachable(RegwizError):
    """The node's CRI socket could not be reached or does not speak CRI."""


SANDBOX_PULL_TIMEOUT = 60.0


@dataclass(frozen=True)
class SandboxStatus:
    """The sandbox (pause) image every pod needs first: there already, pulled now, or not."""

    image: str
    present: bool  # the runtime had it before verify
    pulled: bool = False  # verify pulled it (and removed it again)
    error: str = ""  # why the pull failed (e.g. an air-gapped node)


@dataclass(frozen=True)
class CriPullResult:
    runtime: str  # e.g. "containerd 1.6.20~ds1"
    api: str  # e.g. "runtime.v1"
    image_ref: str
    digest: str | None  # the repo digest for the pulled repository
    sandbox: SandboxStatus | None = None


def check_sandbox(client: ImageServiceClient, image: str) -> SandboxStatus:
    """Is the sandbox image there? If not, can the node pull it (anonymously, as containerd
    pulls it for a pod)? A pulled one is removed again: the node stays as it was."""
    if client.status(image) is not None:
        return SandboxStatus(image, present=True)
    try:
        client.pull(image, None, timeout=SANDBOX_PULL_TIMEOUT)
    except GrpcError as error:
        return SandboxStatus(image, present=False, error=error.message)
    client.remove(image)
    return SandboxStatus(image, present=False, pulled=True)


def cri_pull(transport: Transport, socket_path: str, reference: str, auth: PullAuth | None,
             *, sudo: bool, timeout: float, sandbox_image: str | None = None,
             remove: bool = True) -> CriPullResult:
    """Pull ``reference`` through the CRI at ``socket_path``, read its digest, remove it
    (unless ``remove`` is false); then look at the sandbox image when one is named."""
    try:
        connection = open_cri(transport, socket_path, sudo=sudo)
    except GrpcError as error:
        raise CriUnreachable(error.message) from None
    with connection:
        client = ImageServiceClient(connection)
        try:
            version = client.version()
        except GrpcError as error:
            raise CriUnreachable(error.message) from None
        image_ref = client.pull(reference, auth, timeout=timeout)
        info = client.status(reference)
        if remove:
            client.remove(reference)
        sandbox = check_sandbox(client, sandbox_image) if sandbox_image else None
    repository = _repository(reference)
    digests = info.repo_digests if info else []
    digest = next((d.partition("@")[2] for d in digests if d.partition("@")[0] == repository),
                  None)
    return CriPullResult(f"{version.runtime_name} {version.runtime_version}".strip(),
                         version.api, image_ref, digest, sandbox)


def _repository(reference: str) -> str:
    """``host:port/name:tag`` -> ``host:port/name`` (the port's colon is not a tag's)."""
    name = reference.split("@")[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':')[0]}" if head else last.split(":")[0]
