"""CRI-O and podman (and skopeo, buildah): all read ``/etc/containers/certs.d/<registry>/ca.crt``,
with no restart. The folder name must match the image reference exactly (no ``:443``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.runtimes.base import CaFileAdapter, NodeCheckSpec

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts

CRIO_SOCKETS = ("/run/crio/crio.sock", "/var/run/crio/crio.sock")
CRIO_CONFIG_DIR = "/etc/crio"


def containers_ca_path(certs_d_name: str) -> str:
    """CRI-O, podman, skopeo and buildah all read /etc/containers/certs.d."""
    return f"/etc/containers/certs.d/{certs_d_name}/ca.crt"


def pull_spec(reference: str, *, sudo: bool, have: frozenset[str]) -> NodeCheckSpec:
    """podman pull where podman is installed, else skopeo inspect (same certs.d, same TLS)."""
    if "podman" in have:
        return NodeCheckSpec(
            "podman pull (/etc/containers/certs.d)",
            ["podman", "pull", reference],
            sudo,
            cleanup=["podman", "rmi", reference],
        )
    return NodeCheckSpec(
        "skopeo inspect (/etc/containers/certs.d)",
        ["skopeo", "inspect", "--format", "{{.Digest}}", f"docker://{reference}"],
        sudo,
        parse_digest=lambda output, _ref: output.strip() or None,
    )


class CrioAdapter(CaFileAdapter):
    names = ("cri-o", "podman")
    reader = "CRI-O, podman and skopeo (no restart)"
    plan_names = ("cri-o",)  # podman is only ever detected: it shares CRI-O's directory
    probe_binaries = ("crio", "podman")
    probe_sockets = CRIO_SOCKETS
    probe_paths = (CRIO_CONFIG_DIR,)
    helper_programs = ("podman", "skopeo")

    def detect(self, facts: NodeFacts) -> list[str]:
        probe = facts.probe
        found: list[str] = []
        if set(CRIO_SOCKETS) & probe.sockets or (
            "crio" in probe.binaries and CRIO_CONFIG_DIR in probe.paths
        ):
            found.append("cri-o")
        if "podman" in probe.binaries:
            found.append("podman")
        return found

    def configured(self, names: list[str]) -> list[str]:
        # podman and CRI-O read the same directory: configure it once.
        return ["cri-o"] if "cri-o" in names else names

    def ca_file(self, address: RegistryAddress) -> str:
        return containers_ca_path(address.certs_d_name)

    def pull_check(self, name: str, facts: NodeFacts, reference: str, *, sudo: bool,
                   helpers: frozenset[str], image_id: str | None) -> NodeCheckSpec | None:
        return pull_spec(reference, sudo=sudo, have=helpers)

    def cri_socket(self, name: str, facts: NodeFacts) -> str | None:
        if name != "cri-o":  # podman is no CRI runtime
            return None
        found = [s for s in CRIO_SOCKETS if s in facts.probe.sockets]
        return found[0] if found else CRIO_SOCKETS[0]
