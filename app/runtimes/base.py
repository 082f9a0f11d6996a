"""The interface every runtime adapter implements, and the data it hands to onboard/status/verify.

An adapter knows one runtime (or a family sharing one trust location, e.g. CRI-O and podman):
how to tell from the probe facts that a node uses it, which files and restarts make it trust a
registry's CA (onboard), where it reads that CA and what else can stop it trusting it (status),
and how to pull an image the way it does (verify). The consumers only loop over adapters.
"""

from __future__ import annotations

import abc
import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.errors import RegwizError

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts
    from app.transport.base import Transport


class NodeSetupError(RegwizError):
    """A node cannot be set up as asked; ``kind`` is a short cause for summaries."""

    def __init__(self, message: str, hint: str | None = None, *, kind: str = "config") -> None:
        super().__init__(message, hint)
        self.kind = kind


# --------------------------------------------------------------------------- pull credentials
# (the merging and reading of the files that hold them: app.runtimes.credentials)


def credential_fingerprint(auth: str) -> str:
    """``sha256:<16 hex>`` of an ``auth`` value: comparable, never reversible to the secret."""
    return "sha256:" + hashlib.sha256(auth.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class NodeCredential:
    """What a node should hold for ``registry``: the pull account's login, or nothing.

    ``remove`` asks for the entries regwiz wrote (user ``username``) to be taken out (a revoked
    account); then ``auth`` is empty.
    """

    registry: str
    username: str
    auth: str = field(default="", repr=False)
    remove: bool = False

    def __repr__(self) -> str:
        what = "remove" if self.remove else "install"
        return f"NodeCredential({self.registry!r}, {self.username!r}, {what})"

    @property
    def password(self) -> str:
        if not self.auth:
            return ""
        return base64.b64decode(self.auth).decode("utf-8").partition(":")[2]

    @property
    def fingerprint(self) -> str:
        return credential_fingerprint(self.auth) if self.auth else ""


@dataclass(frozen=True)
class CredentialLocation:
    """Where a node keeps the pull credential: a path and its format (app.runtimes.credentials)."""

    path: str
    format: str
    reader: str  # who reads it, e.g. "kubelet" or a runtime name



# --------------------------------------------------------------------------- onboarding actions


@dataclass(frozen=True)
class FileAction:
    path: str
    content: bytes
    runtime: str  # which runtime (or "os") reads it
    what: str
    why: str
    mode: int = 0o644
    backup: bool = False  # keep a copy of the current file before replacing it
    upstream: str = ""  # the mirrored upstream this file serves ("": the registry itself)


@dataclass(frozen=True)
class CommandAction:
    argv: tuple[str, ...]
    runtime: str
    what: str
    why: str
    triggers: tuple[str, ...]  # run only when one of these files changed in this run
    service: str = ""  # a restarted service, for the report
    wait_active: str = ""  # service to wait for after the command
    # Restarting it takes a member out of a cluster quorum (a k3s/RKE2 server's embedded
    # etcd): such restarts never run on two nodes at once (app.runtimes.restarts).
    quorum: bool = False

    @property
    def is_restart(self) -> bool:
        """A service restart: run in restart waves after every node's files are written."""
        return bool(self.service)


@dataclass(frozen=True)
class RegistriesYamlAction:
    """A registries.yaml (k3s/RKE2), merged with the node's current file when the step runs."""

    path: str
    address: RegistryAddress
    ca_path: str
    runtime: str
    what: str
    why: str


@dataclass(frozen=True)
class CredentialAction:
    """The pull credential merged into a file that holds credentials (``location.format``),
    when the step runs: our registry's entry set, or removed when ``credential.remove``. The
    credential is in memory only: steps show the path, never the content."""

    location: CredentialLocation
    credential: NodeCredential = field(repr=False)
    runtime: str
    what: str
    why: str
    mode: int = 0o600

    @property
    def path(self) -> str:
        return self.location.path


@dataclass(frozen=True)
class MergeAction:
    """A file rewritten from its current content when the step runs: ``merge`` returns the new
    content, or None when the file already says what it should (other entries are kept)."""

    path: str
    merge: Callable[[bytes | None], bytes | None]
    runtime: str
    what: str
    why: str
    mode: int = 0o644
    backup: bool = True
    upstream: str = ""


#: a node file's backup is ``<path>.regwiz-backup-<UTC time %Y%m%d%H%M%S%f>``
BACKUP_INFIX = ".regwiz-backup-"
#: the first line of every node file regwiz writes whole (hosts.toml, CRI-O drop-ins)
REGWIZ_MARK = b"# Written by regwiz"


@dataclass(frozen=True)
class RemoveAction:
    """A file regwiz wrote that the plan no longer wants (a mirror taken out of the plan)."""

    path: str
    runtime: str
    what: str
    why: str
    upstream: str = ""
    #: removed only while it holds exactly these bytes (a CA file of another registry on the
    #: same host, signed by another CA, is not regwiz's to remove)
    only_if: bytes | None = None
    #: the backup of the operator's own file that regwiz's replaced: put back, not removed
    restore_from: str | None = None


@dataclass(frozen=True)
class NoteAction:
    """What a runtime cannot do as asked, said in the node's steps and notes; changes nothing
    (``refuse``: the step fails instead, with ``hint`` as the fix)."""

    runtime: str
    what: str
    note: str
    upstream: str = ""
    refuse: bool = False
    hint: str | None = None
    kind: str = "config"  # the failure's kind when ``refuse``


NodeAction = (FileAction | CommandAction | RegistriesYamlAction | CredentialAction | MergeAction
              | RemoveAction | NoteAction)


def would_change(action: FileAction | MergeAction | RemoveAction, current: bytes | None) -> bool:
    """Whether running ``action`` on a file holding ``current`` (None: none) changes it."""
    if isinstance(action, FileAction):
        return current != action.content
    if isinstance(action, MergeAction):
        return action.merge(current) is not None
    return current is not None and (action.only_if is None or current == action.only_if)


def ca_file_action(path: str, runtime: str, ca_pem: bytes, reader: str) -> FileAction:
    """The CA certificate written where ``reader`` looks for it."""
    return FileAction(path, ca_pem, runtime, f"install the registry CA for {runtime}",
                      f"{reader} reads trusted CAs for this registry from here")


# --------------------------------------------------------------------------- mirrors


@dataclass(frozen=True)
class NodeMirror:
    """A pull-through cache as nodes use it: ``upstream`` as image references spell it, and
    ``address`` where the cache answers (the registry's host on the mirror's port, served with
    the plan's certificate, so nodes trust the plan's CA for it)."""

    upstream: str
    address: RegistryAddress
    private: bool = False  # the cache requires the plan's accounts (an upstream login is set)

    @property
    def upstream_url(self) -> str:
        """The upstream's own endpoint, the fallback (docker.io's API is registry-1)."""
        return DOCKER_HUB_URL if self.upstream == DOCKER_HUB else f"https://{self.upstream}"


DOCKER_HUB = "docker.io"
DOCKER_HUB_URL = "https://registry-1.docker.io"


@dataclass(frozen=True)
class MirrorJob:
    """The plan's mirrors for one node. Entries pointing at the registry's host on a port
    other than the registry's own are regwiz's: the ones no mirror uses any more are removed."""

    mirrors: tuple[NodeMirror, ...]
    registry: RegistryAddress
    ca_pem: bytes
    mirror_only: bool = False  # air-gapped: no fallback to the upstream
    credential: NodeCredential | None = None  # the pull account, for caches that require it

    def ours(self, host_port: str) -> bool:
        """``host_port`` (HOST:PORT) is a cache regwiz configured on a node, now or before."""
        host, _, port = host_port.rpartition(":")
        return (port.isdigit() and int(port) != self.registry.port
                and host.strip("[]").lower() == self.registry.host.lower())

    @property
    def references(self) -> set[str]:
        return {mirror.address.reference for mirror in self.mirrors}


def url_host_port(url: object) -> str:
    """HOST:PORT of a URL or of a bare ``host:port`` ("" for anything else)."""
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        return ""
    return urlsplit(url if "//" in url else f"//{url}").netloc.rpartition("@")[2]


def stale_mirror_cas(runtime: str, certs_d: str, listed: str, job: MirrorJob
                     ) -> list[RemoveAction]:
    """The CA files in ``certs_d`` (its folders ``listed``, space-separated, by the probe) of
    regwiz's caches no longer in the plan."""
    return [stale_mirror_ca(f"{certs_d}/{folder}/ca.crt", runtime, folder, job)
            for folder in listed.split() if job.ours(folder) and folder not in job.references]


def stale_mirror_ca(path: str, runtime: str, folder: str, job: MirrorJob) -> RemoveAction:
    """The CA file of a cache no longer in the plan: removed only when it is the plan's CA,
    which regwiz wrote there (another registry on the registry's host keeps its own)."""
    return RemoveAction(path, runtime, f"remove the CA of the old mirror {folder}",
                        "no mirror of the plan is served there any more", only_if=job.ca_pem)


def mirror_ca_action(path: str, runtime: str, mirror: NodeMirror, ca_pem: bytes,
                     reader: str) -> FileAction:
    """The plan's CA written where ``reader`` looks for the cache's (it serves the plan's
    certificate)."""
    return FileAction(path, ca_pem, runtime,
                      f"trust the {mirror.upstream} mirror ({mirror.address.reference})",
                      f"{reader} reads trusted CAs for the cache from here",
                      upstream=mirror.upstream)


def mirror_refusal(runtime: str, mirror: NodeMirror, why: str) -> NoteAction:
    """The failing step for a private cache a runtime cannot log in to."""
    return NoteAction(
        runtime, f"use the private mirror of {mirror.upstream}",
        f"{runtime} cannot use the mirror of {mirror.upstream} at {mirror.address.reference}: "
        f"that cache requires a login, and {why}",
        mirror.upstream, refuse=True, kind="mirror-auth",
        hint=f"pull {mirror.upstream} images on this node without the mirror (take it out of "
             "the plan, or remove username from the mirror to make its cache anonymous), or "
             "run k3s/RKE2 here, which can send the login to a mirror",
    )


# --------------------------------------------------------------------------- status and verify


@dataclass(frozen=True)
class TrustProblem:
    """Something besides the CA file that keeps a runtime from trusting the registry."""

    path: str  # the file at fault
    summary: str  # one line for the status panel
    check: str  # the name verify reports the problem under
    detail: str  # verify's longer explanation
    hint: str
    mismatch: bool = False  # status: "mismatch" (configured, but not as containerd runs it)


@dataclass(frozen=True)
class NodeCheckSpec:
    """How one runtime pulls the test image on a node, reads its digest and cleans up."""

    kind: str
    pull: list[str]
    sudo: bool
    digest: list[str] | None = None  # a command whose output names the pulled digest
    cleanup: list[str] | None = None
    parse_digest: Callable[[str, str], str | None] | None = None


# --------------------------------------------------------------------------- the interface


class RuntimeAdapter(abc.ABC):
    """One runtime's knowledge. Register an instance in ``app.runtimes.registry``."""

    #: Every name the adapter answers to, in detection order (a node may use several).
    names: tuple[str, ...] = ()
    #: The names a plan may choose with ``runtime = "..."`` (a subset of ``names``).
    plan_names: tuple[str, ...] = ()
    #: True for the OS trust store: used when a node sets ``os_trust_store``, not by name.
    system_store: bool = False
    #: What PROBE_SCRIPT looks for on the node's behalf (``command -v``, ``-S``, ``-e``,
    #: ``systemctl is-active``), and shell lines printing extra ``KEY=VALUE`` facts.
    probe_binaries: tuple[str, ...] = ()
    probe_sockets: tuple[str, ...] = ()
    probe_paths: tuple[str, ...] = ()
    probe_services: tuple[str, ...] = ()
    probe_lines: str = ""
    #: Programs verify looks for on the node before asking for a pull check.
    helper_programs: tuple[str, ...] = ()

    def gather(self, transport: Transport, facts: NodeFacts, *, sudo: bool, wanted: str,
               timeout: float) -> None:
        """Read what the probe script cannot print (e.g. a config file) into ``facts.extras``."""
        return None  # most runtimes need nothing beyond the probe script

    @abc.abstractmethod
    def detect(self, facts: NodeFacts) -> list[str]:
        """The names of this adapter the node really uses (judged by running sockets first)."""

    def configured(self, names: list[str]) -> list[str]:
        """Of this adapter's names in use, those that need their own trust actions."""
        return names

    @abc.abstractmethod
    def trust_actions(self, name: str, facts: NodeFacts, address: RegistryAddress,
                      ca_pem: bytes) -> list[NodeAction]:
        """The writes and restarts that make ``name`` trust the CA, in order."""

    @abc.abstractmethod
    def ca_paths(self, name: str, facts: NodeFacts, address: RegistryAddress) -> list[str]:
        """Where ``name`` reads the registry's CA on this node."""

    def trust_problem(self, name: str, facts: NodeFacts) -> TrustProblem | None:
        """A reason ``name`` ignores its CA file even when the file is right (None: no problem)."""
        return None

    def pull_check(self, name: str, facts: NodeFacts, reference: str, *, sudo: bool,
                   helpers: frozenset[str], image_id: str | None) -> NodeCheckSpec | None:
        """How ``name`` pulls ``reference`` (None when there is no pull check for it). For a
        CRI runtime this is the fallback when its CRI socket cannot be reached."""
        return None

    def cri_socket(self, name: str, facts: NodeFacts) -> str | None:
        """The socket where ``name`` serves the kubelet's CRI (None: not a CRI runtime).
        verify pulls through it exactly as the kubelet does (app.cri)."""
        return None

    def sandbox_image(self, name: str, facts: NodeFacts) -> str | None:
        """The sandbox (pause) image ``name``'s CRI starts every pod with (None: unknown)."""
        return None

    # --- the registry's pull credential (docs/runtimes.md, "Pull credentials") ---------------

    def credential_locations(self, name: str, facts: NodeFacts) -> list[CredentialLocation]:
        """Files of ``name``'s own that hold the pull credential (default: none; the kubelet's
        config.json is written on every node whatever its runtime)."""
        return []

    def credential_actions(self, name: str, facts: NodeFacts, address: RegistryAddress,
                           credential: NodeCredential) -> list[NodeAction]:
        """The merges that install (or remove) the pull credential where ``name`` reads it.

        Run before the adapter's restarts, which trigger on these files too.
        """
        return [
            CredentialAction(location, credential, name,
                             f"{'remove' if credential.remove else 'install'} the pull "
                             f"credential for {location.reader}",
                             f"{location.reader} reads registry credentials from this file; "
                             "other entries are kept")
            for location in self.credential_locations(name, facts)
        ]

    def credential_pull_check(self, name: str, facts: NodeFacts, reference: str, *,
                              sudo: bool, helpers: frozenset[str],
                              image_id: str | None) -> NodeCheckSpec | None:
        """A pull by ``name`` itself that reads the installed credential (None: the runtime gets
        it from the kubelet, so verify proves the kubelet's file instead)."""
        return None

    # --- pull-through caches (docs/runtimes.md, "Mirrors") ----------------------------------

    def mirror_actions(self, name: str, facts: NodeFacts, job: MirrorJob) -> list[NodeAction]:
        """The writes (and restarts) that make ``name`` pull each upstream through its cache,
        and remove the entries of caches no longer in the plan. Actions serving one mirror
        carry its ``upstream`` (status reads them back); what the runtime cannot do is a
        NoteAction. Default: a runtime regwiz cannot point at mirrors."""
        return [NoteAction(name, f"mirror {mirror.upstream}",
                           f"{name}: regwiz cannot configure mirrors for it", mirror.upstream)
                for mirror in job.mirrors]


class CaFileAdapter(RuntimeAdapter):
    """A runtime that trusts a registry through one CA file it reads on every pull (no restart,
    no other configuration): say where the file is and who reads it."""

    #: Who reads the file and when, for the onboarding step's "why".
    reader: str = ""

    @abc.abstractmethod
    def ca_file(self, address: RegistryAddress) -> str:
        """The CA file's path for this registry."""

    def trust_actions(self, name: str, facts: NodeFacts, address: RegistryAddress,
                      ca_pem: bytes) -> list[NodeAction]:
        return [ca_file_action(self.ca_file(address), name, ca_pem, self.reader)]

    def ca_paths(self, name: str, facts: NodeFacts, address: RegistryAddress) -> list[str]:
        return [self.ca_file(address)]
