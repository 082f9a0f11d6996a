"""k3s and RKE2: their embedded containerd is configured from ``/etc/rancher/<k3s|rke2>/
registries.yaml`` (``configs."<registry>".tls.ca_file``, plus a ``mirrors`` entry), read only
when the service starts, so the active service is restarted after a change. Other registries in
the file are kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.runtimes.base import (
    CommandAction,
    NodeAction,
    NodeCheckSpec,
    NodeSetupError,
    RegistriesYamlAction,
    RuntimeAdapter,
    ca_file_action,
)
from app.runtimes.credentials import FORMAT_REGISTRIES_YAML, CredentialLocation

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts, ProbeResult

K3S_SERVICES = ("k3s", "k3s-agent")
RKE2_SERVICES = ("rke2-server", "rke2-agent")
RANCHER_CRI_SOCKET = "/run/k3s/containerd/containerd.sock"
# The servers: members of the embedded-etcd quorum (an external datastore cannot be seen from
# the node's files, so every server counts as one).
SERVER_SERVICES = ("k3s", "rke2-server")
RKE2_CRICTL = [
    "/var/lib/rancher/rke2/bin/crictl",
    "--config",
    "/var/lib/rancher/rke2/agent/etc/crictl.yaml",
]


def rancher_dir(runtime: str) -> str:
    return f"/etc/rancher/{'k3s' if runtime == 'k3s' else 'rke2'}"


def rancher_ca_path(runtime: str, certs_d_name: str) -> str:
    return f"{rancher_dir(runtime)}/certs.d/{certs_d_name}/ca.crt"


def rancher_registries_path(runtime: str) -> str:
    return f"{rancher_dir(runtime)}/registries.yaml"


def rancher_service(runtime: str, probe: ProbeResult) -> str | None:
    """The active k3s/RKE2 service to restart; None when none runs (it reads the file at start)."""
    candidates = K3S_SERVICES if runtime == "k3s" else RKE2_SERVICES
    return next((svc for svc in candidates if svc in probe.active_services), None)


# --------------------------------------------------------------------------- registries.yaml


def merge_registries_yaml(existing: str | None, address: RegistryAddress,
                          ca_path: str) -> str | None:
    """registries.yaml with our registry's mirror and CA added; None when already in place.

    Other registries, auth entries and unknown keys are kept as they are.
    """
    import yaml

    try:
        data = yaml.safe_load(existing) if existing else None
    except yaml.YAMLError as error:
        raise NodeSetupError(
            f"registries.yaml is not valid YAML ({_first_line(str(error))})",
            "fix the file by hand, then run regwiz onboard again",
        ) from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise NodeSetupError("registries.yaml does not hold a mapping at the top level",
                             "fix the file by hand, then run regwiz onboard again")
    merged = _merged_registries(data, address, ca_path)
    if merged == data and existing:
        return None
    return "# Managed in part by regwiz (other entries are kept).\n" + yaml.safe_dump(
        merged, default_flow_style=False, sort_keys=False
    )


def _merged_registries(data: dict[str, Any], address: RegistryAddress,
                       ca_path: str) -> dict[str, Any]:
    import yaml

    registry = address.reference
    merged = yaml.safe_load(yaml.safe_dump(data)) or {}  # deep copy of plain data
    mirrors = _sub_mapping(merged, "mirrors")
    if registry not in mirrors:
        mirrors[registry] = {"endpoint": [address.url]}
    configs = _sub_mapping(merged, "configs")
    entry = configs.setdefault(registry, {})
    if not isinstance(entry, dict):
        raise NodeSetupError(f"registries.yaml: configs.{registry} is not a mapping")
    tls = entry.setdefault("tls", {})
    if not isinstance(tls, dict):
        raise NodeSetupError(f"registries.yaml: configs.{registry}.tls is not a mapping")
    tls["ca_file"] = ca_path
    return merged


def _sub_mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        value = data[key] = {}
    if not isinstance(value, dict):
        raise NodeSetupError(f"registries.yaml: {key} is not a mapping",
                             "fix the file by hand, then run regwiz onboard again")
    return value


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


# --------------------------------------------------------------------------- verify


def pull_spec(runtime: str, reference: str, *, sudo: bool) -> NodeCheckSpec:
    """crictl pull prints "Image is up to date for sha256:<image id>": an image id, not the
    manifest digest, so k3s/rke2 pulls have no digest to compare."""
    if runtime == "k3s":
        return NodeCheckSpec(
            "k3s crictl pull (registries.yaml)",
            ["k3s", "crictl", "pull", reference],
            sudo,
            cleanup=["k3s", "crictl", "rmi", reference],
        )
    return NodeCheckSpec(
        "rke2 crictl pull (registries.yaml)",
        [*RKE2_CRICTL, "pull", reference],
        sudo,
        cleanup=[*RKE2_CRICTL, "rmi", reference],
    )


# --------------------------------------------------------------------------- the adapter


class RancherAdapter(RuntimeAdapter):
    names = ("k3s", "rke2")
    plan_names = ("k3s", "rke2")
    probe_binaries = ("k3s", "rke2")
    probe_sockets = (RANCHER_CRI_SOCKET,)
    probe_paths = ("/etc/rancher/k3s", "/etc/rancher/rke2", "/var/lib/rancher/k3s",
                   "/var/lib/rancher/rke2")
    probe_services = (*K3S_SERVICES, *RKE2_SERVICES)

    def detect(self, facts: NodeFacts) -> list[str]:
        probe = facts.probe
        return [name for name in self.names
                if name in probe.binaries
                or {f"/etc/rancher/{name}", f"/var/lib/rancher/{name}"} & probe.paths]

    def trust_actions(self, name: str, facts: NodeFacts, address: RegistryAddress,
                      ca_pem: bytes) -> list[NodeAction]:
        ca_path = rancher_ca_path(name, address.certs_d_name)
        yaml_path = rancher_registries_path(name)
        actions: list[NodeAction] = [
            ca_file_action(ca_path, name, ca_pem, f"{name} (named in registries.yaml)"),
            RegistriesYamlAction(
                yaml_path, address, ca_path, name,
                what=f"add the registry to {name}'s registries.yaml",
                why="k3s/RKE2 configure their containerd from this file; other entries are kept",
            ),
        ]
        service = rancher_service(name, facts.probe)
        if service:
            actions.append(CommandAction(
                ("systemctl", "restart", service), name, f"restart {service}",
                f"{name} renders its containerd registry config from registries.yaml at start",
                triggers=(yaml_path,), service=service, wait_active=service,
                quorum=service in SERVER_SERVICES,
            ))
        return actions

    def ca_paths(self, name: str, facts: NodeFacts, address: RegistryAddress) -> list[str]:
        return [rancher_ca_path(name, address.certs_d_name)]

    def pull_check(self, name: str, facts: NodeFacts, reference: str, *, sudo: bool,
                   helpers: frozenset[str], image_id: str | None) -> NodeCheckSpec | None:
        return pull_spec(name, reference, sudo=sudo)

    def cri_socket(self, name: str, facts: NodeFacts) -> str | None:
        return RANCHER_CRI_SOCKET  # k3s and RKE2 both serve their containerd here

    def credential_locations(self, name: str, facts: NodeFacts) -> list[CredentialLocation]:
        # configs."REG".auth in the same registries.yaml as the CA: the restart in
        # trust_actions triggers on it, so a changed credential reaches the embedded containerd.
        return [CredentialLocation(rancher_registries_path(name), FORMAT_REGISTRIES_YAML,
                                   f"{name} (registries.yaml configs.auth)")]

    def credential_pull_check(self, name: str, facts: NodeFacts, reference: str, *,
                              sudo: bool, helpers: frozenset[str],
                              image_id: str | None) -> NodeCheckSpec | None:
        spec = pull_spec(name, reference, sudo=sudo)
        return NodeCheckSpec(spec.kind.replace("(registries.yaml)", "(registries.yaml auth)"),
                             spec.pull, spec.sudo, spec.digest, spec.cleanup, spec.parse_digest)
