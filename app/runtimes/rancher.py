"""k3s and RKE2: their embedded containerd is configured from ``/etc/rancher/<k3s|rke2>/
registries.yaml`` (``configs."<registry>".tls.ca_file``, plus a ``mirrors`` entry), read only
when the service starts, so the active service is restarted after a change. Other registries in
the file are kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.runtimes.base import (
    CommandAction,
    MergeAction,
    MirrorJob,
    NodeAction,
    NodeCheckSpec,
    NodeMirror,
    NodeSetupError,
    NoteAction,
    RegistriesYamlAction,
    RuntimeAdapter,
    ca_file_action,
    mirror_ca_action,
    mirror_refusal,
    stale_mirror_cas,
    url_host_port,
)
from app.runtimes.credentials import FORMAT_REGISTRIES_YAML, CredentialLocation

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts, ProbeResult

K3S_SERVICES = ("k3s", "k3s-agent")
RKE2_SERVICES = ("rke2-server", "rke2-agent")
RANCHER_CRI_SOCKET = "/run/k3s/containerd/containerd.sock"
# The certs.d folders, so the CA files of mirrors no longer in the plan can be removed.
_PROBE_LINES = """for r in k3s rke2; do
  echo "$r.certs_d=$(ls /etc/rancher/$r/certs.d 2>/dev/null | tr '\\n' ' ')"
done
"""
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

    data = _load_registries(existing)
    merged = _merged_registries(data, address, ca_path)
    if merged == data and existing:
        return None
    return "# Managed in part by regwiz (other entries are kept).\n" + yaml.safe_dump(
        merged, default_flow_style=False, sort_keys=False
    )


def _load_registries(text: str | None) -> dict[str, Any]:
    """A node's registries.yaml as a mapping ({} when absent or empty); NodeSetupError when it
    is not valid YAML or not a mapping, which regwiz will not rewrite."""
    import yaml

    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError as error:
        raise NodeSetupError(
            f"registries.yaml is not valid YAML ({_first_line(str(error))})",
            "fix the file by hand, then run regwiz onboard again",
        ) from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NodeSetupError("registries.yaml does not hold a mapping at the top level",
                             "fix the file by hand, then run regwiz onboard again")
    return data


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


def merge_registries_mirrors(existing: bytes | None, runtime: str,
                             mirrors: list[NodeMirror], job: MirrorJob) -> bytes | None:
    """registries.yaml with ``mirrors."UPSTREAM".endpoint`` led by each cache, the cache's
    ``configs."HOST:PORT"`` (its CA; the pull account's login for a private cache), and regwiz's
    entries of caches no longer in the plan taken out; None when already so."""
    import yaml

    data = _load_registries(existing.decode("utf-8", errors="replace")
                            if existing is not None else None)
    merged = yaml.safe_load(yaml.safe_dump(data)) or {}  # deep copy of plain data
    _drop_stale_mirrors(merged, job)
    for mirror in mirrors:
        _add_mirror(merged, runtime, mirror, job)
    for key in ("mirrors", "configs"):
        if merged.get(key) == {} and key not in data:
            del merged[key]
    if merged == data:
        return None
    return ("# Managed in part by regwiz (other entries are kept).\n" + yaml.safe_dump(
        merged, default_flow_style=False, sort_keys=False)).encode()


def _add_mirror(merged: dict[str, Any], runtime: str, mirror: NodeMirror,
                job: MirrorJob) -> None:
    url, reference = mirror.address.url, mirror.address.reference
    entry = _sub_mapping(merged, "mirrors").setdefault(mirror.upstream, {})
    if not isinstance(entry, dict):
        raise NodeSetupError(f"registries.yaml: mirrors.{mirror.upstream} is not a mapping")
    endpoints = entry.get("endpoint")
    others = [e for e in endpoints if e != url] if isinstance(endpoints, list) else []
    entry["endpoint"] = [url, *others]
    config = _sub_mapping(merged, "configs").setdefault(reference, {})
    if not isinstance(config, dict):
        raise NodeSetupError(f"registries.yaml: configs.{reference} is not a mapping")
    tls = config.setdefault("tls", {})
    if not isinstance(tls, dict):
        raise NodeSetupError(f"registries.yaml: configs.{reference}.tls is not a mapping")
    tls["ca_file"] = rancher_ca_path(runtime, mirror.address.certs_d_name)
    if mirror.private and job.credential is not None:
        config["auth"] = {"username": job.credential.username,
                          "password": job.credential.password}


def _drop_stale_mirrors(merged: dict[str, Any], job: MirrorJob) -> None:
    """Take out the endpoints and configs of regwiz's caches that are no longer in the plan
    (an upstream left with no endpoint is removed)."""
    current = job.references
    mirrors = merged.get("mirrors")
    mirrors = mirrors if isinstance(mirrors, dict) else {}
    dropped: set[str] = set()
    for upstream, entry in list(mirrors.items()):
        endpoints = entry.get("endpoint") if isinstance(entry, dict) else None
        if not isinstance(endpoints, list):
            continue
        kept = [e for e in endpoints
                if not (job.ours(url_host_port(e)) and url_host_port(e) not in current)]
        dropped.update(url_host_port(e) for e in endpoints if e not in kept)
        if not kept and endpoints:
            del mirrors[upstream]
        elif kept != endpoints:
            entry["endpoint"] = kept
    # only the configs of the cache endpoints just taken out: another registry on the same
    # host (its own configs entry, no mirror endpoint) keeps its settings
    configs = merged.get("configs")
    configs = configs if isinstance(configs, dict) else {}
    for reference in list(configs):
        if str(reference) in dropped and not any(
                str(reference) == url_host_port(e) for entry in mirrors.values()
                if isinstance(entry, dict) for e in entry.get("endpoint") or []):
            del configs[reference]


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


def _merger(runtime: str, mirrors: list[NodeMirror], job: MirrorJob
            ) -> Callable[[bytes | None], bytes | None]:
    return lambda current: merge_registries_mirrors(current, runtime, mirrors, job)


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
    probe_lines = _PROBE_LINES

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

    def mirror_actions(self, name: str, facts: NodeFacts, job: MirrorJob) -> list[NodeAction]:
        # The restart in trust_actions triggers on registries.yaml: a change here restarts too.
        actions: list[NodeAction] = []
        usable: list[NodeMirror] = []
        for mirror in job.mirrors:
            if mirror.private and job.credential is None:
                actions.append(mirror_refusal(
                    name, mirror, "the plan has no pull account to send it (registry.auth = "
                                  "\"htpasswd\" and credentials/cluster.json)"))
                continue
            usable.append(mirror)
            actions.append(mirror_ca_action(
                rancher_ca_path(name, mirror.address.certs_d_name), name, mirror, job.ca_pem,
                f"{name} (named in registries.yaml)"))
        for mirror in usable:  # one merge per upstream, so status can tell them apart
            actions.append(MergeAction(
                rancher_registries_path(name), _merger(name, [mirror], job), name,
                f"pull {mirror.upstream} through its mirror (registries.yaml)",
                "k3s/RKE2 render their containerd mirrors from this file at start; other "
                "entries are kept", mode=0o600, upstream=mirror.upstream))
        if not usable:  # (each mirror's merge above also takes out former mirrors)
            actions.append(MergeAction(
                rancher_registries_path(name), _merger(name, [], job), name,
                "remove mirrors no longer in the plan (registries.yaml)",
                "only entries naming the registry's host on a port of a former mirror",
                mode=0o600))
        actions += stale_mirror_cas(name, f"{rancher_dir(name)}/certs.d",
                                    facts.probe.values.get(f"{name}.certs_d", ""), job)
        if job.mirror_only and usable:
            actions.append(NoteAction(
                name, "mirror_only", f"{name} still tries each upstream itself after its "
                "mirror (containerd's default endpoint) unless it runs with "
                "--disable-default-registry-endpoint (k3s, experimental), which regwiz does "
                "not set"))
        return actions

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
