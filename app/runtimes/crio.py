"""CRI-O and podman (and skopeo, buildah): all read ``/etc/containers/certs.d/<registry>/ca.crt``,
with no restart. The folder name must match the image reference exactly (no ``:443``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.runtimes.base import (
    CaFileAdapter,
    CommandAction,
    FileAction,
    MirrorJob,
    NodeAction,
    NodeCheckSpec,
    NodeMirror,
    RemoveAction,
    mirror_ca_action,
    mirror_refusal,
    stale_mirror_cas,
)

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts

CRIO_SOCKETS = ("/run/crio/crio.sock", "/var/run/crio/crio.sock")
CRIO_CONFIG_DIR = "/etc/crio"
REGISTRIES_CONF_D = "/etc/containers/registries.conf.d"
CONTAINERS_CERTS_D = "/etc/containers/certs.d"
MIRROR_CONF_PREFIX = "regwiz-mirror-"

# regwiz's mirror drop-ins, so those of mirrors no longer in the plan can be removed.
_PROBE_LINES = f"""echo "crio.mirror_confs=$(ls {REGISTRIES_CONF_D} 2>/dev/null | \\
  grep '^{MIRROR_CONF_PREFIX}.*\\.conf$' | tr '\\n' ' ')"
echo "crio.certs_d=$(ls {CONTAINERS_CERTS_D} 2>/dev/null | tr '\\n' ' ')"
"""


def mirror_conf_path(mirror: NodeMirror) -> str:
    slug = "".join(c if c.isalnum() or c in ".-" else "-" for c in mirror.upstream.lower())
    return f"{REGISTRIES_CONF_D}/{MIRROR_CONF_PREFIX}{slug}.conf"


def render_mirror_conf(mirror: NodeMirror, mirror_only: bool) -> str:
    """A registries.conf drop-in (CRI-O, podman): the upstream pulled through the cache first,
    then from itself; with ``mirror_only`` its location is the cache (no upstream at all)."""
    cache = mirror.address.reference
    if mirror_only:
        return (f"# Written by regwiz: mirror of {mirror.upstream} (mirror_only: no upstream).\n"
                f'[[registry]]\nprefix = "{mirror.upstream}"\nlocation = "{cache}"\n')
    return (f"# Written by regwiz: mirror of {mirror.upstream}.\n"
            f'[[registry]]\nprefix = "{mirror.upstream}"\nlocation = "{mirror.upstream}"\n\n'
            f'[[registry.mirror]]\nlocation = "{cache}"\n')


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
    probe_services = ("crio",)
    probe_lines = _PROBE_LINES

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

    def mirror_actions(self, name: str, facts: NodeFacts, job: MirrorJob) -> list[NodeAction]:
        actions: list[NodeAction] = []
        for mirror in job.mirrors:
            if mirror.private:
                actions.append(mirror_refusal(
                    name, mirror, "CRI-O gets only the kubelet's login for the image's own "
                                  "registry, not one for the mirror host"))
                continue
            actions += [
                mirror_ca_action(self.ca_file(mirror.address), name, mirror, job.ca_pem,
                                 self.reader),
                FileAction(mirror_conf_path(mirror), render_mirror_conf(mirror, job.mirror_only)
                           .encode(), name, f"pull {mirror.upstream} through its mirror "
                           "(registries.conf.d)", "CRI-O, podman and skopeo read "
                           "registries.conf.d; CRI-O after a reload", upstream=mirror.upstream),
            ]
        wanted = {mirror_conf_path(m) for m in job.mirrors}
        listed = facts.probe.values.get("crio.mirror_confs", "").split()
        actions += [RemoveAction(f"{REGISTRIES_CONF_D}/{file}", name, "stop mirroring "
                                 f"{file.removeprefix(MIRROR_CONF_PREFIX)[:-5]}",
                                 "its mirror is no longer in the plan")
                    for file in listed if f"{REGISTRIES_CONF_D}/{file}" not in wanted]
        actions += stale_mirror_cas(name, CONTAINERS_CERTS_D,
                                    facts.probe.values.get("crio.certs_d", ""), job)
        if "crio" in facts.probe.active_services:
            # Not a restart: CRI-O re-reads registries.conf(.d) on SIGHUP, pods keep running.
            actions.append(CommandAction(
                ("systemctl", "reload", "crio"), name, "reload CRI-O",
                "CRI-O re-reads its registries configuration on reload",
                triggers=tuple(sorted(wanted | {a.path for a in actions
                                                if isinstance(a, RemoveAction)}))))
        return actions

    def cri_socket(self, name: str, facts: NodeFacts) -> str | None:
        if name != "cri-o":  # podman is no CRI runtime
            return None
        found = [s for s in CRIO_SOCKETS if s in facts.probe.sockets]
        return found[0] if found else CRIO_SOCKETS[0]
