"""Docker Engine: reads ``/etc/docker/certs.d/<registry>/ca.crt`` on every pull and push."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.runtimes.base import CaFileAdapter, NodeCheckSpec
from app.runtimes.credentials import FORMAT_DOCKER_CONFIG, ROOT_DOCKER_CONFIG, CredentialLocation

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts

DOCKER_SOCKETS = ("/run/docker.sock", "/var/run/docker.sock")
DAEMON_JSON = "/etc/docker/daemon.json"


def docker_ca_path(certs_d_name: str) -> str:
    return f"/etc/docker/certs.d/{certs_d_name}/ca.crt"


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
