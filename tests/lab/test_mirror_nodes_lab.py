"""Nodes pulling through a pull-through cache (issue 14, part 2) on the lab.

The lab upstream (``tests.lab.upstream``: a TLS registry with its own CA) is named ``docker.io``
in the plan's mirror (its ``remote_url`` points at the lab upstream), so the Docker node can use
it too: the lab is offline, so a pull of ``docker.io/...`` that succeeds can only have gone
through the cache. ``regwiz deploy`` runs the registry and the cache (proxy mode, the plan's
certificate) on the registry host.

Nodes: ``docker`` (Docker: daemon.json registry-mirrors, a dockerd restart), ``containerd``
(containerd with config_path; mirror_only = true), ``bare`` (containerd without config_path:
regwiz sets it and restarts containerd once).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import onboard
from app.cli import main
from app.connections import host_key_policy, open_node_transport
from app.plan import Plan, ResolvedNode, Secrets, load_plan
from app.runtimes.probe import probe_node
from app.status import node_trust_status
from app.transport.hostkeys import HostKeyPolicy
from app.verify import NamedImage, NodeCheck, _NodeJob, mirror_checks, verify
from tests.lab.lab import DEPLOY_USER, Lab, LabHost
from tests.lab.plans import registry_plan_text
from tests.lab.trust import registry_answers, reset_node_trust
from tests.lab.upstream import Upstream, upstream
from tests.polling import poll_until

NAME = "rw-mirror-nodes"
REGISTRY_PORT, CACHE_PORT, UPSTREAM_PORT, DIRECT_PORT = 8621, 8622, 8623, 8624
CACHE = f"{NAME}-mirror-docker-io"  # the cache's container, as regwiz deploy names it
UPSTREAM = "mirror-nodes-upstream"  # the lab upstream's container
DATA_DIR, CERTS_DIR = f"/registry-image/{NAME}", f"/etc/docker/{NAME}-certs"
IMAGE = "docker.io/library/busybox:latest"
NODES = ("docker", "containerd", "bare")
SUDO_PASSWORD = "rwops-password"  # noqa: S105 - the lab's containerd host's
SECRETS = Secrets(sudo_password=SUDO_PASSWORD)


@dataclass
class Setup:
    lab: Lab
    plan: Plan
    upstream: Upstream
    ca_pem: bytes
    known_hosts: Path

    @property
    def cache(self) -> str:
        return f"{self.lab['registry'].ip}:{CACHE_PORT}"

    @property
    def direct_cache(self) -> str:
        """The cache of the upstream named by its own address."""
        return f"{self.lab['registry'].ip}:{DIRECT_PORT}"

    def direct_container(self) -> str:
        names = self.lab["registry"].exec(["docker", "ps", "--format", "{{.Names}}"])
        return next(n for n in names.stdout.decode().split() if n.startswith(f"{NAME}-mirror-")
                    and n != CACHE)

    def cli(self, command: str, *extra: str) -> int:
        assert self.plan.path is not None
        return main([command, "--plan", str(self.plan.path), "--known-hosts",
                     str(self.known_hosts), *extra])

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


def plan_text(lab: Lab, folder: Path, up: Upstream) -> str:
    """The registry and its docker.io cache (of the lab upstream) on the registry host, and the
    three nodes; containerd is mirror_only."""
    registry, key = lab["registry"], str(lab.key_path)
    text = registry_plan_text(registry, certificate={"common_name": "registry.lab.internal"},
                              port=REGISTRY_PORT, container_name=NAME, data_dir=DATA_DIR,
                              certs_dir=CERTS_DIR)
    ca = up.write_ca(folder / "upstream-ca.crt")
    nodes = [f'[[nodes.hosts]]\nhost = "{lab["docker"].ip}"\nssh_user = "root"\n',
             f'[[nodes.hosts]]\nhost = "{lab["containerd"].ip}"\nssh_user = "rwops"\n'
             "mirror_only = true\n",
             f'[[nodes.hosts]]\nhost = "{lab["bare"].ip}"\n']
    return "\n".join([
        text,
        f'[nodes.defaults]\nssh_user = "{DEPLOY_USER}"\nidentity_file = "{key}"\n',
        *nodes,
        f'[[mirrors]]\nupstream = "docker.io"\nport = {CACHE_PORT}\nremote_url = "{up.url}"\n'
        f'remote_ca = "{ca}"\n',
        # the upstream by its own address: a fallback would reach it (and show in its log)
        f'[[mirrors]]\nupstream = "{up.reference}"\nport = {DIRECT_PORT}\n'
        f'remote_url = "{up.url}"\nremote_ca = "{ca}"\nverify_image = "lab/second:1.0"\n',
    ])


def forget_image(host: LabHost, *prefixes: str) -> None:
    """Remove the images pulled from these repositories (busybox by default), with every name
    containerd's CRI gave them (tag, repo digest, image id), so the next pull really fetches."""
    prefixes = prefixes or ("docker.io/library/busybox",)
    if host.name == "docker":
        host.exec(["docker", "image", "rm", IMAGE], check=False)
        return
    ctr = ["ctr", "-n", "k8s.io", "images"]
    rows = [line.split() for line in host.exec([*ctr, "ls"]).stdout.decode().splitlines()[1:]]
    digests = {row[2] for row in rows if len(row) > 2 and row[0].startswith(prefixes)}
    names = [row[0] for row in rows if len(row) > 2 and row[2] in digests]
    if names:
        host.exec([*ctr, "rm", *names], check=False)


def restore_nodes(lab: Lab, folders: list[str]) -> None:
    """The lab's nodes as they were: no CA or hosts.toml in ``folders`` (the registry, the
    caches, the mirrored upstreams), no daemon.json, no pulled busybox."""
    for folder in folders:
        reset_node_trust(lab, folder)
    for name in NODES:
        host = lab[name]
        forget_image(host, "docker.io/library/busybox", *folders)
        host.exec(["sh", "-c", "rm -rf /run/regwiz " + " ".join(
            f"'/etc/containerd/certs.d/{folder}'" for folder in folders)
            + "; rmdir /etc/containerd/certs.d /etc/docker/certs.d 2>/dev/null; true"],
            check=False)
    docker = lab["docker"]
    if docker.host_path("/etc/docker/daemon.json").exists():
        docker.exec(["sh", "-c", "rm -f /etc/docker/daemon.json "
                     "/etc/docker/daemon.json.regwiz-backup-*"])
        docker.exec(["systemctl", "restart", "docker"], timeout=120)


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory,
          monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("mirror-nodes")
    known_hosts = folder / "known_hosts"
    shutil.copy(lab.known_hosts, known_hosts)
    monkeypatch_module.setenv("REGWIZ_SUDO_PASSWORD", SUDO_PASSWORD)
    with upstream(lab, UPSTREAM_PORT, UPSTREAM) as up:
        (folder / "plan.toml").write_text(plan_text(lab, folder, up))
        assert main(["certs", "--plan", str(folder / "plan.toml")]) == 0
        plan = load_plan(folder / "plan.toml")
        result = Setup(lab, plan, up, plan.trusted_ca_path.read_bytes(), known_hosts)
        folders = [plan.registry_reference, result.cache, result.direct_cache, "docker.io",
                   up.reference]
        restore_nodes(lab, folders)
        try:
            assert result.cli("deploy") == 0
            assert poll_until(lambda: registry_answers(result.cache, result.ca_pem), timeout=60)
            yield result
        finally:
            result.cli("uninstall", "--purge", "--yes")
            restore_nodes(lab, folders)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


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
    direct = setup.upstream.reference
    assert setup.mirrors_text("docker") == (
        f"docker.io ✓, {direct} – ({direct} is not mirrored on Docker: dockerd's "
        "registry-mirrors serve Docker Hub (docker.io) only)")
    for name in ("containerd", "bare"):
        assert setup.mirrors_text(name) == f"docker.io ✓, {direct} ✓"


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
    registry.exec(["docker", "stop", "-t", "2", CACHE])  # regwiz deploy's cache
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


def test_mirror_only_sends_the_upstream_no_request(setup: Setup) -> None:
    """The upstream named by its own address, its cache stopped: the mirror_only node asks
    only the cache (nothing reaches the upstream), the other node falls back to the upstream
    (its TLS handshake is in the upstream's log: it does not trust the upstream's CA). Docker's
    port publishing hides the client's address, so each pull is judged by the log lines that
    appear while it runs."""
    registry, direct = setup.lab["registry"], setup.direct_container()
    image = f"{setup.upstream.reference}/lab/second:1.0"
    registry.exec(["docker", "stop", "-t", "2", direct])
    try:
        seen = {name: upstream_log_during(setup, lambda name=name: pull_fails(setup, name, image))
                for name in ("containerd", "bare")}
        assert seen["containerd"] == "", seen["containerd"]
        assert "TLS handshake error" in seen["bare"], seen["bare"]
    finally:
        registry.exec(["docker", "start", direct])
        assert poll_until(lambda: registry_answers(setup.direct_cache, setup.ca_pem),
                          timeout=60)


def pull_fails(setup: Setup, name: str, image: str) -> None:
    proc = setup.lab[name].exec(["ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir",
                                 "/etc/containerd/certs.d", image], check=False, timeout=120)
    assert proc.returncode != 0, proc.stdout


def upstream_log_during(setup: Setup, action: Callable[[], None]) -> str:
    """What the upstream logged while ``action`` ran."""
    registry = setup.lab["registry"]
    since = registry.exec(["date", "+%s.%N"]).stdout.decode().strip()
    action()
    time.sleep(1)  # the log lines of the last request
    logs = registry.exec(["docker", "logs", "--since", since, UPSTREAM])
    return (logs.stdout + logs.stderr).decode().strip()


def test_verify_and_status_show_every_node_using_the_mirror(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    report = verify(setup.plan, SECRETS, host_key_policy=policy(setup.lab))
    assert report.ok, [(n.host, n.message) for n in report.failed_nodes]
    for node in report.nodes:
        kinds = [c.kind for c in node.checks if c.kind.startswith("mirror of docker.io")]
        assert kinds, [c.kind for c in node.checks]
    capsys.readouterr()
    setup.cli("status", "--json")
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    direct = setup.upstream.reference
    assert [[(m["upstream"], m["state"]) for m in n["mirrors"]] for n in nodes] == [
        [("docker.io", "configured"), (direct, "unsupported")],
        *[[("docker.io", "configured"), (direct, "configured")]] * 2]


def test_second_onboard_is_unchanged_and_restarts_nothing(setup: Setup) -> None:
    results = setup.onboard()
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(NODES, "unchanged"), {
        name: r.message for name, r in results.items()}
    assert all(r.restarted == [] for r in results.values())


def test_removing_the_mirror_removes_its_node_entries(setup: Setup) -> None:
    mirrors, setup.plan.mirrors = setup.plan.mirrors, []
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
            assert not (certs / setup.upstream.reference / "hosts.toml").exists()
            assert not (certs / setup.cache / "ca.crt").exists()
            assert not (certs / setup.direct_cache / "ca.crt").exists()
            assert (certs / setup.plan.registry_reference / "ca.crt").exists()  # the registry's
        again = setup.onboard()
        assert {n: r.status for n, r in again.items()} == dict.fromkeys(NODES, "unchanged")
    finally:
        setup.plan.mirrors = mirrors


def test_a_hand_written_hosts_toml_is_put_back_when_its_mirror_leaves(setup: Setup) -> None:
    bare = setup.lab["bare"]
    path = "/etc/containerd/certs.d/docker.io/hosts.toml"
    hand_written = b'server = "https://registry-1.docker.io"\n# the operator\'s own mirror list\n'
    bare.exec(["sh", "-c", f"mkdir -p {path.rsplit('/', 1)[0]} && cat > {path} && "
               f"chmod 640 {path}"], input=hand_written)
    results = setup.onboard()  # the plan's mirrors: regwiz's hosts.toml replaces it
    assert results["bare"].status == "changed", results["bare"].message
    assert bare.host_path(path).read_bytes().startswith(b"# Written by regwiz: mirror of")
    mirrors, setup.plan.mirrors = setup.plan.mirrors, []
    try:
        results = setup.onboard()
        assert results["bare"].status == "changed", results["bare"].message
        assert bare.host_path(path).read_bytes() == hand_written  # the operator's, back
        assert bare.host_path(path).stat().st_mode & 0o777 == 0o640
        backups = sorted(bare.host_path(path).parent.glob("hosts.toml.regwiz-backup-*"))
        assert [b.read_bytes()[:31] for b in backups[-2:]] == [  # (older ones: earlier tests)
            hand_written[:31], b"# Written by regwiz: mirror of "]
        assert setup.onboard()["bare"].status == "unchanged"  # not regwiz's: left alone
    finally:
        setup.plan.mirrors = mirrors
