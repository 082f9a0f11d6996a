"""Where each container runtime (and the OS) reads a registry's CA, and how to find the runtimes.

Pure logic first (what to write where, config edits), then ``probe_node`` which gathers the facts
from a host with one read-only shell command plus a few file reads. See
/work/shared/notes/node-trust.md for the conventions each runtime follows.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import tomlkit
import tomlkit.exceptions
import yaml

from app.errors import RegwizError
from app.transport.base import Transport

# Runtimes regwiz knows how to configure. "podman" is only ever detected (it shares CRI-O's paths).
KNOWN_RUNTIMES: tuple[str, ...] = ("docker", "containerd", "cri-o", "podman", "k3s", "rke2")

OS_DEBIAN = "debian"
OS_RHEL = "rhel"
OS_SUSE = "suse"
OS_UNKNOWN = "unknown"

DEFAULT_CONTAINERD_HOSTS_DIR = "/etc/containerd/certs.d"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
K3S_SERVICES = ("k3s", "k3s-agent")
RKE2_SERVICES = ("rke2-server", "rke2-agent")

# The CRI plugin section holding `registry.config_path`, per containerd config version.
_CRI_REGISTRY_PLUGIN = {
    1: "cri",
    2: "io.containerd.grpc.v1.cri",
    3: "io.containerd.cri.v1.images",
}


class NodeSetupError(RegwizError):
    """A node cannot be set up as asked; ``kind`` is a short cause for summaries."""

    def __init__(self, message: str, hint: str | None = None, *, kind: str = "config") -> None:
        super().__init__(message, hint)
        self.kind = kind


# --------------------------------------------------------------------------- OS family


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of /etc/os-release, quotes removed; malformed lines are ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key] = parts[0] if parts else ""
    return values


def os_family(os_release_text: str) -> str:
    """"debian", "rhel", "suse" or "unknown" from the ID and ID_LIKE fields."""
    values = parse_os_release(os_release_text)
    ids = [values.get("ID", "").lower(), *values.get("ID_LIKE", "").lower().split()]
    for name in ids:
        if name in ("debian", "ubuntu", "raspbian", "linuxmint"):
            return OS_DEBIAN
        if name in ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn"):
            return OS_RHEL
        if name in ("suse", "opensuse", "sles", "sle-micro") or name.startswith("opensuse"):
            return OS_SUSE
    return OS_UNKNOWN


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


# --------------------------------------------------------------------------- per-runtime paths


def docker_ca_path(registry: str) -> str:
    return f"/etc/docker/certs.d/{registry}/ca.crt"


def containers_ca_path(registry: str) -> str:
    """CRI-O, podman, skopeo and buildah all read /etc/containers/certs.d."""
    return f"/etc/containers/certs.d/{registry}/ca.crt"


def containerd_ca_path(registry: str, hosts_dir: str = DEFAULT_CONTAINERD_HOSTS_DIR) -> str:
    return f"{hosts_dir}/{registry}/ca.crt"


def containerd_hosts_toml_path(registry: str,
                               hosts_dir: str = DEFAULT_CONTAINERD_HOSTS_DIR) -> str:
    return f"{hosts_dir}/{registry}/hosts.toml"


def render_hosts_toml(registry: str, ca_path: str) -> str:
    """The hosts.toml that tells containerd to trust ``ca_path`` for ``registry``."""
    return (
        "# Written by regwiz: trust the private registry's CA.\n"
        f'server = "https://{registry}"\n'
        "\n"
        f'[host."https://{registry}"]\n'
        '  capabilities = ["pull", "resolve", "push"]\n'
        f'  ca = "{ca_path}"\n'
    )


def rancher_dir(runtime: str) -> str:
    return f"/etc/rancher/{'k3s' if runtime == 'k3s' else 'rke2'}"


def rancher_ca_path(runtime: str, registry: str) -> str:
    return f"{rancher_dir(runtime)}/certs.d/{registry}/ca.crt"


def rancher_registries_path(runtime: str) -> str:
    return f"{rancher_dir(runtime)}/registries.yaml"


# --------------------------------------------------------------------------- containerd config


@dataclass(frozen=True)
class ContainerdConfigState:
    """What config.toml says about the registry hosts directory."""

    version: int
    hosts_dirs: list[str]  # config_path split on ":"; empty when unset
    legacy_registry: bool  # non-empty registry.mirrors/configs (conflicts with config_path)
    cri_disabled: bool  # the CRI plugin is disabled (docker's own containerd): not a k8s runtime


def _config_version(data: dict[str, Any], containerd_major: int | None) -> int:
    version = data.get("version")
    if isinstance(version, int) and version in _CRI_REGISTRY_PLUGIN:
        return version
    if version is None and not data:
        # No config at all: use the format this containerd writes by default.
        return 3 if (containerd_major or 1) >= 2 else 2
    if version is None:
        return 1
    raise NodeSetupError(
        f"{CONTAINERD_CONFIG}: unsupported config version {version!r} (expected 1, 2 or 3)",
        "fix the version line in config.toml",
    )


def _registry_table(data: dict[str, Any], version: int) -> dict[str, Any]:
    plugins = data.get("plugins")
    plugin = plugins.get(_CRI_REGISTRY_PLUGIN[version]) if isinstance(plugins, dict) else None
    registry = plugin.get("registry") if isinstance(plugin, dict) else None
    return registry if isinstance(registry, dict) else {}


def parse_containerd_config(text: str | None,
                            containerd_major: int | None = None) -> ContainerdConfigState:
    """Read config.toml (None: the file does not exist)."""
    try:
        data = tomlkit.parse(text).unwrap() if text else {}
    except tomlkit.exceptions.ParseError as error:
        raise NodeSetupError(
            f"{CONTAINERD_CONFIG} is not valid TOML ({error})",
            "fix the file by hand (containerd itself cannot start with it either)",
        ) from error
    version = _config_version(data, containerd_major)
    registry = _registry_table(data, version)
    config_path = registry.get("config_path")
    dirs = [d for d in config_path.split(":") if d] if isinstance(config_path, str) else []
    legacy = bool(registry.get("mirrors")) or bool(registry.get("configs"))
    disabled = data.get("disabled_plugins")
    cri_names = {"cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"}
    cri_disabled = isinstance(disabled, list) and any(name in cri_names for name in disabled)
    return ContainerdConfigState(version, dirs, legacy, cri_disabled)


def effective_hosts_dir(state: ContainerdConfigState,
                        containerd_version: tuple[int, int] | None) -> str | None:
    """The directory containerd reads hosts.toml from, or None when it reads none yet."""
    if state.hosts_dirs:
        return state.hosts_dirs[0]
    # From 2.2 on, an unset config_path defaults to /etc/containerd/certs.d:/etc/docker/certs.d.
    if containerd_version is not None and containerd_version >= (2, 2):
        return DEFAULT_CONTAINERD_HOSTS_DIR
    return None


def enable_config_path(text: str | None, state: ContainerdConfigState,
                       hosts_dir: str = DEFAULT_CONTAINERD_HOSTS_DIR) -> str:
    """config.toml with the CRI registry's ``config_path`` set, keeping comments and layout."""
    if state.legacy_registry:
        raise NodeSetupError(
            f"{CONTAINERD_CONFIG} configures registries with the deprecated registry.mirrors/"
            "registry.configs tables, which containerd refuses to combine with config_path",
            "move those entries to hosts.toml files (containerd docs: 'Registry Configuration') "
            "or set config_path yourself, then run regwiz onboard again",
        )
    try:
        doc = tomlkit.parse(text or "")
    except tomlkit.exceptions.ParseError as error:
        raise NodeSetupError(f"{CONTAINERD_CONFIG} is not valid TOML ({error})") from error
    if "version" not in doc and state.version != 1:
        doc["version"] = state.version
    registry = _ensure_tables(doc, ["plugins", _CRI_REGISTRY_PLUGIN[state.version], "registry"])
    registry["config_path"] = hosts_dir
    new_text = tomlkit.dumps(doc)
    check = parse_containerd_config(new_text)
    if check.hosts_dirs[:1] != [hosts_dir]:
        raise NodeSetupError(
            f"could not add config_path to {CONTAINERD_CONFIG} automatically",
            f'add config_path = "{hosts_dir}" under the CRI registry plugin yourself',
        )
    return new_text


def _ensure_tables(doc: Any, keys: list[str]) -> Any:
    container = doc
    for index, key in enumerate(keys):
        if key not in container:
            last = index == len(keys) - 1
            container[key] = tomlkit.table(is_super_table=not last)
        container = container[key]
        if not isinstance(container, dict):
            raise NodeSetupError(
                f"{CONTAINERD_CONFIG}: {'.'.join(keys[: index + 1])} is not a table",
                "fix config.toml by hand",
            )
    return container


def parse_containerd_version(output: str) -> tuple[int, int] | None:
    """(major, minor) from `containerd --version` output, e.g. "... 1.6.20~ds1 ..." or "v2.0.1"."""
    for word in output.split():
        match = re.match(r"v?(\d+)\.(\d+)\.\d+", word)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


# --------------------------------------------------------------------------- k3s / RKE2


def merge_registries_yaml(existing: str | None, registry: str, ca_path: str) -> str | None:
    """registries.yaml with our registry's mirror and CA added; None when already in place.

    Other registries, auth entries and unknown keys are kept as they are.
    """
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
    merged = _merged_registries(data, registry, ca_path)
    if merged == data and existing:
        return None
    return "# Managed in part by regwiz (other entries are kept).\n" + yaml.safe_dump(
        merged, default_flow_style=False, sort_keys=False
    )


def _merged_registries(data: dict[str, Any], registry: str, ca_path: str) -> dict[str, Any]:
    merged = yaml.safe_load(yaml.safe_dump(data)) or {}  # deep copy of plain data
    mirrors = _sub_mapping(merged, "mirrors")
    if registry not in mirrors:
        mirrors[registry] = {"endpoint": [f"https://{registry}"]}
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


# --------------------------------------------------------------------------- probing a node

# Read-only; prints KEY=VALUE lines, then the os-release text after a marker line.
PROBE_SCRIPT = r"""
PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/usr/bin:/bin"
for b in dockerd docker containerd crio podman k3s rke2 kubectl; do
  p=$(command -v "$b" 2>/dev/null) && echo "bin.$b=$p"
done
for s in /run/docker.sock /var/run/docker.sock /run/containerd/containerd.sock \
         /run/crio/crio.sock /var/run/crio/crio.sock /run/k3s/containerd/containerd.sock; do
  [ -S "$s" ] && echo "socket=$s"
done
for d in /etc/docker/daemon.json /etc/containerd/config.toml /etc/crio /etc/rancher/k3s \
         /etc/rancher/rke2 /var/lib/rancher/k3s /var/lib/rancher/rke2; do
  [ -e "$d" ] && echo "path=$d"
done
c=/etc/containerd/config.toml
[ -e "$c" ] && echo "containerd.config_mode=$(stat -c %a "$c")"
command -v containerd >/dev/null 2>&1 &&
  echo "containerd.version=$(containerd --version 2>/dev/null)"
for svc in containerd k3s k3s-agent rke2-server rke2-agent; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    echo "active=$svc"
  fi
done
echo "---os-release---"
cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
true
"""


@dataclass
class ProbeResult:
    """Raw facts from PROBE_SCRIPT."""

    binaries: dict[str, str] = field(default_factory=dict)
    sockets: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    active_services: set[str] = field(default_factory=set)
    containerd_version: tuple[int, int] | None = None
    containerd_config_mode: int = 0o644
    os_release: str = ""


def parse_probe_output(output: str) -> ProbeResult:
    head, _, os_release = output.partition("---os-release---\n")
    result = ProbeResult(os_release=os_release)
    for line in head.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key.startswith("bin."):
            result.binaries[key[4:]] = value
        elif key == "socket":
            result.sockets.add(value)
        elif key == "path":
            result.paths.add(value)
        elif key == "active":
            result.active_services.add(value)
        elif key == "containerd.version":
            result.containerd_version = parse_containerd_version(value)
        elif key == "containerd.config_mode" and re.fullmatch(r"[0-7]{3,4}", value):
            result.containerd_config_mode = int(value, 8)
    return result


def detect_runtimes(probe: ProbeResult,
                    containerd_state: ContainerdConfigState | None) -> list[str]:
    """The runtimes this node really uses, judged by running sockets first, then installed config.

    Binaries alone are not enough: docker.io installs containerd as its engine, and images often
    ship binaries that are never started.
    """
    found: list[str] = []
    sockets, paths, bins = probe.sockets, probe.paths, probe.binaries
    if sockets & {"/run/docker.sock", "/var/run/docker.sock"} or (
        "dockerd" in bins and "/etc/docker/daemon.json" in paths
    ):
        found.append("docker")
    containerd_here = "/run/containerd/containerd.sock" in sockets or (
        "containerd" in bins and "/etc/containerd/config.toml" in paths
    )
    if containerd_here and not (containerd_state and containerd_state.cri_disabled):
        found.append("containerd")
    if sockets & {"/run/crio/crio.sock", "/var/run/crio/crio.sock"} or (
        "crio" in bins and "/etc/crio" in paths
    ):
        found.append("cri-o")
    if "podman" in bins:
        found.append("podman")
    for name in ("k3s", "rke2"):
        if name in bins or {f"/etc/rancher/{name}", f"/var/lib/rancher/{name}"} & paths:
            found.append(name)
    return found


def rancher_service(runtime: str, probe: ProbeResult) -> str | None:
    """The active k3s/RKE2 service to restart; None when none runs (it reads the file at start)."""
    candidates = K3S_SERVICES if runtime == "k3s" else RKE2_SERVICES
    return next((svc for svc in candidates if svc in probe.active_services), None)


@dataclass
class NodeFacts:
    """What onboarding needs to know about a node before deciding what to write."""

    os_family: str
    os_name: str
    probe: ProbeResult
    runtimes: list[str]  # what will be configured (detected, or the plan's explicit choice)
    detected: list[str]  # what detection found (informational when runtime is explicit)
    containerd_config_text: str | None = None
    containerd_state: ContainerdConfigState | None = None


def probe_node(transport: Transport, *, sudo: bool, runtime: str,
               timeout: float = 30.0) -> NodeFacts:
    """Gather facts from a node: one read-only command, plus config.toml when containerd is used."""
    output = transport.run(["sh", "-c", PROBE_SCRIPT], timeout=timeout).stdout
    probe = parse_probe_output(output)
    config_text: str | None = None
    state: ContainerdConfigState | None = None
    if ("containerd" in probe.binaries or CONTAINERD_CONFIG in probe.paths
            or "/run/containerd/containerd.sock" in probe.sockets or runtime == "containerd"):
        raw = transport.read_file(CONTAINERD_CONFIG, sudo=sudo, timeout=timeout)
        config_text = raw.decode("utf-8", errors="replace") if raw is not None else None
        major = probe.containerd_version[0] if probe.containerd_version else None
        state = parse_containerd_config(config_text, major)
    detected = detect_runtimes(probe, state)
    chosen = detected if runtime == "auto" else ([] if runtime == "none" else [runtime])
    if "containerd" in chosen and state is None:
        state = parse_containerd_config(None, None)
    release = parse_os_release(probe.os_release)
    return NodeFacts(
        os_family=os_family(probe.os_release),
        os_name=release.get("PRETTY_NAME", release.get("ID", "unknown")),
        probe=probe,
        runtimes=chosen,
        detected=detected,
        containerd_config_text=config_text,
        containerd_state=state,
    )
