"""The registry of runtime adapters: adding a runtime is one module plus one line in ``_ADAPTERS``.

The order matters: it is the order of detection, of the plan's runtime choices, of onboarding
actions and of status/verify rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from app.runtimes.base import (
    CredentialAction,
    MirrorJob,
    NodeAction,
    RuntimeAdapter,
    TrustProblem,
)
from app.runtimes.containerd import ContainerdAdapter
from app.runtimes.credentials import (
    FORMAT_DOCKER_CONFIG,
    KUBELET_CONFIG,
    CredentialLocation,
    NodeCredential,
)
from app.runtimes.crio import CrioAdapter
from app.runtimes.docker import DockerAdapter
from app.runtimes.os_store import OsStoreAdapter
from app.runtimes.rancher import RancherAdapter
from app.runtimes.restarts import owed_problem, recorded_restarts

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts

_ADAPTERS: list[RuntimeAdapter] = [
    DockerAdapter(),
    ContainerdAdapter(),
    CrioAdapter(),
    RancherAdapter(),
    OsStoreAdapter(),
]


def register(adapter: RuntimeAdapter) -> None:
    """Add an adapter after the built-in runtimes (before the OS trust store)."""
    taken = set(known_runtimes())
    clash = [name for name in adapter.names if name in taken]
    if clash:
        raise ValueError(f"runtime name(s) already registered: {', '.join(clash)}")
    stores = [i for i, a in enumerate(_ADAPTERS) if a.system_store]
    _ADAPTERS.insert(stores[0] if stores and not adapter.system_store else len(_ADAPTERS),
                     adapter)


def unregister(adapter: RuntimeAdapter) -> None:
    _ADAPTERS.remove(adapter)


def adapters() -> tuple[RuntimeAdapter, ...]:
    """Every adapter, in order (the OS trust store included)."""
    return tuple(_ADAPTERS)


def runtime_adapters() -> tuple[RuntimeAdapter, ...]:
    """The adapters chosen by runtime name (not the OS trust store)."""
    return tuple(a for a in _ADAPTERS if not a.system_store)


def system_stores() -> tuple[RuntimeAdapter, ...]:
    """The adapters a node uses when it sets ``os_trust_store``."""
    return tuple(a for a in _ADAPTERS if a.system_store)


def adapter_for(name: str) -> RuntimeAdapter | None:
    """The runtime adapter answering to ``name`` (None for unknown names and the OS store)."""
    return next((a for a in runtime_adapters() if name in a.names), None)


def known_runtimes() -> tuple[str, ...]:
    """Every runtime name regwiz can detect or configure."""
    return tuple(name for a in runtime_adapters() for name in a.names)


def plan_runtimes() -> tuple[str, ...]:
    """The runtime names a plan may choose (besides "auto" and "none")."""
    return tuple(name for a in runtime_adapters() for name in a.plan_names)


# --------------------------------------------------------------------------- loops for consumers


def in_use(runtimes: Iterable[str]) -> list[tuple[RuntimeAdapter, str]]:
    """(adapter, name) for each known runtime name, in the given order; unknown ones left out."""
    pairs: list[tuple[RuntimeAdapter, str]] = []
    for name in runtimes:
        adapter = adapter_for(name)
        if adapter is not None:
            pairs.append((adapter, name))
    return pairs


def trusts_system_store(wanted_runtime: str, os_trust_store: bool, facts: NodeFacts) -> bool:
    """Whether the node's CA goes into the OS trust store: asked for, or ``runtime = "auto"``
    found no runtime (a plain host still gets curl/openssl trust instead of a failure)."""
    return os_trust_store or (wanted_runtime == "auto" and not facts.runtimes)


def stores_in_use(os_trust_store: bool) -> list[tuple[RuntimeAdapter, str]]:
    return [(a, a.names[0]) for a in system_stores()] if os_trust_store else []


def ca_locations(facts: NodeFacts, address: RegistryAddress,
                 os_trust_store: bool) -> list[tuple[str, str]]:
    """(runtime, path) of every CA file the node reads for this registry, each path once."""
    unique: dict[str, tuple[str, str]] = {}
    for adapter, name in [*in_use(facts.runtimes), *stores_in_use(os_trust_store)]:
        for path in adapter.ca_paths(name, facts, address):
            unique.setdefault(path, (name, path))
    return list(unique.values())


def trust_problems(facts: NodeFacts) -> list[tuple[str, TrustProblem]]:
    """(runtime, problem) for each runtime that ignores its CA file whatever it holds, and for
    each running service that still owes the restart that makes it read its files."""
    found: list[tuple[str, TrustProblem]] = []
    for adapter, name in in_use(facts.runtimes):
        problem = adapter.trust_problem(name, facts)
        if problem is not None:
            found.append((name, problem))
    for owed in recorded_restarts(facts.probe):
        if owed.service in facts.probe.active_services:
            found.append((owed.action.runtime, owed_problem(owed)))
    return found


def mirror_actions(facts: NodeFacts, job: MirrorJob) -> list[tuple[str, NodeAction]]:
    """(runtime, action) of every runtime the node uses, each runtime once (an adapter may fold
    names that share files): what status reads back to tell which mirrors are in place."""
    grouped: dict[RuntimeAdapter, list[str]] = {}
    for adapter, name in in_use(dict.fromkeys(facts.runtimes)):
        grouped.setdefault(adapter, []).append(name)
    return [(name, action) for adapter, group in grouped.items()
            for name in adapter.configured(group)
            for action in adapter.mirror_actions(name, facts, job)]


def helper_programs(runtimes: Iterable[str]) -> tuple[str, ...]:
    """Programs verify should look for on a node using these runtimes."""
    wanted = [program for adapter, _ in in_use(runtimes) for program in adapter.helper_programs]
    return tuple(dict.fromkeys(wanted))


# --------------------------------------------------------------------------- pull credentials

#: Written on every node, whatever its runtime (a node-wide step, not an adapter): the kubelet
#: reads Docker-format credentials from its root dir and passes the matching one to any CRI
#: runtime on every pull, so pods need no imagePullSecret.
KUBELET_LOCATION = CredentialLocation(KUBELET_CONFIG, FORMAT_DOCKER_CONFIG, "kubelet")


def node_wide_credential_actions(credential: NodeCredential) -> list[NodeAction]:
    verb = "remove" if credential.remove else "install"
    return [CredentialAction(
        KUBELET_LOCATION, credential, "kubelet",
        f"{verb} the pull credential for the kubelet",
        "the kubelet hands this login to the container runtime on every pull (no "
        "imagePullSecret needed); other registries' entries are kept",
    )]


def credential_locations(facts: NodeFacts) -> list[CredentialLocation]:
    """Every file of this node that holds the pull credential: the kubelet's, then each
    runtime's own; each path once."""
    unique: dict[str, CredentialLocation] = {KUBELET_LOCATION.path: KUBELET_LOCATION}
    for adapter, name in in_use(facts.runtimes):
        for location in adapter.credential_locations(name, facts):
            unique.setdefault(location.path, location)
    return list(unique.values())
