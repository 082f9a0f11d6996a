"""Acceptance for verify and status on the lab: real registry, real pulls, real trust stores.

The module sets the lab up once with regwiz's own commands (certs, deploy, onboard), then
breaks one node at a time and checks that verify and status point at that node only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from app.connections import host_key_policy
from app.plan import Plan, Secrets, load_plan
from app.status import TrustState, collect_status
from app.verify import TRUST_HINT, CheckState, VerifyReport, verify
from tests.deploy_helpers import make_pki
from tests.lab.lab import CONTAINERD_CONFIG_BASE, Lab
from tests.lab.plans import core_plan_text
from tests.lab.trust import reset_node_trust

PORT = 8843
CONTAINER = "verify-lab-registry"
NODE_NAMES = ("docker", "containerd", "bare", "plain")


@dataclass
class Setup:
    lab: Lab
    plan_path: Path
    plan: Plan

    @property
    def registry(self) -> str:
        return self.plan.registry_reference

    def cli(self, command: str, *extra: str) -> int:
        return main([command, "--plan", str(self.plan_path), "--known-hosts",
                     str(self.lab.known_hosts), *extra])

    def verify(self) -> VerifyReport:
        return verify(self.plan, Secrets.from_env(), host_key_policy=self.policy())

    def policy(self):  # type: ignore[no-untyped-def]
        return host_key_policy(False, known_hosts=self.lab.known_hosts)

    def ip(self, name: str) -> str:
        return self.lab[name].ip

    def restore(self, name: str) -> None:
        """Put the current CA back on one node with regwiz onboard."""
        assert self.cli("onboard", "--only", self.ip(name)) == 0


def verify_plan_text(lab: Lab) -> str:
    return core_plan_text(
        lab, NODE_NAMES,
        certificate={"common_name": "registry.lab.internal", "directory": "certs"},
        registry={"port": PORT, "container_name": CONTAINER,
                  "data_dir": "/registry-image/verify-lab",
                  "certs_dir": "/etc/docker/verify-lab-certs",
                  "auth": "none"})  # the default before issue 11; the auth test sets htpasswd


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REGWIZ_SUDO_PASSWORD", "rwops-password")
        plan_path = tmp_path_factory.mktemp("verify-lab") / "plan.toml"
        plan_path.write_text(verify_plan_text(lab))
        plan = load_plan(plan_path)
        result = Setup(lab, plan_path, plan)
        reset_node_trust(lab, result.registry)
        try:
            assert main(["certs", "--plan", str(plan_path)]) == 0
            for command in ("deploy", "onboard"):
                assert result.cli(command) == 0, command
            yield result
        finally:
            result.cli("uninstall", "--purge", "--yes")
            reset_node_trust(lab, result.registry)


def node_images(setup: Setup) -> dict[str, list[str]]:
    lab = setup.lab
    listed = {
        "docker": lab["docker"].exec(["docker", "images", "--format", "{{.Repository}}"])
        .stdout.decode(),
        "containerd": lab["containerd"].exec(["ctr", "-n", "k8s.io", "images", "ls", "-q"])
        .stdout.decode(),
        "bare": lab["bare"].exec(["ctr", "-n", "k8s.io", "images", "ls", "-q"]).stdout.decode(),
    }
    return {name: sorted(text.split()) for name, text in listed.items()}


def test_verify_pulls_on_every_node_and_cleans_up(setup: Setup) -> None:
    before = node_images(setup)
    report = setup.verify()
    assert report.ok, report.to_dict()
    push = report.push_pull
    assert push.pushed_digest == push.pulled_digest == push.registry_digest
    assert push.pushed_digest and push.pushed_digest.startswith("sha256:")
    # deploy made the registry host's Docker trust the CA: the push used verified TLS
    assert push.note == "", push.note
    assert "stays in the registry" in push.cleanup  # delete is disabled in this plan
    # ... so every run reuses one tag instead of leaving a new one behind.
    again = setup.verify()
    assert again.ok and again.push_pull.reference == push.reference
    assert push.reference.endswith("/regwiz/selftest:check")
    from app import registry_api

    listed = registry_api.tags(f"https://{setup.registry}", setup.plan.cert_dir / "ca.crt",
                               "regwiz/selftest")
    assert listed == ["check"], listed
    kinds = {node.host: [c.kind for c in node.checks] for node in report.nodes}
    assert kinds[setup.ip("docker")] == ["docker pull"]
    # containerd nodes: through containerd's own CRI, as the kubelet pulls (issue 13); the
    # containerd node logs in as rwops (sudo by password), bare as rwdeploy (NOPASSWD)
    for name in ("containerd", "bare"):
        assert kinds[setup.ip(name)] == ["CRI pull as the kubelet (containerd)",
                                         "sandbox image (containerd)"], kinds
        check = next(n for n in report.nodes if n.host == setup.ip(name)).checks[0]
        assert "through containerd 1.6" in check.detail and "CRI (runtime.v1)" in check.detail
        assert check.digest == push.pushed_digest
        assert check.command.endswith("sudo relay to /run/containerd/containerd.sock "
                                      "(python3, socat or nc -U)"), check.command
    assert kinds[setup.ip("plain")] == ["TLS handshake (OS trust store only)"]
    assert node_images(setup) == before  # nothing of the self-test image stays on the nodes
    assert "selftest" not in json.dumps(node_images(setup))


def test_node_without_ca_fails_with_the_x509_error_alone(setup: Setup) -> None:
    ca = f"/etc/docker/certs.d/{setup.registry}/ca.crt"
    setup.lab["docker"].exec(["rm", "-f", ca])
    try:
        report = setup.verify()
    finally:
        setup.restore("docker")
    states = {node.host: node.state for node in report.nodes}
    assert states == {
        setup.ip(n): CheckState.FAILED if n == "docker" else CheckState.PASSED for n in NODE_NAMES
    }, report.to_dict()
    failed = report.failed_nodes[0]
    assert "x509" in failed.checks[0].detail and "unknown authority" in failed.checks[0].detail
    assert failed.hint == TRUST_HINT and failed.checks[0].hint == TRUST_HINT
    assert report.push_pull.passed and not report.ok


def test_verify_cli_exit_code_and_output(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    anchor = f"/usr/local/share/ca-certificates/regwiz-{setup.registry.replace(':', '_')}.crt"
    plain = setup.lab["plain"]
    plain.exec(["rm", "-f", anchor])
    plain.exec(["update-ca-certificates", "--fresh"])
    try:
        code = setup.cli("verify")
    finally:
        setup.restore("plain")
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL TLS handshake (OS trust store only)" in out
    assert "os_trust_store" in out  # the hint names the setting that fixes it
    assert "nodes: 3 passed, 1 not passed" in out


def test_verify_with_the_registry_down_skips_the_nodes(setup: Setup) -> None:
    registry = setup.lab["registry"]
    registry.exec(["docker", "stop", CONTAINER])
    try:
        report = setup.verify()
    finally:
        registry.exec(["docker", "start", CONTAINER])
    assert report.push_pull.state is CheckState.FAILED, report.to_dict()
    assert "push failed" in report.push_pull.message
    assert all(node.state is CheckState.SKIPPED for node in report.nodes)
    assert not report.ok


def test_from_local_pushes_with_the_operators_docker(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's Docker here is the onboarded docker node's daemon (via DOCKER_HOST): it
    trusts the CA, so the push goes to <address>:<port> over verified TLS, no loopback."""
    socket = setup.lab["docker"].docker_socket
    assert socket is not None
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    report = verify(setup.plan, Secrets.from_env(), host_key_policy=setup.policy(),
                    from_local=True, only=[setup.ip("containerd")])
    assert report.ok, report.to_dict()
    assert report.push_pull.source == "local docker" and report.push_pull.note == ""
    assert [node.host for node in report.nodes] == [setup.ip("containerd")]
    images = setup.lab["docker"].exec(["docker", "images", "--format", "{{.Repository}}"])
    assert b"selftest" not in images.stdout  # removed from the pushing daemon too


def test_from_local_docker_without_the_ca_fails_with_a_hint(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry_host = setup.lab["registry"]
    socket = registry_host.docker_socket
    assert socket is not None
    # deploy made this Docker trust the CA: take that away to play an untrusting operator Docker
    trusted = f"/etc/docker/certs.d/{setup.registry}/ca.crt"
    registry_host.exec(["mv", trusted, f"{trusted}.aside"])
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    try:
        report = verify(setup.plan, Secrets.from_env(), host_key_policy=setup.policy(),
                        from_local=True)
    finally:
        registry_host.exec(["mv", f"{trusted}.aside", trusted])
    push = report.push_pull
    assert push.state is CheckState.FAILED, report.to_dict()
    assert "x509" in push.message and push.hint and "certs.d" in push.hint
    assert all(node.state is CheckState.SKIPPED for node in report.nodes)


def test_status_json_reports_every_field(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.verify()  # leaves a regwiz/selftest tag (delete disabled) for the catalog
    capsys.readouterr()
    assert setup.cli("status", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    registry = data["registry"]
    assert registry["reachable"] and registry["tls_valid"] and registry["http_status"] == 200
    assert registry["latency_ms"] > 0
    assert 800 <= data["server_certificate"]["days_left"] <= 825
    assert data["served_matches_local"] is True
    assert 3600 <= data["ca_certificate"]["days_left"] <= 3650
    assert data["catalog"]["repositories"]["regwiz/selftest"]
    container = data["container"]
    assert container["found"] and container["state"] == "running"
    assert container["restart_count"] == 0 and container["image"] == "registry:2"
    assert data["disk"]["used_bytes"] > 0 and data["disk"]["path"] == "/registry-image/verify-lab"
    assert {n["host"]: n["state"] for n in data["nodes"]} == {
        setup.ip(n): "match" for n in NODE_NAMES
    }
    assert data["healthy"] is True


def test_status_shows_a_stale_ca_as_mismatched(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = setup.lab["containerd"].host_path(f"/etc/containerd/certs.d/{setup.registry}/ca.crt")
    stale.write_bytes(make_pki(["x"], cn="some other CA").ca_pem)
    try:
        report = collect_status(setup.plan, Secrets.from_env(), host_key_policy=setup.policy())
        assert setup.cli("status") == 1
        text = capsys.readouterr().out
    finally:
        setup.restore("containerd")
    states = {node.host: node.state for node in report.nodes or []}
    assert states == {
        setup.ip(n): TrustState.MISMATCH if n == "containerd" else TrustState.MATCH
        for n in NODE_NAMES
    }
    stale_node = report.stale_nodes[0]
    assert stale_node.files[0].detail == "another CA (stale)"
    assert not report.healthy
    assert "mismatch" in text and "regwiz onboard" in text


def test_htpasswd_registry_proves_each_node_pulls_with_its_installed_credential(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With auth on, deploy makes the accounts and onboarding puts the pull account's credential
    on every node: verify proves each node pulls with what it holds (the runtime's own file
    where the runtime reads one, the kubelet's file over each runtime's CA) and that anonymous
    access is refused; regwiz k8s makes the pull secret."""
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", "rwops-password")
    port = PORT + 100
    text = verify_plan_text(lab).replace(f"port = {PORT}", f"port = {port}")
    text = text.replace(f'"{CONTAINER}"', '"verify-lab-auth"').replace("verify-lab", "verify-auth")
    text = text.replace('auth = "none"', 'auth = "htpasswd"')
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(text)
    credentials = tmp_path / "registry-credentials.json"
    common = ["--plan", str(plan_path), "--known-hosts", str(lab.known_hosts)]
    plan = load_plan(plan_path)
    reset_node_trust(lab, plan.registry_reference)
    try:
        assert main(["certs", "--plan", str(plan_path)]) == 0
        assert main(["deploy", *common, "--credentials-file", str(credentials)]) == 0
        assert main(["onboard", *common]) == 0
        capsys.readouterr()
        assert main(["verify", *common, "--credentials-file", str(credentials), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        kinds = {node["host"]: [c["kind"] for c in node["checks"]] for node in report["nodes"]}
        reg = plan.registry_reference
        assert "docker pull with root's ~/.docker/config.json" in kinds[lab["docker"].ip]
        for name in ("docker", "containerd", "bare", "plain"):
            node_kinds = kinds[lab[name].ip]
            assert node_kinds[-1] == "anonymous access refused", node_kinds
            # containerd nodes: the kubelet's credential is proven by the CRI pull itself
            proof = ("CRI pull as the kubelet (containerd)" if name in ("containerd", "bare")
                     else "kubelet credential")
            assert any(k.startswith(proof) for k in node_kinds), node_kinds
        assert f"/etc/containerd/certs.d/{reg}/ca.crt" not in json.dumps(kinds)
        digests = {c["digest"] for node in report["nodes"] for c in node["checks"]
                   if c["digest"]}
        assert digests == {report["push_pull"]["pushed_digest"]}
        password = json.loads(credentials.read_text())["password"]
        assert password not in json.dumps(report)
        assert main(["status", *common, "--no-nodes", "--credentials-file", str(credentials),
                     "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["registry"]["http_status"] == 401  # up, and asks for a login
        assert "regwiz/selftest" in status["catalog"]["repositories"]
        assert main(["k8s", "--plan", str(plan_path), "--credentials-file", str(credentials)]) == 0
        assert "kubernetes.io/dockerconfigjson" in capsys.readouterr().out
    finally:
        main(["uninstall", *common, "--purge", "--yes"])
        reset_node_trust(lab, plan.registry_reference)


def test_containerd_without_config_path_is_reported_by_verify_and_status(setup: Setup) -> None:
    """ctr --hosts-dir would still pull, but kubelet's CRI reads no certs.d: both must say so."""
    bare = setup.lab["bare"]
    config = bare.host_path("/etc/containerd/config.toml")
    onboarded = config.read_text()
    config.write_text(CONTAINERD_CONFIG_BASE)  # as before onboarding (no restart needed to read)
    try:
        report = setup.verify()
        status = collect_status(setup.plan, Secrets.from_env(), host_key_policy=setup.policy())
    finally:
        config.write_text(onboarded)
    failed = {node.host: node for node in report.failed_nodes}
    assert list(failed) == [setup.ip("bare")], {
        host: [(c.kind, c.detail) for c in node.checks if not c.passed]
        for host, node in failed.items()}
    assert failed[setup.ip("bare")].checks[0].kind == "containerd configuration"
    assert "config_path" in failed[setup.ip("bare")].message
    trust = {node.host: node for node in status.nodes or []}
    assert trust[setup.ip("bare")].state is TrustState.MISSING
    assert any(f.path == "/etc/containerd/config.toml" for f in trust[setup.ip("bare")].files)
    assert all(trust[setup.ip(n)].state is TrustState.MATCH for n in NODE_NAMES if n != "bare")
