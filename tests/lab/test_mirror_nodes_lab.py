"""Nodes pulling through a pull-through cache (issue 14, part 2) on the lab.

The lab upstream (``tests.lab.upstream``: a TLS registry with its own CA) is named ``docker.io``
in the plan's mirror (its ``remote_url`` points at the lab upstream), so the Docker node can use
it too: the lab is offline, so a pull of ``docker.io/...`` that succeeds can only have gone
through the cache. The cache is a Distribution proxy-mode container started here with ``docker
run`` on the registry host (TLS with the plan's certificate), as ``regwiz deploy`` runs it.

Nodes: ``docker`` (Docker: daemon.json registry-mirrors, a dockerd restart), ``containerd``
(containerd with config_path; mirror_only = true), ``bare`` (containerd without config_path:
regwiz sets it and restarts containerd once).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import onboard
from app.certs import ensure_certificates
from app.connections import host_key_policy, open_node_transport
from app.plan import MirrorSettings, NodeSettings, Plan, ResolvedNode, Secrets, new_plan, save_plan
from app.runtimes.probe import probe_node
from app.status import node_trust_status
from app.transport.hostkeys import HostKeyPolicy
from app.verify import NamedImage, NodeCheck, _NodeJob, mirror_checks
from tests.lab.lab import REGISTRY_IMAGE, Lab, LabHost
from tests.lab.trust import registry_answers, reset_node_trust
from tests.lab.upstream import Upstream, upstream
from tests.polling import poll_until

REGISTRY_PORT = 8611  # the registry itself never runs: only its reference names the files
CACHE_PORT = 8612
UPSTREAM_PORT = 8613
CACHE = "mirror-nodes-cache"
CACHE_FILES = "/registry-image/mirror-nodes-cache"  # private to the registry host
IMAGE = "docker.io/library/busybox:latest"
NODES = ("docker", "containerd", "bare")
SECRETS = Secrets(sudo_password="rwops-password")


@dataclass
class Setup:
    lab: Lab
    plan: Plan
    upstream: Upstream
    ca_pem: bytes

    @property
    def cache(self) -> str:
        return f"{self.lab['registry'].ip}:{CACHE_PORT}"

    def node(self, name: str) -> ResolvedNode:
        ip = self.lab[name].ip
        return next(n for n in self.plan.resolved_nodes() if n.host == ip)

    def onboard(self) -> dict[str, onboard.NodeResult]:
        report = onboard.onboard_nodes(self.plan, SECRETS, host_key_policy=policy(self.lab))
        names = {self.lab[name].ip: name for name in NODES}
        return {names[r.host]: r for r in report.results}

    def verify_mirrors(self, name: str) -> list[NodeCheck]:
        """verify's mirror checks on one node (CRI pulls as the kubelet, or docker pull)."""
        job = _NodeJob(self.plan, SECRETS, policy(self.lab), NamedImage("-", "-", "-"), None,
                       None, lambda _event: None, lambda: False)
        node = self.node(name)
        with open_node_transport(node, SECRETS, policy(self.lab)) as transport:
            facts = probe_node(transport, sudo=node.sudo, runtime=node.runtime)
            return mirror_checks(job, node, facts, transport)

    def mirrors_text(self, name: str) -> str:
        status = node_trust_status(self.plan, SECRETS, policy(self.lab), self.node(name), None)
        return status.mirrors_text


def policy(lab: Lab) -> HostKeyPolicy:
    return host_key_policy(False, known_hosts=lab.known_hosts)


def lab_plan(lab: Lab, directory: Path, upstream_url: str) -> Plan:
    registry = lab["registry"]
    plan = new_plan(directory / "plan.toml")
    plan.certificate.subject_alt_names = [registry.ip]
    plan.registry.address, plan.registry.port = registry.ip, REGISTRY_PORT
    plan.node_defaults.identity_file = str(lab.key_path)
    plan.node_defaults.ssh_user = "rwdeploy"
    plan.nodes = [NodeSettings(host=lab["docker"].ip, ssh_user="root"),
                  NodeSettings(host=lab["containerd"].ip, ssh_user="rwops", mirror_only=True),
                  NodeSettings(host=lab["bare"].ip)]
    plan.mirrors = [MirrorSettings("docker.io", CACHE_PORT, remote_url=upstream_url)]
    ensure_certificates(plan)
    save_plan(plan)
    return plan


def run_cache(host: LabHost, plan: Plan, up: Upstream) -> None:
    """A proxy-mode Distribution cache of ``up`` on CACHE_PORT, served with the plan's
    certificate and trusting the upstream's own CA."""
    files = host.host_path(CACHE_FILES)
    files.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        (files / name).write_bytes((plan.cert_dir / name).read_bytes())
    up.write_ca(files / "upstream-ca.crt")
    host.exec(["docker", "rm", "-f", CACHE], check=False)
    host.exec(["docker", "run", "-d", "--name", CACHE, "-p", f"{CACHE_PORT}:5000",
               "-v", f"{CACHE_FILES}:/certs:ro",
               "-e", "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/tls.crt",
               "-e", "REGISTRY_HTTP_TLS_KEY=/certs/tls.key",
               "-e", f"REGISTRY_PROXY_REMOTEURL={up.url}",
               "-e", "SSL_CERT_FILE=/certs/upstream-ca.crt", REGISTRY_IMAGE])


# Every name containerd's CRI gave the pulled image (tag, repo digest, image id): those whose
# manifest digest is busybox's.
FORGET_SCRIPT = """ctr="ctr -n k8s.io images"
d=$($ctr ls | awk '$1 ~ /^docker.io\\/library\\/busybox/ {print $3; exit}')
[ -z "$d" ] || $ctr ls | awk -v d="$d" '$3 == d {print $1}' | xargs -r $ctr rm
"""


def forget_image(host: LabHost) -> None:
    """Remove the pulled image, so the next pull really fetches it."""
    if host.name == "docker":
        host.exec(["docker", "image", "rm", IMAGE], check=False)
    else:
        host.exec(["sh", "-c", FORGET_SCRIPT], check=False)


def restore_nodes(lab: Lab, setup_cache: str, registry: str) -> None:
    """The lab's nodes as they were: no CA, no mirror files, no daemon.json, no busybox."""
    reset_node_trust(lab, registry)
    reset_node_trust(lab, setup_cache)
    for name in NODES:
        host = lab[name]
        forget_image(host)
        host.exec(["sh", "-c", "rm -rf /etc/containerd/certs.d/docker.io /run/regwiz; "
                   "rmdir /etc/containerd/certs.d /etc/docker/certs.d 2>/dev/null; true"],
                  check=False)
    docker = lab["docker"]
    if docker.host_path("/etc/docker/daemon.json").exists():
        docker.exec(["sh", "-c", "rm -f /etc/docker/daemon.json "
                     "/etc/docker/daemon.json.regwiz-backup-*"])
        docker.exec(["systemctl", "restart", "docker"], timeout=120)


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    registry = lab["registry"]
    with upstream(lab, UPSTREAM_PORT, "mirror-nodes-upstream") as up:
        plan = lab_plan(lab, tmp_path_factory.mktemp("mirror-nodes"), up.url)
        result = Setup(lab, plan, up, (plan.cert_dir / "ca.crt").read_bytes())
        restore_nodes(lab, result.cache, plan.registry_reference)
        try:
            run_cache(registry, plan, up)
            assert poll_until(lambda: registry_answers(result.cache, result.ca_pem), timeout=60)
            yield result
        finally:
            registry.exec(["docker", "rm", "-f", CACHE], check=False)
            registry.exec(["rm", "-rf", CACHE_FILES], check=False)
            restore_nodes(lab, result.cache, plan.registry_reference)


# --------------------------------------------------------------------------- the tests, in order


def test_onboard_points_every_runtime_at_the_mirror(setup: Setup) -> None:
    results = setup.onboard()
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(NODES, "changed"), {
        name: r.message for name, r in results.items()}
    assert results["docker"].restarted == ["docker"]  # registry-mirrors is read at start
    assert results["bare"].restarted == ["containerd"]  # config_path, set once
    assert results["containerd"].restarted == []  # hosts.toml is read on every pull
    hosts = setup.lab["containerd"].host_path("/etc/containerd/certs.d/docker.io/hosts.toml")
    assert f'server = "https://{setup.cache}"' in hosts.read_text()  # mirror_only
    bare = setup.lab["bare"].host_path("/etc/containerd/certs.d/docker.io/hosts.toml")
    assert 'server = "https://registry-1.docker.io"' in bare.read_text()
    for name in NODES:
        assert setup.mirrors_text(name) == "docker.io ✓"


def test_each_node_pulls_docker_io_through_the_mirror(setup: Setup) -> None:
    expected = setup.upstream.digest("library/busybox", "latest")
    for name in ("docker", "containerd"):  # bare pulls later, from the cache alone
        forget_image(setup.lab[name])
        checks = setup.verify_mirrors(name)
        assert checks and all(c.passed for c in checks), [c.detail for c in checks]
        assert f"through the mirror {setup.cache}" in checks[0].detail
        if name == "containerd":  # the CRI reports the manifest digest the upstream serves
            assert "CRI pull as the kubelet" in checks[0].kind and checks[0].digest == expected


def test_with_the_upstream_down_another_node_is_served_from_the_cache(setup: Setup) -> None:
    setup.upstream.stop()
    try:
        forget_image(setup.lab["bare"])
        checks = setup.verify_mirrors("bare")
        assert checks and all(c.passed for c in checks), [c.detail for c in checks]
        assert "CRI pull as the kubelet" in checks[0].kind
    finally:
        setup.upstream.start()


def test_mirror_only_never_falls_back_to_the_upstream(setup: Setup) -> None:
    """With the cache stopped, the mirror_only node's pull fails at the cache and never asks
    the upstream (registry-1.docker.io); the other containerd node falls back to it."""
    registry = setup.lab["registry"]
    registry.exec(["docker", "stop", "-t", "2", CACHE])
    try:
        errors = {}
        for name in ("containerd", "bare"):
            forget_image(setup.lab[name])
            proc = setup.lab[name].exec(
                ["ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir",
                 "/etc/containerd/certs.d", IMAGE], check=False, timeout=120)
            assert proc.returncode != 0
            errors[name] = (proc.stdout + proc.stderr).decode()
        assert "registry-1.docker.io" not in errors["containerd"], errors["containerd"]
        assert setup.cache in errors["containerd"]
        assert "registry-1.docker.io" in errors["bare"], errors["bare"]
        checks = setup.verify_mirrors("containerd")
        assert not checks[0].passed
        assert checks[0].detail.startswith(
            f"node {setup.lab['containerd'].ip} could not pull {IMAGE} through the mirror of "
            f"docker.io at {setup.cache}")
    finally:
        registry.exec(["docker", "start", CACHE])
        assert poll_until(lambda: registry_answers(setup.cache, setup.ca_pem), timeout=60)


def test_second_onboard_is_unchanged_and_restarts_nothing(setup: Setup) -> None:
    results = setup.onboard()
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(NODES, "unchanged"), {
        name: r.message for name, r in results.items()}
    assert all(r.restarted == [] for r in results.values())


def test_removing_the_mirror_removes_its_node_entries(setup: Setup) -> None:
    setup.plan.mirrors = []
    try:
        results = setup.onboard()
        assert {n: r.status for n, r in results.items()} == dict.fromkeys(NODES, "changed"), {
            name: r.message for name, r in results.items()}
        assert results["docker"].restarted == ["docker"]
        docker = setup.lab["docker"]
        assert "registry-mirrors" not in docker.host_path("/etc/docker/daemon.json").read_text()
        assert not docker.host_path(f"/etc/docker/certs.d/{setup.cache}/ca.crt").exists()
        for name in ("containerd", "bare"):
            certs = setup.lab[name].host_path("/etc/containerd/certs.d")
            assert not (certs / "docker.io" / "hosts.toml").exists()
            assert not (certs / setup.cache / "ca.crt").exists()
            assert (certs / setup.plan.registry_reference / "ca.crt").exists()  # the registry's
        again = setup.onboard()
        assert {n: r.status for n, r in again.items()} == dict.fromkeys(NODES, "unchanged")
    finally:
        setup.plan.mirrors = [MirrorSettings("docker.io", CACHE_PORT,
                                             remote_url=setup.upstream.url)]
