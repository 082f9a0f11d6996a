"""The OS trust store: an anchor file plus the command that rebuilds the system CA bundle.

Used when a node sets ``os_trust_store = true`` (curl, openssl and anything else on the system
pool then trust the registry). Daemons load the pool at start, so this alone does not make a
running dockerd or containerd trust it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.runtimes.base import CommandAction, FileAction, NodeAction, NodeSetupError, RuntimeAdapter
from app.runtimes.facts import OS_DEBIAN, OS_RHEL, OS_SUSE

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts


def safe_file_stem(registry: str) -> str:
    """A file-name-safe form of a registry reference ("10.0.0.5:8443" -> "10.0.0.5_8443")."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", registry)


@dataclass(frozen=True)
class OsTrustStore:
    anchor_path: str
    update_command: list[str]


def os_trust_store(family: str, registry: str) -> OsTrustStore:
    """Where the OS-wide CA bundle takes extra anchors, and the command that rebuilds it."""
    stem = f"regwiz-{safe_file_stem(registry)}"
    if family == OS_DEBIAN:
        return OsTrustStore(f"/usr/local/share/ca-certificates/{stem}.crt",
                            ["update-ca-certificates"])
    if family == OS_RHEL:
        return OsTrustStore(f"/etc/pki/ca-trust/source/anchors/{stem}.pem",
                            ["update-ca-trust", "extract"])
    if family == OS_SUSE:
        return OsTrustStore(f"/etc/pki/trust/anchors/{stem}.pem", ["update-ca-certificates"])
    raise NodeSetupError(
        "cannot install the CA into the OS trust store: unknown OS family "
        "(/etc/os-release names neither a Debian-, RHEL- nor SUSE-like system)",
        "set os_trust_store = false for this node and rely on the runtime's own CA directory",
        kind="unknown-os",
    )


class OsStoreAdapter(RuntimeAdapter):
    names = ("os-store",)
    plan_names = ()  # chosen with os_trust_store = true, never as a runtime
    system_store = True

    def detect(self, facts: NodeFacts) -> list[str]:
        return []

    def trust_actions(self, name: str, facts: NodeFacts, address: RegistryAddress,
                      ca_pem: bytes) -> list[NodeAction]:
        store = os_trust_store(facts.os_family, address.reference)
        return [
            FileAction(store.anchor_path, ca_pem, "os",
                       "add the registry CA to the OS trust store",
                       "curl, openssl and other programs using the system CA bundle trust it"),
            CommandAction(tuple(store.update_command), "os", "rebuild the OS CA bundle",
                          "the anchor is only used once the bundle is regenerated",
                          triggers=(store.anchor_path,)),
        ]

    def ca_paths(self, name: str, facts: NodeFacts, address: RegistryAddress) -> list[str]:
        return [os_trust_store(facts.os_family, address.reference).anchor_path]
