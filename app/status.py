"""A snapshot of the registry and its nodes for ``regwiz status`` and the TUI's live panel.

Every part is collected independently and fails on its own: an unreachable node or a stopped
container shows up as an error in its section, never as an exception for the whole report.
"""

from __future__ import annotations

import datetime as dt
import enum
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import RegwizError
from app.image_pin import ImageFacts
from app.jsonable import plain

if TYPE_CHECKING:
    from app.htpasswd import Credentials
    from app.plan import Plan, ResolvedNode, Secrets
    from app.runtimes.base import CredentialLocation, NodeCredential
    from app.runtimes.probe import NodeFacts
    from app.transport.base import Transport

DEFAULT_PARALLEL = 16
MAX_REPOSITORIES_WITH_TAGS = 50  # keep a polled status quick on big registries
CERT_WARNING_DAYS = 30


class TrustState(str, enum.Enum):
    MATCH = "match"  # the node's CA file is the plan's current CA
    MISMATCH = "mismatch"  # a CA file is there but it is another (stale) CA
    MISSING = "missing"  # no CA file where the node's runtime reads it
    ERROR = "error"  # the node could not be checked (unreachable, sudo, ...)


@dataclass
class RegistryHealth:
    url: str
    reachable: bool = False  # /v2/ answered 200 or 401 with the registry API header
    tls_valid: bool = False  # the TLS handshake verified against our CA and the address
    http_status: int | None = None
    api_version: str | None = None
    latency_ms: float | None = None
    error: str | None = None
    hint: str | None = None


@dataclass
class CertificateStatus:
    source: str  # "served by the registry", "ca.crt", ...
    subject: str | None = None
    not_after: str | None = None  # ISO 8601, UTC
    days_left: int | None = None
    fingerprint: str | None = None  # SHA-256, "AB:CD:..."
    error: str | None = None
    # How it differs from what the plan asks for now (SANs, subject, key type): stale when any.
    plan_differences: list[str] = field(default_factory=list)

    @property
    def out_of_date(self) -> bool:
        return bool(self.plan_differences)

    @property
    def expiring(self) -> bool:
        return self.days_left is not None and self.days_left < CERT_WARNING_DAYS


@dataclass
class CatalogStatus:
    repositories: dict[str, list[str]] = field(default_factory=dict)  # name -> tags
    repository_count: int = 0
    truncated: bool = False  # tags listed only for the first MAX_REPOSITORIES_WITH_TAGS
    error: str | None = None
    sizes: list[RepositorySize] = field(default_factory=list)  # the same repositories
    manifests_fetched: int = 0  # manifests read this time (the others came from the cache)


@dataclass
class ContainerStatus:
    name: str
    found: bool = False
    state: str | None = None  # docker's State.Status: running, restarting, exited, ...
    running: bool = False
    restart_count: int | None = None
    started_at: str | None = None
    image: str | None = None
    image_id: str | None = None  # "sha256:...": the image the container really runs
    #: the plan's registry.image_digest (None: not pinned yet, the next deploy pins it)
    pinned_digest: str | None = None
    pin_kind: str | None = None  # "repository digest" or "image ID" (None: unknown)
    #: the container runs the pinned image (None: no pin, or no container to compare)
    matches_pin: bool | None = None
    error: str | None = None

    @property
    def off_pin(self) -> bool:
        """The container runs another image than the plan pins (someone ran it by hand, or
        a deploy was interrupted): needs attention."""
        return self.matches_pin is False

    def pin_line(self, *, full: bool = True) -> str:
        """The plan's pin and whether the container runs it (CLI and wizard alike); ``full``
        False shortens the digests as ``docker images`` does (the wizard's narrow panel)."""
        def shown(digest: str | None) -> str:
            return str(digest) if full or digest is None else digest[:19] + "…"

        pin = shown(self.pinned_digest)
        if self.pinned_digest is None:
            return "none yet: the next regwiz deploy pins the image the registry runs"
        if self.matches_pin is None:
            why = "Docker did not describe the running image" if self.found else "no container"
            return f"{pin} (not compared: {why})"
        if self.matches_pin:
            return f"{pin} ({self.pin_kind}): the container runs it"
        return (f"{pin}: the container runs {shown(self.image_id)}, NOT the pinned "
                "image; regwiz deploy runs the pinned one again (regwiz upgrade moves the pin)")


@dataclass
class DiskStatus:
    path: str
    used_bytes: int | None = None  # the data directory's own size (du)
    error: str | None = None
    # The volume holding the data directory (df): its size, what is used and free on it.
    volume_bytes: int | None = None
    volume_used_bytes: int | None = None
    volume_free_bytes: int | None = None
    volume_error: str | None = None
    warn_percent: int = 85  # the plan's registry.disk_warn_percent

    @property
    def used_percent(self) -> int | None:
        """How full the volume is, rounded up as df rounds it (None: unknown)."""
        if self.volume_used_bytes is None or self.volume_free_bytes is None:
            return None
        usable = self.volume_used_bytes + self.volume_free_bytes
        if usable <= 0:
            return None
        return -(-self.volume_used_bytes * 100 // usable)

    @property
    def too_full(self) -> bool:
        """The volume is at least ``warn_percent`` full."""
        percent = self.used_percent
        return percent is not None and percent >= self.warn_percent


@dataclass
class RepositorySize:
    """A repository's tags and the unique size of the blobs they use (from the manifests)."""

    name: str
    tag_count: int = 0
    unique_bytes: int = 0
    unsized_tags: int = 0  # tags whose manifest could not be read (not in unique_bytes)
    error: str | None = None


@dataclass
class NodeCAFile:
    runtime: str  # a runtime name (app.runtimes.registry), or "os-store"
    path: str
    state: TrustState
    fingerprint: str | None = None
    detail: str = ""


class CredentialState(str, enum.Enum):
    CURRENT = "current"  # the node's file holds the pull account's current credential
    STALE = "stale"  # it holds another (older) credential for the registry
    MISSING = "missing"  # it holds none
    LEFT = "left"  # the account is revoked but regwiz's entry is still there
    REMOVED = "removed"  # revoked and gone, as it should be
    ERROR = "error"  # the file could not be read


# The states that need a `regwiz onboard` to put right.
CREDENTIAL_PROBLEMS = (CredentialState.STALE, CredentialState.MISSING, CredentialState.LEFT,
                       CredentialState.ERROR)


@dataclass
class NodeCredentialFile:
    """One file of a node holding the pull credential; ``fingerprint`` only, never the secret."""

    reader: str  # "kubelet", or who else reads it (e.g. "docker pull as root")
    path: str
    state: CredentialState
    fingerprint: str | None = None
    detail: str = ""


class MirrorState(str, enum.Enum):
    CONFIGURED = "configured"  # every file onboarding writes for it is in place
    MISSING = "missing"  # a file is missing or differs: run regwiz onboard
    REFUSED = "refused"  # a private cache the runtime cannot log in to (onboarding fails)
    UNSUPPORTED = "unsupported"  # the runtime cannot mirror this upstream (not a problem)
    ERROR = "error"  # a file could not be read


MIRROR_PROBLEMS = (MirrorState.MISSING, MirrorState.REFUSED, MirrorState.ERROR)
MIRROR_MARKS = {MirrorState.CONFIGURED: "✓", MirrorState.UNSUPPORTED: "–"}


@dataclass
class NodeMirrorStatus:
    """One mirrored upstream as one runtime of a node uses it."""

    upstream: str
    runtime: str
    state: MirrorState
    detail: str = ""  # e.g. "no hosts.toml", or what the runtime cannot do

    @property
    def text(self) -> str:
        """``docker.io ✓`` or ``quay.io ✗ (no hosts.toml)``."""
        mark = MIRROR_MARKS.get(self.state, "✗")
        return f"{self.upstream} {mark}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class NodeTrustStatus:
    host: str
    state: TrustState = TrustState.ERROR
    runtimes: list[str] = field(default_factory=list)
    files: list[NodeCAFile] = field(default_factory=list)
    message: str = ""
    hint: str | None = None
    # The pull credential (only when the plan's nodes get one: htpasswd + credentials/).
    credential_state: CredentialState | None = None
    credential_files: list[NodeCredentialFile] = field(default_factory=list)
    mirrors: list[NodeMirrorStatus] = field(default_factory=list)  # the plan's mirrors

    @property
    def credential_stale(self) -> bool:
        return self.credential_state in CREDENTIAL_PROBLEMS

    @property
    def mirrors_stale(self) -> bool:
        return any(m.state in MIRROR_PROBLEMS for m in self.mirrors)

    @property
    def mirrors_text(self) -> str:
        """``docker.io ✓, quay.io ✗ (no hosts.toml)`` (runtime-prefixed when it has several)."""
        several = len({m.runtime for m in self.mirrors}) > 1
        return ", ".join(f"{m.runtime}: {m.text}" if several else m.text for m in self.mirrors)


@dataclass
class AccountStatus:
    name: str
    role: str  # "push" or "pull"
    created: str
    rotated: str = ""  # "" = never


@dataclass
class MirrorStatus:
    """A pull-through cache on the registry host: its container, its answer, its disk use."""

    upstream: str  # the registry it caches, as image references name it (docker.io)
    address: str  # HOST:PORT nodes reach it at
    private: bool  # accounts only (an upstream login), else anonymous pulls
    container: ContainerStatus
    health: RegistryHealth
    used_bytes: int | None = None  # du of its cache directory

    @property
    def healthy(self) -> bool:
        """Running, TLS valid, and answering as its auth says (401 private, 200 public)."""
        wanted = 401 if self.private else 200
        return (self.container.running and self.health.tls_valid
                and self.health.http_status == wanted)


@dataclass
class StatusReport:
    collected_at: str  # ISO 8601, UTC
    registry_reference: str  # HOST:PORT as in image references
    registry: RegistryHealth
    server_certificate: CertificateStatus  # what the registry serves (local tls.crt if it can't)
    ca_certificate: CertificateStatus  # the plan's ca.crt
    served_matches_local: bool | None  # the served cert is the plan's tls.crt
    catalog: CatalogStatus
    container: ContainerStatus
    disk: DiskStatus
    nodes: list[NodeTrustStatus] | None = None  # None when nodes were not checked
    seconds: float = 0.0
    auth: str = ""  # the plan's registry.auth ("" when not collected)
    accounts: list[AccountStatus] = field(default_factory=list)  # who may log in (no secrets)
    accounts_error: str | None = None
    managed: bool = True  # False: a registry regwiz did not deploy (no container, no disk)
    mirrors: list[MirrorStatus] = field(default_factory=list)  # the plan's caches

    @property
    def stale_nodes(self) -> list[NodeTrustStatus]:
        """Nodes not trusting the current CA, or not holding the current pull credential."""
        return [n for n in self.nodes or []
                if n.state is not TrustState.MATCH or n.credential_stale or n.mirrors_stale]

    @property
    def healthy(self) -> bool:
        """Registry up with valid TLS, container running, every checked node trusting the CA."""
        return (
            self.registry.reachable
            and self.registry.tls_valid
            and (self.container.running or not self.managed)
            and not self.server_certificate.out_of_date
            and not self.stale_nodes
            and not self.disk.too_full
            and not self.container.off_pin
            and all(mirror.healthy for mirror in self.mirrors)
        )

    def to_dict(self) -> dict[str, Any]:
        data = plain(asdict(self), digits=1)
        data["healthy"] = self.healthy
        data["server_certificate"]["expiring"] = self.server_certificate.expiring
        data["ca_certificate"]["expiring"] = self.ca_certificate.expiring
        data["disk"]["used_percent"] = self.disk.used_percent
        data["disk"]["too_full"] = self.disk.too_full
        data["container"]["off_pin"] = self.container.off_pin
        for mirror, entry in zip(self.mirrors, data["mirrors"], strict=True):
            entry["running"], entry["healthy"] = mirror.container.running, mirror.healthy
        return data


# ----------------------------------------------------------------------------- collecting

def collect_status(
    plan: Plan,
    secrets: Secrets,
    *,
    host_key_policy: Any,
    include_nodes: bool = True,
    credentials: Credentials | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> StatusReport:
    """Collect every part of the status concurrently; never raises for a failing part."""
    from app.certs import CertFiles
    from app.verify import registry_auth

    started = time.monotonic()
    files = CertFiles(plan.cert_dir)
    ca_path = plan.trusted_ca_path
    auth = registry_auth(plan, secrets, credentials)
    managed = plan.registry.managed
    nodes = plan.resolved_nodes() if include_nodes else []
    wanted = _wanted_credential(plan) if include_nodes else None
    with ThreadPoolExecutor(max_workers=max(2, min(parallel, len(nodes) + 4))) as pool:
        health = pool.submit(registry_health, plan, ca_path)
        mirrors = _mirror_statuses(plan)
        mirror_health = [pool.submit(registry_health, plan, ca_path, mirror.port)
                         for mirror in plan.mirrors]
        served = pool.submit(served_certificate, plan.registry.address, plan.registry.port,
                             plan=plan if managed else None)
        catalog = pool.submit(collect_catalog, plan, ca_path, auth)
        host = pool.submit(registry_host_status, plan, secrets, host_key_policy,
                           mirrors) if managed else None
        ca_status = certificate_status_from_file(ca_path, ca_path.name)
        trusted = trusted_fingerprints(ca_path)
        node_futures = [
            pool.submit(node_trust_status, plan, secrets, host_key_policy, node, trusted,
                        wanted)
            for node in nodes
        ]
        container, disk = host.result() if host is not None else _not_deployed_here(plan)
        for mirror, checked in zip(mirrors, mirror_health, strict=True):
            mirror.health = checked.result()
        served_cert = served.result()
        local_cert = certificate_status_from_file(files.tls_crt, "tls.crt") if managed \
            else CertificateStatus("tls.crt", error="the registry's own (not deployed by regwiz)")
        return StatusReport(
            collected_at=_utc_now().isoformat(timespec="seconds"),
            registry_reference=plan.registry_reference,
            registry=health.result(),
            server_certificate=served_cert if served_cert.error is None else local_cert,
            ca_certificate=ca_status,
            served_matches_local=_same_certificate(served_cert, local_cert) if managed else None,
            catalog=catalog.result(),
            container=container,
            disk=disk,
            nodes=[f.result() for f in node_futures] if include_nodes else None,
            seconds=time.monotonic() - started,
            auth=plan.registry.auth,
            managed=managed,
            mirrors=mirrors,
            **(_accounts(plan) if managed else {}),
        )


def trusted_fingerprints(ca_path: Path) -> tuple[str, ...]:
    """Every CA a node must hold: the plan's one, or both while a CA rotation runs."""
    try:
        return tuple(pem_fingerprints(ca_path.read_bytes()))
    except OSError:
        return ()


def _mirror_statuses(plan: Plan) -> list[MirrorStatus]:
    """The plan's caches, to be filled: health by ``registry_health``, container and disk by
    ``registry_host_status`` (over the registry host's one connection)."""
    from app.deploy.mirrors import mirror_container_name

    return [MirrorStatus(mirror.upstream, plan.mirror_address(mirror).reference, mirror.private,
                         ContainerStatus(mirror_container_name(plan, mirror)),
                         RegistryHealth(url=""))
            for mirror in plan.mirrors]


def _not_deployed_here(plan: Plan) -> tuple[ContainerStatus, DiskStatus]:
    """A registry regwiz did not deploy: its container and disk are its owner's to watch."""
    why = "not deployed by regwiz (registry.managed = false): its own tools report it"
    return ContainerStatus("", error=why), DiskStatus("", error=why)


def _accounts(plan: Plan) -> dict[str, Any]:
    """The registry's accounts as saved next to the plan (read locally; never a secret)."""
    from app.accounts import AccountStore

    if plan.registry.auth != "htpasswd":
        return {}
    try:
        saved = AccountStore(plan).load()
    except RegwizError as error:
        return {"accounts_error": error.message}
    return {"accounts": [AccountStatus(a.name, a.role, a.created, a.rotated) for a in saved]}


def ca_key_note(plan: Plan) -> str | None:
    """A note when the plan's CA key lies unencrypted on this disk (None: encrypted or absent)."""
    path = plan.cert_dir / "ca.key"
    try:
        head = path.read_bytes()[:200]
    except OSError:
        return None
    if b"ENCRYPTED" in head:
        return None
    return (f"{path} is not encrypted: whoever reads it can sign certificates your nodes trust "
            "(encrypt it: openssl pkey -in ca.key -aes256 -out ca.key.new, then move it over "
            "ca.key and give REGWIZ_CA_KEY_PASSPHRASE; or keep it offline)")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _same_certificate(served: CertificateStatus, local: CertificateStatus) -> bool | None:
    if served.fingerprint is None or local.fingerprint is None:
        return None
    return served.fingerprint == local.fingerprint


# --- the registry endpoint ---------------------------------------------------------------------


def registry_health(plan: Plan, ca_path: Path, port: int | None = None) -> RegistryHealth:
    """``GET /v2/`` of the registry (or of the cache on ``port``) with the plan's CA."""
    from app import registry_api

    url = registry_api.base_url(plan.registry.address, port or plan.registry.port)
    result = RegistryHealth(url=f"{url}/v2/")
    if not ca_path.is_file():
        result.error = f"{ca_path} does not exist: TLS cannot be checked"
        result.hint = "run regwiz certs --plan FILE"
        return result
    ping = registry_api.ping(url, ca_path)
    result.http_status, result.api_version = ping.status, ping.api_version_header
    result.latency_ms = ping.latency_ms
    result.tls_valid = ping.status is not None  # an HTTP answer came back over verified TLS
    result.reachable = ping.is_up
    result.error, result.hint = ping.error, ping.hint
    return result


def served_certificate(address: str, port: int, timeout: float = 5.0, *,
                       plan: Plan | None = None) -> CertificateStatus:
    """The leaf the registry serves, read WITHOUT verification so a bad one can be described.

    With ``plan``, it is also compared with what the plan asks for: a registry still serving a
    certificate issued before a SAN or subject change is out of date, not healthy.
    """
    source = "served by the registry"
    try:
        pem = ssl.get_server_certificate((address.strip("[]"), port), timeout=timeout)
    except (OSError, ssl.SSLError) as error:
        return CertificateStatus(source, error=f"cannot read the served certificate: {error}")
    status = certificate_status_from_pem(pem.encode(), source)
    if plan is not None and status.error is None:
        status.plan_differences = served_plan_differences(plan, pem.encode())
    return status


def served_plan_differences(plan: Plan, pem: bytes) -> list[str]:
    """How a served certificate differs from the plan (judged like the certificate on disk)."""
    from cryptography import x509

    from app.cert_drift import plan_differences
    from app.certs import CertFiles

    cert = x509.load_pem_x509_certificate(pem)
    return plan_differences(plan, cert, issued_here=CertFiles(plan.cert_dir).ca_key.exists())


def certificate_status_from_file(path: Path, source: str) -> CertificateStatus:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return CertificateStatus(source, error=f"{path} does not exist")
    except OSError as error:
        return CertificateStatus(source, error=f"cannot read {path}: {error.strerror}")
    return certificate_status_from_pem(pem, source)


def certificate_status_from_pem(pem: bytes, source: str) -> CertificateStatus:
    from app.certs import inspect_certificate

    try:
        info = inspect_certificate(pem)
    except RegwizError as error:
        return CertificateStatus(source, error=error.message)
    return CertificateStatus(
        source,
        subject=info.subject,
        not_after=info.not_after.isoformat(timespec="seconds"),
        days_left=info.days_left,
        fingerprint=info.fingerprint,
    )


def collect_catalog(plan: Plan, ca_path: Path, auth: tuple[str, str] | None,
                    *, sizes: bool = True) -> CatalogStatus:
    """Repositories and tags; with ``sizes``, each repository's unique size from its manifests
    (those seen before come from the cache next to the plan)."""
    from app import registry_api

    base = registry_api.base_url(plan.registry.address, plan.registry.port)
    basic = registry_api.BasicAuth(*auth) if auth else None
    result = CatalogStatus()
    try:
        names = registry_api.catalog(base, ca_path, auth=basic)
        result.repository_count = len(names)
        result.truncated = len(names) > MAX_REPOSITORIES_WITH_TAGS
        for name in names[:MAX_REPOSITORIES_WITH_TAGS]:
            result.repositories[name] = registry_api.tags(base, ca_path, name, auth=basic)
    except RegwizError as error:
        result.error = error.message
        return result
    if sizes and result.repositories:
        _fill_sizes(plan, auth, result)
    return result


def _fill_sizes(plan: Plan, auth: tuple[str, str] | None,
                catalog: CatalogStatus) -> None:
    from app.image_facts import ManifestCache, RegistryReader, repositories_facts

    cache = ManifestCache.for_plan(plan)
    try:
        reader = RegistryReader.for_plan(plan, auth, cache)
        facts = repositories_facts(reader, list(catalog.repositories),
                                   lambda name: catalog.repositories[name])
    except RegwizError as error:
        catalog.sizes = [RepositorySize(name, len(tags), error=error.message)
                         for name, tags in catalog.repositories.items()]
        return
    catalog.manifests_fetched = cache.fetched
    catalog.sizes = [RepositorySize(repo.name, len(repo.tags), repo.unique_bytes,
                                    repo.unsized_tags, repo.error) for repo in facts]


# --- the registry host: container and disk -----------------------------------------------------


def registry_host_status(
    plan: Plan, secrets: Secrets, policy: Any, mirrors: list[MirrorStatus] | None = None,
) -> tuple[ContainerStatus, DiskStatus]:
    """The registry's container and disk; ``mirrors``' containers and disk use filled in
    place, over the same connection (one Docker client, one ``du``)."""
    from app.connections import open_registry_transport

    container = ContainerStatus(plan.registry.container_name)
    disk = DiskStatus(plan.registry.data_dir, warn_percent=plan.registry.disk_warn_percent)
    mirrors = mirrors or []
    try:
        transport = open_registry_transport(plan, secrets, policy)
    except RegwizError as error:
        container.error = disk.error = error.message
        for mirror in mirrors:
            mirror.container.error = error.message
        return container, disk
    # Each section is filled on its own: a Docker failure must not hide the disk, nor the reverse.
    try:
        try:
            _fill_containers(plan, transport, [container] + [m.container for m in mirrors])
        except Exception as error:  # noqa: BLE001 - report it in the section, never raise
            container.error = container.error or f"unexpected error: {error!r}"
        try:
            _fill_disk(plan, transport, disk, mirrors)
        except Exception as error:  # noqa: BLE001 - report it in the section, never raise
            disk.error = disk.error or f"unexpected error: {error!r}"
            disk.volume_error = disk.volume_error or disk.error
    finally:
        transport.close()
    return container, disk


def _fill_containers(plan: Plan, transport: Transport,
                     containers: list[ContainerStatus]) -> None:
    import docker.errors

    from app.registry_host import reach_docker

    containers[0].pinned_digest = plan.registry.image_digest  # the registry's own container
    try:
        client = reach_docker(transport, sudo_allowed=plan.registry.sudo)
    except (RegwizError, docker.errors.DockerException) as error:
        for container in containers:
            container.error = getattr(error, "message", None) or f"docker: {error}"
        return
    try:
        for container in containers:
            _fill_container(plan, client, container)
    finally:
        client.close()


def _fill_container(plan: Plan, client: Any, container: ContainerStatus) -> None:
    import docker.errors

    try:
        attrs = client.containers.get(container.name).attrs
    except docker.errors.NotFound:
        container.error = f"no container named {container.name} on {plan.registry.host}"
        return
    except docker.errors.DockerException as error:
        container.error = f"docker: {error}"
        return
    apply_container_attrs(container, attrs)
    if container.pinned_digest is not None:
        compare_with_pin(container, _image_facts(client, attrs.get("Image")))


def _image_facts(client: Any, image_id: object) -> ImageFacts | None:
    """The running image's ID and repository digests (None when Docker cannot say: the
    comparison then uses the container's image ID alone)."""
    import docker.errors

    if not isinstance(image_id, str) or not image_id:
        return None
    try:
        return ImageFacts.from_attrs(client.images.get(image_id).attrs)
    except docker.errors.DockerException:
        return None


def compare_with_pin(container: ContainerStatus, image: ImageFacts | None) -> None:
    """Whether the container runs the pinned image, and which kind of pin that is."""
    pin = container.pinned_digest
    if pin is None or not container.found:
        return
    if image is None and pin != container.image_id:
        return  # a repository digest needs the image's data to compare: unknown, not "off"
    facts = image or ImageFacts(container.image_id or "")
    container.matches_pin = facts.matches(pin)
    if container.matches_pin:
        container.pin_kind = facts.pin_kind(pin)


def apply_container_attrs(container: ContainerStatus, attrs: dict[str, Any]) -> None:
    """Fill from ``docker inspect`` attributes."""
    state = attrs.get("State") or {}
    container.found = True
    container.state = state.get("Status")
    container.running = bool(state.get("Running"))
    container.restart_count = attrs.get("RestartCount")
    container.started_at = state.get("StartedAt")
    container.image = (attrs.get("Config") or {}).get("Image")
    container.image_id = attrs.get("Image")  # the exact image running, whatever the tag says now


def _fill_disk(plan: Plan, transport: Transport, disk: DiskStatus,
               mirrors: list[MirrorStatus]) -> None:
    _fill_volume(plan, transport, disk)
    try:
        disk.used_bytes, caches = data_dir_usage(plan, transport)
    except RegwizError as error:
        disk.error = error.message
        return
    for status, mirror in zip(mirrors, plan.mirrors, strict=False):  # built in plan order
        status.used_bytes = caches.get(mirror.slug, 0)  # none yet: nothing pulled through it


# The caches first, then the data directory: du counts a directory once, for the first
# argument that holds it, so the last line is the registry's own use, without the caches.
DU_DATA_DIR = r"""d=$1; set --
for m in "$d"/mirrors/*/; do [ -d "$m" ] && [ ! -L "${m%/}" ] && set -- "$@" "$m"; done
exec du -sb -- "$@" "$d"
"""


def data_dir_bytes(plan: Plan, transport: Transport, timeout: float = 120.0) -> int:
    """The registry's own use of its data directory (its caches left out: garbage collection
    measures what it freed with this); RegwizError when unreadable."""
    return data_dir_usage(plan, transport, timeout)[0]


def data_dir_usage(plan: Plan, transport: Transport,
                   timeout: float = 120.0) -> tuple[int, dict[str, int]]:
    """(the registry's bytes, {cache slug: its bytes}) from one ``du -sb`` on the host."""
    answer = transport.run(["sh", "-c", DU_DATA_DIR, "sh", plan.registry.data_dir],
                           sudo=plan.registry.sudo, timeout=timeout)
    return parse_du_lines(answer.stdout)


def parse_du_lines(output: str) -> tuple[int, dict[str, int]]:
    """``DU_DATA_DIR``'s output: the last line is the data directory, the others caches."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    used = parse_du_output(lines[-1]) if lines else None
    if used is None:
        raise RegwizError(f"unexpected du output: {output.strip()[:80]!r}")
    caches: dict[str, int] = {}
    for line in lines[:-1]:
        size, _, path = line.partition("\t")
        if size.isdigit():
            caches[path.rstrip("/").rsplit("/", 1)[-1]] = int(size)
    return used, caches


def _fill_volume(plan: Plan, transport: Transport, disk: DiskStatus) -> None:
    """The data directory's volume, from POSIX ``df -P -k`` (coreutils, busybox alike)."""
    try:
        answer = transport.run(["df", "-P", "-k", disk.path], sudo=plan.registry.sudo,
                               timeout=30.0)
    except RegwizError as error:
        disk.volume_error = error.message
        return
    volume = parse_df_output(answer.stdout)
    if volume is None:
        disk.volume_error = f"unexpected df output: {answer.stdout.strip()[-80:]!r}"
        return
    disk.volume_bytes, disk.volume_used_bytes, disk.volume_free_bytes = volume


def parse_df_output(output: str) -> tuple[int, int, int] | None:
    """(size, used, available) in bytes from ``df -P -k`` output (header, then one line; a long
    device name may wrap it onto two)."""
    lines = output.strip().splitlines()[1:]
    fields = " ".join(lines).split()
    # Filesystem 1024-blocks Used Available Capacity Mounted-on: the numbers precede "NN%".
    for index, value in enumerate(fields):
        if value.endswith("%") and value[:-1].isdigit() and index >= 3:
            numbers = fields[index - 3:index]
            if all(n.isdigit() for n in numbers):
                size, used, free = (int(n) * 1024 for n in numbers)
                return size, used, free
    return None


def parse_du_output(output: str) -> int | None:
    first = output.strip().split(maxsplit=1)
    return int(first[0]) if first and first[0].isdigit() else None


def mirror_summary(mirror: MirrorStatus) -> str:
    """"docker.io at 10.0.0.5:5001: running, answers (anonymous pulls), 1.2 GiB cached", or
    what is wrong with the cache (the CLI's line and the wizard's row)."""
    who = "accounts only" if mirror.private else "anonymous pulls"
    container = mirror.container
    if container.running:
        state = "running"
    elif container.found:
        state = f"NOT RUNNING ({container.state})"
    else:
        state = f"NO CONTAINER ({container.error or 'not found'})"
    health = mirror.health
    if mirror.healthy:
        answer = f"answers ({who})"
    elif health.http_status is not None:
        answer = f"answers HTTP {health.http_status}, expected {401 if mirror.private else 200}"
    else:
        answer = f"DOWN: {health.error or 'no answer'}"
    cached = (f", {format_bytes(mirror.used_bytes)} cached" if mirror.used_bytes is not None
              else "")
    return f"{mirror.upstream} at {mirror.address}: {state}, {answer}{cached}"


def format_bytes(count: int) -> str:
    """1536 → "1.5 KiB": the data directory's size, for the CLI and the status panel."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


# --- nodes -------------------------------------------------------------------------------------


def _wanted_credential(plan: Plan) -> NodeCredential | None:
    """The pull credential nodes should hold (None: not managed; a broken file reads as not
    managed here, and onboarding reports it)."""
    from app.node_credentials import pull_credential

    try:
        return pull_credential(plan)
    except RegwizError:
        return None


def node_trust_status(
    plan: Plan,
    secrets: Secrets,
    policy: Any,
    node: ResolvedNode,
    ca_fingerprints: tuple[str, ...],
    credential: NodeCredential | None = None,
) -> NodeTrustStatus:
    from app.connections import open_node_transport
    from app.runtimes import registry as runtimes
    from app.runtimes.probe import probe_node

    status = NodeTrustStatus(node.host)
    try:
        with open_node_transport(node, secrets, policy) as transport:
            facts = probe_node(transport, sudo=node.sudo, runtime=node.runtime)
            status.runtimes = list(facts.runtimes)
            os_store = runtimes.trusts_system_store(node.runtime, node.os_trust_store, facts)
            for runtime, path in runtimes.ca_locations(facts, plan.registry_address, os_store):
                raw = transport.read_file(path, sudo=node.sudo)
                status.files.append(judge_ca_file(runtime, path, raw, ca_fingerprints))
            status.files += [
                NodeCAFile(runtime, problem.path,
                           TrustState.MISMATCH if problem.mismatch else TrustState.MISSING,
                           detail=problem.summary)
                for runtime, problem in runtimes.trust_problems(facts)
            ]
            if credential is not None:
                _check_credentials(transport, node, facts, credential, status)
            if plan.mirrors:
                status.mirrors = check_mirrors(transport, plan, node, facts, credential)
    except RegwizError as error:
        status.state, status.message, status.hint = TrustState.ERROR, error.message, error.hint
        return status
    except Exception as error:  # noqa: BLE001 - one odd node must not break the whole status
        status.state, status.message = TrustState.ERROR, f"unexpected error: {error!r}"
        return status
    summarize_node(status)
    return status


def _check_credentials(transport: Transport, node: ResolvedNode, facts: NodeFacts,
                       credential: NodeCredential, status: NodeTrustStatus) -> None:
    """Read every file of the node that should hold (or no longer hold) the pull credential."""
    from app.runtimes import registry as runtimes

    for location in runtimes.credential_locations(facts):
        try:
            raw = transport.read_file(location.path, sudo=node.sudo)
        except RegwizError as error:
            status.credential_files.append(NodeCredentialFile(
                location.reader, location.path, CredentialState.ERROR, detail=error.message))
            continue
        status.credential_files.append(judge_credential_file(location, raw, credential))
    status.credential_state = summarize_credentials(status.credential_files)


def check_mirrors(transport: Transport, plan: Plan, node: ResolvedNode, facts: NodeFacts,
                  credential: NodeCredential | None) -> list[NodeMirrorStatus]:
    """Each mirror as each runtime of the node uses it: the files onboarding would write for
    it, read back (the adapters' mirror_actions, so status and onboarding never disagree)."""
    from app.onboard import mirror_job
    from app.runtimes import registry as runtimes
    from app.runtimes.base import CommandAction, RemoveAction

    try:
        ca_pem = plan.trusted_ca_path.read_bytes()
    except OSError:
        return []  # the CA's own row says it is missing
    job = mirror_job(plan, node, ca_pem, credential)
    found: dict[tuple[str, str], NodeMirrorStatus] = {}
    reads: dict[str, bytes | None] = {}
    try:
        planned = runtimes.mirror_actions(facts, job)
    except RegwizError as error:  # e.g. a daemon.json or registries.yaml that does not parse
        return [NodeMirrorStatus(m.upstream, "", MirrorState.ERROR, error.message)
                for m in plan.mirrors]
    for runtime, action in planned:
        upstream = getattr(action, "upstream", "")
        if not upstream or isinstance(action, RemoveAction | CommandAction):
            continue
        entry = found.setdefault((runtime, upstream),
                                 NodeMirrorStatus(upstream, runtime, MirrorState.CONFIGURED))
        if entry.state in (MirrorState.CONFIGURED, MirrorState.MISSING):
            _judge_mirror_action(transport, node, action, entry, reads)
    order = {m.upstream: i for i, m in enumerate(plan.mirrors)}
    return sorted(found.values(), key=lambda m: (order.get(m.upstream, 0), m.runtime))


def _judge_mirror_action(transport: Transport, node: ResolvedNode, action: object,
                         entry: NodeMirrorStatus, reads: dict[str, bytes | None]) -> None:
    """Mark ``entry`` by one of its actions: a note, or a file read back (each path once)."""
    from app.runtimes.base import FileAction, MergeAction, NoteAction, would_change

    if isinstance(action, NoteAction):
        if action.refuse or entry.state is MirrorState.CONFIGURED:
            entry.state = MirrorState.REFUSED if action.refuse else MirrorState.UNSUPPORTED
            entry.detail = action.note
        return
    if not isinstance(action, FileAction | MergeAction):
        return
    try:
        if action.path not in reads:
            reads[action.path] = transport.read_file(action.path, sudo=node.sudo)
        current = reads[action.path]
        if would_change(action, current):  # every file at fault: "no ca.crt, no hosts.toml"
            name = action.path.rsplit("/", 1)[-1]
            problem = f"no {name}" if current is None else f"{name} differs"
            entry.state = MirrorState.MISSING
            entry.detail = ", ".join(filter(None, [entry.detail, problem]))
    except RegwizError as error:
        entry.state, entry.detail = MirrorState.ERROR, error.message


def judge_credential_file(location: CredentialLocation, raw: bytes | None,
                          credential: NodeCredential) -> NodeCredentialFile:
    """Does the file hold the pull account's current credential (by fingerprint)?"""
    from app.runtimes.base import credential_fingerprint
    from app.runtimes.credentials import installed_auth

    auth = installed_auth(location, raw, credential.registry)
    found = credential_fingerprint(auth) if auth else None
    file = NodeCredentialFile(location.reader, location.path, CredentialState.MISSING, found)
    if credential.remove:
        ours = auth is not None and _auth_user(auth) == credential.username
        file.state = CredentialState.LEFT if ours else CredentialState.REMOVED
        file.detail = ("the revoked account's entry is still there" if ours
                       else "no entry of the revoked account")
    elif found is None:
        file.detail = "no credential for the registry" if raw is not None else "no file"
    elif found == credential.fingerprint:
        file.state, file.detail = CredentialState.CURRENT, f"current credential ({found})"
    else:
        file.state = CredentialState.STALE
        file.detail = f"another credential ({found}; current {credential.fingerprint})"
    return file


def _auth_user(auth: str) -> str:
    import base64
    import binascii

    try:
        return base64.b64decode(auth).decode("utf-8").partition(":")[0]
    except (binascii.Error, ValueError):
        return ""


def summarize_credentials(files: list[NodeCredentialFile]) -> CredentialState:
    """The node's worst credential state (CURRENT or REMOVED when every file is right)."""
    for state in (CredentialState.ERROR, CredentialState.STALE, CredentialState.LEFT,
                  CredentialState.MISSING):
        if any(f.state is state for f in files):
            return state
    if files and all(f.state is CredentialState.REMOVED for f in files):
        return CredentialState.REMOVED
    return CredentialState.CURRENT


def judge_ca_file(
    runtime: str, path: str, raw: bytes | None, ca_fingerprints: tuple[str, ...]
) -> NodeCAFile:
    """Does the file the node has at ``path`` hold our current CA — every one of
    ``ca_fingerprints``: during a CA rotation, the old and the new?"""
    if raw is None:
        return NodeCAFile(runtime, path, TrustState.MISSING, detail="no file")
    found = pem_fingerprints(raw)
    if not found:
        return NodeCAFile(runtime, path, TrustState.MISMATCH, detail="not a PEM certificate")
    if not ca_fingerprints:
        return NodeCAFile(runtime, path, TrustState.ERROR, found[0],
                          "the plan's ca.crt is missing: nothing to compare with")
    lacking = [fp for fp in ca_fingerprints if fp not in found]
    if not lacking:
        detail = "current CA" if len(ca_fingerprints) == 1 else "old and new CA (rotation)"
        return NodeCAFile(runtime, path, TrustState.MATCH, ca_fingerprints[0], detail)
    if len(lacking) < len(ca_fingerprints):
        which = "the new" if lacking == [ca_fingerprints[-1]] else "one"
        return NodeCAFile(runtime, path, TrustState.MISMATCH, found[0],
                          f"lacks {which} CA of the rotation (both must be trusted meanwhile)")
    return NodeCAFile(runtime, path, TrustState.MISMATCH, found[0], "another CA (stale)")


def pem_fingerprints(raw: bytes) -> list[str]:
    """SHA-256 fingerprints of every certificate in a PEM bundle (empty if none parse)."""
    from cryptography import x509

    from app.certs import fingerprint

    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError:
        return []
    return [fingerprint(cert) for cert in certs]


def summarize_node(status: NodeTrustStatus) -> None:
    states = {f.state for f in status.files}
    if not status.files:
        status.state = TrustState.MISSING
        status.message = "no container runtime found and os_trust_store is off: nothing to check"
        status.hint = "set the node's runtime in the plan, or os_trust_store = true"
        return
    for state in (TrustState.ERROR, TrustState.MISMATCH, TrustState.MISSING):
        if state in states:
            status.state = state
            # the file's detail when it explains more than "no file" (e.g. a config mismatch)
            bad = [f.path if f.detail in ("", "no file") or f.runtime == "os-store"
                   else f"{f.path} ({f.detail})" for f in status.files if f.state is state]
            status.message = f"{state.value}: {', '.join(bad)}"
            status.hint = "run regwiz onboard to install the current CA"
            return
    status.state = TrustState.MATCH
    status.message = f"current CA in {len(status.files)} place(s)"

