"""Docker Engine: reads ``/etc/docker/certs.d/<registry>/ca.crt`` on every pull and push.

Mirrors: ``registry-mirrors`` in ``daemon.json``, read only when dockerd starts, and only for
Docker Hub (docker.io); dockerd falls back to Docker Hub when its mirrors fail.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from app.runtimes.base import (
    DOCKER_HUB,
    CaFileAdapter,
    CommandAction,
    MergeAction,
    MirrorJob,
    NodeAction,
    NodeCheckSpec,
    NodeSetupError,
    NoteAction,
    mirror_ca_action,
    mirror_refusal,
    stale_mirror_cas,
    url_host_port,
)
from app.runtimes.credentials import FORMAT_DOCKER_CONFIG, ROOT_DOCKER_CONFIG, CredentialLocation

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts

DOCKER_SOCKETS = ("/run/docker.sock", "/var/run/docker.sock")
DAEMON_JSON = "/etc/docker/daemon.json"
DOCKER_CERTS_D = "/etc/docker/certs.d"

# The certs.d folders, so the CA files of mirrors no longer in the plan can be removed.
_PROBE_LINES = f"""echo "docker.certs_d=$(ls {DOCKER_CERTS_D} 2>/dev/null | tr '\\n' ' ')"
grep -qs registry-mirrors {DAEMON_JSON} && echo "docker.registry_mirrors=1"
"""


def docker_ca_path(certs_d_name: str) -> str:
    return f"/etc/docker/certs.d/{certs_d_name}/ca.crt"


# --------------------------------------------------------------------------- mirrors


def merge_daemon_json(current: bytes | None, mirror_urls: list[str], job: MirrorJob
                      ) -> bytes | None:
    """daemon.json with ``registry-mirrors`` starting with ``mirror_urls`` and without regwiz's
    old caches; every other key and mirror kept. None when it already says so."""
    data = _daemon_config(current)
    listed = data.get("registry-mirrors", [])
    if not isinstance(listed, list):
        raise NodeSetupError(f"{DAEMON_JSON}: registry-mirrors is not a list",
                             "fix the file by hand, then run regwiz onboard again")
    kept = [url for url in listed if url not in mirror_urls and not job.ours(url_host_port(url))]
    wanted = [*mirror_urls, *kept]
    if wanted == listed or (not wanted and "registry-mirrors" not in data):
        return None
    merged = dict(data)
    if wanted:
        merged["registry-mirrors"] = wanted
    else:
        del merged["registry-mirrors"]
    return (json.dumps(merged, indent=2) + "\n").encode()


def _daemon_config(current: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(current) if current and current.strip() else {}
    except ValueError as error:
        raise NodeSetupError(f"{DAEMON_JSON} is not valid JSON ({error})",
                             "fix the file by hand (dockerd cannot start with it either)") from None
    if not isinstance(data, dict):
        raise NodeSetupError(f"{DAEMON_JSON} does not hold a JSON object",
                             "fix the file by hand, then run regwiz onboard again")
    return data


def daemon_mirrors(raw: bytes | None) -> list[str]:
    """The registry-mirrors a daemon.json lists ([] when none, or it cannot be read)."""
    try:
        listed = _daemon_config(raw).get("registry-mirrors", [])
    except NodeSetupError:
        return []
    return [url for url in listed if isinstance(url, str)] if isinstance(listed, list) else []


def digest_from_docker_pull(output: str) -> str | None:
    """The ``Digest: sha256:...`` line ``docker pull`` prints."""
    for line in output.splitlines():
        if line.strip().startswith("Digest:"):
            return line.split(":", 1)[1].strip()
    return None


def _docker_digest(output: str, reference: str) -> str | None:
    return digest_from_docker_pull(output)


def pull_spec(reference: str, *, sudo: bool) -> NodeCheckSpec:
    return NodeCheckSpec(
        "docker pull",
        ["docker", "pull", reference],
        sudo,
        cleanup=["docker", "image", "rm", reference],
        parse_digest=_docker_digest,
    )


class DockerAdapter(CaFileAdapter):
    names = ("docker",)
    reader = "dockerd (on every pull and push, no restart)"
    plan_names = ("docker",)
    probe_binaries = ("dockerd", "docker")
    probe_sockets = DOCKER_SOCKETS
    probe_paths = (DAEMON_JSON,)
    probe_services = ("docker",)
    probe_lines = _PROBE_LINES

    def detect(self, facts: NodeFacts) -> list[str]:
        # The binaries alone are not enough: images often ship them without running dockerd.
        probe = facts.probe
        running = bool(set(DOCKER_SOCKETS) & probe.sockets)
        set_up = "dockerd" in probe.binaries and DAEMON_JSON in probe.paths
        return ["docker"] if running or set_up else []

    def ca_file(self, address: RegistryAddress) -> str:
        return docker_ca_path(address.certs_d_name)

    def pull_check(self, name: str, facts: NodeFacts, reference: str, *, sudo: bool,
                   helpers: frozenset[str], image_id: str | None) -> NodeCheckSpec | None:
        return pull_spec(reference, sudo=sudo)

    def mirror_actions(self, name: str, facts: NodeFacts, job: MirrorJob) -> list[NodeAction]:
        actions: list[NodeAction] = []
        urls: list[str] = []
        for mirror in job.mirrors:
            if mirror.upstream != DOCKER_HUB:
                actions.append(NoteAction(
                    name, f"mirror {mirror.upstream}", f"{mirror.upstream} is not mirrored on "
                    "Docker: dockerd's registry-mirrors serve Docker Hub (docker.io) only",
                    mirror.upstream))
            elif mirror.private:
                actions.append(mirror_refusal(
                    name, mirror, "dockerd sends Docker Hub's login, not the cache's, to a "
                                  "registry-mirrors entry"))
            else:
                actions.append(mirror_ca_action(self.ca_file(mirror.address), name, mirror,
                                                job.ca_pem, "dockerd (on every pull)"))
                urls.append(mirror.address.url)
        hub = next((m.upstream for m in job.mirrors if m.address.url in urls), "")
        actions += self._stale_ca_files(name, facts, job)
        if not urls and "docker.registry_mirrors" not in facts.probe.values:
            return actions  # no mirror wanted, none listed: daemon.json is left alone
        actions.append(MergeAction(
            DAEMON_JSON, lambda current: merge_daemon_json(current, urls, job), name,
            f"{'list' if urls else 'check'} the docker.io mirror in daemon.json",
            "dockerd pulls Docker Hub images through registry-mirrors; other keys and mirrors "
            "are kept, the old file is backed up", upstream=hub))
        if urls and job.mirror_only:
            actions.append(NoteAction(
                name, "mirror_only", "Docker cannot enforce mirror_only: dockerd falls back to "
                "Docker Hub when its mirrors fail"))
        if "docker" in facts.probe.active_services:
            actions.append(CommandAction(
                ("systemctl", "restart", "docker"), name, "restart dockerd",
                "dockerd reads registry-mirrors from daemon.json only at start",
                triggers=(DAEMON_JSON,), service="docker", wait_active="docker"))
        return actions

    def _stale_ca_files(self, name: str, facts: NodeFacts, job: MirrorJob) -> list[NodeAction]:
        listed = facts.probe.values.get("docker.certs_d", "")
        return list(stale_mirror_cas(name, DOCKER_CERTS_D, listed, job))

    def credential_locations(self, name: str, facts: NodeFacts) -> list[CredentialLocation]:
        # The docker CLI sends the login from the calling user's config; root's is the one
        # `docker pull` (as root or with sudo, which sets HOME=/root) reads.
        return [CredentialLocation(ROOT_DOCKER_CONFIG, FORMAT_DOCKER_CONFIG,
                                   "docker pull as root")]

    def credential_pull_check(self, name: str, facts: NodeFacts, reference: str, *,
                              sudo: bool, helpers: frozenset[str],
                              image_id: str | None) -> NodeCheckSpec | None:
        spec = pull_spec(reference, sudo=sudo)
        return NodeCheckSpec("docker pull with root's ~/.docker/config.json", spec.pull,
                             spec.sudo, spec.digest, spec.cleanup, spec.parse_digest)
