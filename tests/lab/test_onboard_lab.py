"""Acceptance for node onboarding on the lab: real sshd, sudo, dockerd, containerd, OS store.

A registry:2 container serving a certificate from `app.certs` runs on the lab's registry host;
each node is onboarded over real SSH and must then really pull from it with its own runtime.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app import onboard
from app.certs import ensure_certificates
from app.cli import main
from app.connections import host_key_policy
from app.plan import NodeSettings, Plan, Secrets, load_plan, new_plan, save_plan
from app.transport.hostkeys import HostKeyPolicy
from tests.lab.lab import BUSYBOX_IMAGE, CONTAINERD_CONFIG_BASE, Lab, LabHost
from tests.lab.trust import registry_answers, reset_node_trust
from tests.polling import poll_until

PORT = 8543
CONTAINER = "onboard-lab-registry"
CERTS_DIR = "/etc/docker/onboard-lab-certs"  # private to the registry host
SEED = "onboard/busybox:seed"
NODES = ("docker", "containerd", "bare", "plain")


@dataclass
class Setup:
    lab: Lab
    plan: Plan
    ca_pem: bytes
    registry: str  # "IP:PORT"

    @property
    def ca_anchor(self) -> str:
        return f"/usr/local/share/ca-certificates/regwiz-{self.registry.replace(':', '_')}.crt"

    def node_files(self) -> dict[str, list[str]]:
        reg = self.registry
        return {
            "docker": [f"/etc/docker/certs.d/{reg}/ca.crt"],
            "containerd": [f"/etc/containerd/certs.d/{reg}/ca.crt",
                           f"/etc/containerd/certs.d/{reg}/hosts.toml"],
            "bare": [f"/etc/containerd/certs.d/{reg}/ca.crt",
                     f"/etc/containerd/certs.d/{reg}/hosts.toml"],
            "plain": [self.ca_anchor],
        }


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    registry = lab["registry"]
    plan = new_plan(tmp_path_factory.mktemp("onboard") / "plan.toml")
    plan.certificate.subject_alt_names = [registry.ip]
    plan.registry.address, plan.registry.port = registry.ip, PORT
    plan.node_defaults.identity_file = str(lab.key_path)
    plan.node_defaults.ssh_user = "rwdeploy"
    plan.nodes = [
        NodeSettings(host=lab["docker"].ip, ssh_user="root"),
        NodeSettings(host=lab["containerd"].ip, ssh_user="rwops"),
        NodeSettings(host=lab["bare"].ip),
        NodeSettings(host=lab["plain"].ip, os_trust_store=True),
    ]
    ensure_certificates(plan)
    save_plan(plan)
    files = plan.cert_dir
    certs = registry.host_path(CERTS_DIR)
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "tls.crt").write_bytes((files / "tls.crt").read_bytes())
    (certs / "tls.key").write_bytes((files / "tls.key").read_bytes())
    (certs / "tls.key").chmod(0o600)
    registry.exec(["docker", "rm", "-f", CONTAINER], check=False)
    registry.exec([
        "docker", "run", "-d", "--name", CONTAINER, "-v", f"{CERTS_DIR}:/docker-in-certs:ro",
        "-e", "REGISTRY_HTTP_ADDR=0.0.0.0:443",
        "-e", "REGISTRY_HTTP_TLS_CERTIFICATE=/docker-in-certs/tls.crt",
        "-e", "REGISTRY_HTTP_TLS_KEY=/docker-in-certs/tls.key",
        "-p", f"{PORT}:443", "registry:2",
    ])
    address = f"{registry.ip}:{PORT}"
    ca_pem = (files / "ca.crt").read_bytes()
    result = Setup(lab, plan, ca_pem, address)
    try:
        assert poll_until(lambda: registry_answers(address, ca_pem), timeout=60)
        local = f"127.0.0.1:{PORT}/{SEED}"  # docker treats 127.0.0.1 as insecure: no CA needed
        registry.exec(["docker", "tag", BUSYBOX_IMAGE, local])
        registry.exec(["docker", "push", local], timeout=120)
        registry.exec(["docker", "rmi", local])
        reset_node_trust(result.lab, result.registry)
        yield result
    finally:
        registry.exec(["docker", "rm", "-f", CONTAINER], check=False)
        registry.exec(["rm", "-rf", CERTS_DIR], check=False)
        reset_node_trust(result.lab, result.registry)


def _policy(lab: Lab) -> HostKeyPolicy:
    return host_key_policy(False, known_hosts=lab.known_hosts)


def _onboard(setup: Setup, secrets: Secrets | None = None,
             **kwargs: Any) -> onboard.OnboardReport:
    events: list[onboard.NodeProgress] = []
    report = onboard.onboard_nodes(
        setup.plan, secrets or Secrets(sudo_password="rwops-password"),
        host_key_policy=_policy(setup.lab), on_progress=events.append, **kwargs,
    )
    finals = [e for e in events if e.state in onboard.FINAL_STATES]
    assert sorted(e.host for e in finals) == sorted(r.host for r in report.results)
    return report


def _by_name(setup: Setup, report: onboard.OnboardReport) -> dict[str, onboard.NodeResult]:
    names = {setup.lab[name].ip: name for name in NODES}
    return {names[r.host]: r for r in report.results if r.host in names}


def _cli(setup: Setup, *args: str) -> int:
    assert setup.plan.path is not None
    return main(["onboard", "--plan", str(setup.plan.path), "--known-hosts",
                 str(setup.lab.known_hosts), *args])


def _ctr_pull(node: LabHost, ref: str) -> tuple[int, str]:
    proc = node.exec(["ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir",
                      "/etc/containerd/certs.d", ref], check=False, timeout=120)
    return proc.returncode, (proc.stdout + proc.stderr).decode()


# --------------------------------------------------------------------------- the tests, in order


def test_dry_run_changes_nothing(setup: Setup) -> None:
    report = _onboard(setup, dry_run=True)
    results = _by_name(setup, report)
    assert {r.status for r in results.values()} == {onboard.PLANNED}
    bare = "\n".join(results["bare"].dry_run_lines)
    assert "config_path" in bare and "restart containerd" in bare
    for name, paths in setup.node_files().items():
        for path in paths:
            assert not setup.lab[name].host_path(path).exists(), path


def test_first_run_sets_up_each_node_for_its_runtime(setup: Setup) -> None:
    lab = setup.lab
    bare_pid = lab["bare"].daemon_pid("containerd")
    containerd_pid = lab["containerd"].daemon_pid("containerd")
    report = _onboard(setup)
    results = _by_name(setup, report)
    assert report.exit_code == 0, [(r.host, r.message) for r in report.results]
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(NODES, "changed")
    assert results["docker"].runtimes == ["docker"]
    assert results["containerd"].runtimes == ["containerd"]
    assert results["bare"].runtimes == ["containerd"]
    assert results["plain"].runtimes == []

    for name, paths in setup.node_files().items():
        for path in paths:
            content = lab[name].host_path(path).read_bytes()
            assert b"PRIVATE KEY" not in content  # only ca.crt ever travels
            if path.endswith((".crt", ".pem")):
                assert content == setup.ca_pem

    # bare had no config_path: enabled once, with a backup, and containerd restarted once.
    config = lab["bare"].host_path("/etc/containerd/config.toml").read_text()
    assert 'config_path = "/etc/containerd/certs.d"' in config
    assert 'bin_dir = "/usr/lib/cni"' in config
    backups = list(lab["bare"].host_path("/etc/containerd").glob("config.toml.regwiz-backup-*"))
    assert [b.read_text() for b in backups] == [CONTAINERD_CONFIG_BASE]
    assert results["bare"].restarted == ["containerd"]
    new_pid = lab["bare"].daemon_pid("containerd")
    assert new_pid is not None and new_pid != bare_pid
    dump = lab["bare"].exec(["containerd", "config", "dump"]).stdout.decode()
    assert 'config_path = "/etc/containerd/certs.d"' in dump
    # the node that already had config_path was not restarted
    assert results["containerd"].restarted == []
    assert lab["containerd"].daemon_pid("containerd") == containerd_pid


def test_each_node_really_pulls_with_its_runtime(setup: Setup) -> None:
    lab, ref = setup.lab, f"{setup.registry}/{SEED}"
    for name in ("containerd", "bare"):
        status, out = _ctr_pull(lab[name], ref)
        lab[name].exec(["ctr", "-n", "k8s.io", "images", "rm", ref], check=False)
        assert status == 0, f"{name}: {out}"
    docker = lab["docker"]
    pulled = docker.exec(["docker", "pull", ref], check=False, timeout=120)
    docker.exec(["docker", "rmi", "-f", ref], check=False)
    assert pulled.returncode == 0, pulled.stderr.decode()
    curl = lab["plain"].exec(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                              f"https://{setup.registry}/v2/"], check=False)
    assert (curl.returncode, curl.stdout) == (0, b"200"), curl.stderr.decode()


def test_second_run_is_unchanged_and_restarts_nothing(setup: Setup) -> None:
    lab = setup.lab
    pids = {name: lab[name].daemon_pid("containerd") for name in ("containerd", "bare")}
    mtimes = {path: lab[name].host_path(path).stat().st_mtime_ns
              for name, paths in setup.node_files().items() for path in paths}
    report = _onboard(setup)
    results = _by_name(setup, report)
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(NODES, "unchanged")
    assert all(not r.changed_files and not r.restarted for r in results.values())
    assert {name: lab[name].daemon_pid("containerd") for name in pids} == pids
    assert {path: lab[name].host_path(path).stat().st_mtime_ns
            for name, paths in setup.node_files().items() for path in paths} == mtimes
    assert len(list(lab["bare"].host_path("/etc/containerd").glob("config.toml.regwiz-*"))) == 1


def test_a_node_that_is_down_fails_alone_and_retry_failed_finishes_it(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, plain = setup.lab, setup.lab["plain"]
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", "rwops-password")
    reset_node_trust(setup.lab, setup.registry)  # so the retry has real work to do on plain
    plain.stop_sshd()
    try:
        code = _cli(setup, "--parallel", "4")
        out = capsys.readouterr().out
    finally:
        plain.start_sshd()
    assert code == 1
    saved = onboard.load_results(setup.plan)
    assert saved[plain.ip]["status"] == "failed"
    assert saved[plain.ip]["reason"] == "unreachable"
    assert {saved[lab[n].ip]["status"] for n in ("docker", "containerd", "bare")} == {"changed"}
    assert f"{plain.ip}: unreachable" in out
    assert not plain.host_path(setup.ca_anchor).exists()

    assert _cli(setup, "--retry-failed") == 0
    out = capsys.readouterr().out
    assert plain.ip in out and lab["docker"].ip not in out.split("HOST")[1]
    assert plain.host_path(setup.ca_anchor).read_bytes() == setup.ca_pem
    assert onboard.load_results(setup.plan)[plain.ip]["status"] == "changed"


def test_wrong_sudo_password_fails_that_node_and_writes_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    node = setup.lab["containerd"]
    reg_dir = f"/etc/containerd/certs.d/{setup.registry}"
    node.exec(["rm", "-rf", reg_dir])
    before = sorted(p.name for p in node.host_path("/etc/containerd/certs.d").iterdir())
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", "not-the-password")
    assert _cli(setup, "--only", node.ip, setup.lab["docker"].ip) == 1
    out = capsys.readouterr().out
    saved = onboard.load_results(setup.plan)
    assert saved[node.ip]["reason"] == "sudo password wrong"
    assert "wrong sudo password" in out and "not-the-password" not in out
    assert saved[setup.lab["docker"].ip]["status"] == "unchanged"
    assert not node.host_path(reg_dir).exists()
    assert sorted(p.name for p in node.host_path("/etc/containerd/certs.d").iterdir()) == before
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", "rwops-password")
    assert _cli(setup, "--retry-failed") == 0


def test_plan_reloaded_from_disk_onboards_the_same(setup: Setup) -> None:
    assert setup.plan.path is not None
    plan = load_plan(setup.plan.path)
    report = onboard.onboard_nodes(plan, Secrets(sudo_password="rwops-password"),
                                   host_key_policy=_policy(setup.lab))
    assert {r.status for r in report.results} == {"unchanged"}


def test_nodes_from_a_file_and_from_kubectl_on_a_node(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, kubectl_host = setup.lab, setup.lab["plain"]
    assert setup.plan.path is not None
    plan = load_plan(setup.plan.path)
    plan.nodes, plan.path = [], tmp_path / "plan.toml"
    plan.certificate.directory = str(setup.plan.cert_dir)
    save_plan(plan)
    nodes_file = tmp_path / "nodes.txt"
    nodes_file.write_text(f"# from the inventory\nroot@{lab['docker'].ip}:22\n")
    # A stand-in kubectl (real SSH + sudo to reach it) answering like `kubectl get nodes -o json`.
    listing = {"items": [{"status": {"addresses": [
        {"type": "Hostname", "address": "bare"},
        {"type": "InternalIP", "address": lab["bare"].ip}]}}]}
    kubectl = kubectl_host.host_path("/usr/local/sbin/kubectl")
    kubectl.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(listing)}\nEOF\n")
    kubectl.chmod(0o755)
    try:
        code = main(["onboard", "--plan", str(plan.path), "--known-hosts", str(lab.known_hosts),
                     "--nodes-file", str(nodes_file), "--from-kubectl",
                     f"rwdeploy@{kubectl_host.ip}", "--save-nodes"])
    finally:
        kubectl.unlink()
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"added 2 node(s): {lab['docker'].ip}, {lab['bare'].ip}" in out
    saved = load_plan(plan.path)
    assert [(n.host, n.ssh_user) for n in saved.nodes] == [
        (lab["docker"].ip, "root"), (lab["bare"].ip, None)]


def test_thirty_sshd_nodes_in_parallel(setup: Setup, tmp_path: Path) -> None:
    lab = setup.lab
    nodes = lab.sshd_nodes(30)
    reg = setup.registry
    for host in nodes:
        host.exec(["rm", "-rf", f"/etc/docker/certs.d/{reg}"])
    plan = _sshd_nodes_plan(setup, tmp_path, nodes)
    # (measured here: --parallel 1 takes 17-32 s for the same work; not repeated in every run)
    started = time.monotonic()
    report = onboard.onboard_nodes(plan, Secrets(), parallel=16, host_key_policy=_policy(lab))
    first = time.monotonic() - started
    assert [r.status for r in report.results] == ["changed"] * 30, [
        (r.host, r.message) for r in report.failed]
    started = time.monotonic()
    again = onboard.onboard_nodes(plan, Secrets(), host_key_policy=_policy(lab))
    second = time.monotonic() - started
    assert {r.status for r in again.results} == {"unchanged"}
    for host in nodes:
        assert host.host_path(f"/etc/docker/certs.d/{reg}/ca.crt").read_bytes() == setup.ca_pem
    print(f"\n30 nodes: --parallel 16 {first:.1f}s, second run (unchanged) {second:.1f}s")


def _sshd_nodes_plan(setup: Setup, directory: Path, hosts: list[LabHost]) -> Plan:
    """A saved plan for sshd-only lab nodes, each onboarded as a docker node."""
    plan = new_plan(directory / "plan.toml")
    plan.registry.address, plan.registry.port = setup.plan.registry.address, PORT
    plan.certificate.directory = str(setup.plan.cert_dir)
    plan.node_defaults.identity_file = str(setup.lab.key_path)
    plan.node_defaults.ssh_user = "rwdeploy"
    plan.node_defaults.runtime = "docker"
    plan.nodes = [NodeSettings(host=host.ip) for host in hosts]
    save_plan(plan)
    return plan


def test_unknown_host_key_is_refused_headless_unless_accepted(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = setup.lab.sshd_nodes(1)[0]
    node.exec(["rm", "-rf", f"/etc/docker/certs.d/{setup.registry}"])
    plan = _sshd_nodes_plan(setup, tmp_path, [node])
    known_hosts = tmp_path / "known_hosts"
    args = ["onboard", "--plan", str(plan.path), "--known-hosts", str(known_hosts)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "host key unknown" in out and node.host_key_fingerprint() in out
    assert not node.host_path(f"/etc/docker/certs.d/{setup.registry}").exists()
    assert main([*args, "--accept-new-host-keys"]) == 0
    assert node.ip in known_hosts.read_text()
    assert main(args) == 0  # remembered


def test_disk_full_on_a_node_is_reported_as_such(
    setup: Setup, tmp_path: Path
) -> None:
    node = setup.lab.sshd_nodes(2)[1]
    plan = _sshd_nodes_plan(setup, tmp_path, [node])
    node.exec(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", "/etc/docker"])
    try:
        node.exec(["sh", "-c", "dd if=/dev/zero of=/etc/docker/filler bs=4k count=8 || true"])
        report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=_policy(setup.lab))
    finally:
        node.exec(["umount", "/etc/docker"])
    result = report.results[0]
    assert (result.status, result.reason) == ("failed", "disk full"), result.message
    assert result.hint


def test_cri_o_podman_path_is_what_skopeo_reads(setup: Setup, tmp_path: Path) -> None:
    node = setup.lab.sshd_nodes(3)[2]
    reg_dir = f"/etc/containers/certs.d/{setup.registry}"
    # containers/image also reads /etc/docker/certs.d: clear both so only our file can help.
    node.exec(["rm", "-rf", reg_dir, f"/etc/docker/certs.d/{setup.registry}"])
    inspect = ["skopeo", "inspect", "--raw", f"docker://{setup.registry}/{SEED}"]
    before = node.exec(inspect, check=False, timeout=60)
    assert before.returncode != 0 and b"x509" in before.stderr
    plan = _sshd_nodes_plan(setup, tmp_path, [node])
    plan.nodes[0].runtime = "cri-o"
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=_policy(setup.lab))
    assert report.results[0].changed_files == [f"{reg_dir}/ca.crt"], report.results[0].message
    after = node.exec(inspect, check=False, timeout=60)
    node.exec(["rm", "-rf", reg_dir])
    assert after.returncode == 0, after.stderr.decode()


def test_a_node_without_any_runtime_trusts_through_the_os_store_with_auto(setup: Setup) -> None:
    from app.connections import open_node_transport
    from app.verify import run_os_store_check

    plain = setup.lab["plain"]
    node = next(n for n in setup.plan.nodes if n.host == plain.ip)
    node.os_trust_store, node.runtime = False, "auto"  # not asked for: chosen because none ran
    reset_node_trust(setup.lab, setup.registry)
    try:
        report = _onboard(setup, only=[plain.ip])
        (result,) = report.results
        assert result.status == "changed", result.message
        assert result.runtimes == [] and result.changed_files == [setup.ca_anchor]
        assert any("OS trust store" in note for note in result.notes)
        assert plain.host_path(setup.ca_anchor).read_bytes() == setup.ca_pem
        # What verify checks on a node without a runtime: a TLS handshake trusting only the
        # node's OS store.
        resolved = next(n for n in setup.plan.resolved_nodes() if n.host == plain.ip)
        with open_node_transport(resolved, Secrets(), _policy(setup.lab)) as transport:
            check = run_os_store_check(transport, setup.plan)
        assert check.passed, check.detail
    finally:
        node.os_trust_store, node.runtime = True, None
