"""Container runtimes on a node: one adapter module per runtime behind ``base.RuntimeAdapter``.

- ``base``: the adapter interface and the data it returns (actions, trust problems, pull checks).
- ``probe``: the read-only probe of a node (binaries, sockets, OS family) and ``NodeFacts``.
- ``docker``, ``containerd``, ``crio`` (CRI-O and podman), ``rancher`` (k3s and RKE2),
  ``os_store`` (the OS trust store): where each reads a registry's CA and how it pulls.
- ``registry``: the ordered list of adapters and the loops onboard, status and verify share.

docs/runtimes.md describes, per runtime, where the CA goes, what needs a restart and why. The
names below are re-exported for callers that used the former single module.
"""

from __future__ import annotations

from app.runtimes.base import (
    CaFileAdapter,
    CommandAction,
    FileAction,
    NodeAction,
    NodeCheckSpec,
    NodeSetupError,
    RegistriesYamlAction,
    RuntimeAdapter,
    TrustProblem,
)
from app.runtimes.containerd import (
    CONTAINERD_CONFIG,
    DEFAULT_CONTAINERD_HOSTS_DIR,
    ContainerdConfigState,
    containerd_ca_path,
    containerd_hosts_toml_path,
    effective_hosts_dir,
    enable_config_path,
    parse_containerd_config,
    parse_containerd_version,
    render_hosts_toml,
)
from app.runtimes.crio import containers_ca_path
from app.runtimes.docker import docker_ca_path
from app.runtimes.os_store import OsTrustStore, os_trust_store, safe_file_stem
from app.runtimes.probe import (
    OS_DEBIAN,
    OS_RHEL,
    OS_SUSE,
    OS_UNKNOWN,
    NodeFacts,
    ProbeResult,
    os_family,
    parse_os_release,
    parse_probe_output,
    probe_node,
    probe_script,
)
from app.runtimes.rancher import (
    merge_registries_yaml,
    rancher_ca_path,
    rancher_registries_path,
    rancher_service,
)
from app.runtimes.registry import adapters, known_runtimes, plan_runtimes

# The probe script for the built-in adapters (probe_node builds it from the registry each time).
PROBE_SCRIPT = probe_script(adapters())

__all__ = [
    "CONTAINERD_CONFIG",
    "DEFAULT_CONTAINERD_HOSTS_DIR",
    "OS_DEBIAN",
    "OS_RHEL",
    "OS_SUSE",
    "OS_UNKNOWN",
    "PROBE_SCRIPT",
    "CaFileAdapter",
    "CommandAction",
    "ContainerdConfigState",
    "FileAction",
    "NodeAction",
    "NodeCheckSpec",
    "NodeFacts",
    "NodeSetupError",
    "OsTrustStore",
    "ProbeResult",
    "RegistriesYamlAction",
    "RuntimeAdapter",
    "TrustProblem",
    "containerd_ca_path",
    "containerd_hosts_toml_path",
    "containers_ca_path",
    "docker_ca_path",
    "effective_hosts_dir",
    "enable_config_path",
    "known_runtimes",
    "merge_registries_yaml",
    "os_family",
    "os_trust_store",
    "parse_containerd_config",
    "parse_containerd_version",
    "parse_os_release",
    "parse_probe_output",
    "plan_runtimes",
    "probe_node",
    "probe_script",
    "rancher_ca_path",
    "rancher_registries_path",
    "rancher_service",
    "render_hosts_toml",
    "safe_file_stem",
]
