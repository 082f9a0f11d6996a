"""Acceptance for the pull credential on nodes (issue 11, items 4 and 5) on the lab: a real
registry with htpasswd auth, real sshd/sudo/dockerd/containerd nodes.

The registry is deployed by ``regwiz deploy`` with ``auth = "htpasswd"``, which creates the
accounts ``operator`` (push) and ``cluster`` (pull) behind the nginx front; the pull account is then
rotated to a known password the way ``regwiz accounts rotate`` does on the server side. The tests
run in file order: install, re-run, pull, verify, rotate (a node down), revoke.
"""

from __future__ import annotations

import json
import secrets as random_secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import onboard
from app.cli import main
from app.connections import host_key_policy
from app.credential_files import RegistryCredential, credential_path, write_credential
from app.htpasswd import Credentials
from app.node_credentials import PULL_ACCOUNT
from app.plan import Plan, Secrets, load_plan
from app.runtimes.base import credential_fingerprint
from app.selftest_image import build_selftest_image
from app.status import CredentialState, StatusReport, collect_status
from app.verify import VerifyReport, verify
from tests.lab.lab import OPS_PASSWORD, REGISTRY_IMAGE, Lab
from tests.lab.plans import core_plan_text
from tests.lab.ps_watcher import PsWatcher
from tests.lab.trust import https_status, reset_node_trust
from tests.polling import poll_until

PORT = 8571
CONTAINER = "nodecreds-lab-registry"
CERTS_DIR = "/etc/docker/nodecreds-lab-certs"
NODES = ("docker", "containerd", "bare", "plain")
KUBELET = "/var/lib/kubelet/config.json"
ROOT_DOCKER = "/root/.docker/config.json"
OTHER = {"other.example:5000": {"auth": "b3RoZXI6bm90LW91cnM="}}  # other:not-ours


@dataclass
class Setup:
    lab: Lab
    plan_path: Path
    operator_password: str
    cluster_password: str

    @property
    def plan(self) -> Plan:
        return load_plan(self.plan_path)

    @property
    def registry(self) -> str:
        return f"{self.lab['registry'].ip}:{PORT}"

    @property
    def known_hosts(self) -> str:
        return str(self.lab.known_hosts)

    def cli(self, command: str, *extra: str) -> int:
        return main([command, "--plan", str(self.plan_path), "--known-hosts", self.known_hosts,
                     *extra])

    def secrets(self) -> Secrets:
        return Secrets(sudo_password=OPS_PASSWORD, registry_password=self.operator_password)

    def onboard(self) -> onboard.OnboardReport:
        return onboard.onboard_nodes(self.plan, self.secrets(),
                                     host_key_policy=host_key_policy(False,
                                                                     known_hosts=self.known_hosts))

    def status(self) -> StatusReport:
        return collect_status(self.plan, self.secrets(),
                              host_key_policy=host_key_policy(False, known_hosts=self.known_hosts))

    def ip(self, name: str) -> str:
        return str(self.lab[name].ip)

    def auth(self, password: str | None = None) -> str:
        return RegistryCredential(self.registry, PULL_ACCOUNT,
                                  password or self.cluster_password).auth

    def plan_credential(self) -> RegistryCredential:
        """The pull account's credential as saved next to the plan."""
        from app.credential_files import read_credential

        saved = read_credential(credential_path(self.plan, PULL_ACCOUNT), self.registry)
        assert saved is not None
        return saved

    def node_json(self, name: str, path: str) -> dict[str, object]:
        raw = self.lab[name].host_path(path).read_bytes()
        data = json.loads(raw)
        assert isinstance(data, dict)
        return data

    def set_cluster_password(self, password: str) -> None:
        """Rotate the pull account to ``password`` as ``regwiz accounts rotate`` does on the
        server side (credentials/cluster.json and the registry host's htpasswd), leaving the
        nodes alone: they are the tests' business."""
        from app.accounts import AccountStore, password_env_var
        from app.connections import open_registry_transport
        from app.deploy import Deployment
        from app.steps import Outcome, run_steps

        plan, secrets = self.plan, self.secrets()
        AccountStore(plan, {password_env_var(PULL_ACCOUNT): password}).rotate(PULL_ACCOUNT)
        policy = host_key_policy(False, known_hosts=self.known_hosts)
        with Deployment(plan, secrets, connect=lambda: open_registry_transport(
                plan, secrets, policy)) as deployment:
            results = run_steps(deployment.sync_steps())
        assert all(r.outcome is not Outcome.FAILED for r in results), results
        assert poll_until(lambda: self.http_status("/v2/", (PULL_ACCOUNT, password)) == 200,
                          timeout=60)
        self.cluster_password = password

    def http_status(self, path: str, login: tuple[str, str] | None) -> int | None:
        """The registry's answer to GET ``path`` from this machine, over TLS trusting ca.crt."""
        ca_pem = (self.plan.cert_dir / "ca.crt").read_bytes()
        try:
            return https_status(f"https://{self.registry}{path}", ca_pem, login)
        except OSError:
            return None


def _clean_nodes(lab: Lab) -> None:
    for name in NODES:
        lab[name].exec(["rm", "-f", KUBELET], check=False)
    lab["docker"].exec(["rm", "-f", ROOT_DOCKER], check=False)


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("nodecreds")
    plan_path = folder / "plan.toml"
    plan_path.write_text(core_plan_text(
        lab, NODES,
        certificate={"common_name": "registry.nodecreds.internal", "directory": "certs"},
        registry={"port": PORT, "image": REGISTRY_IMAGE, "container_name": CONTAINER,
                  "data_dir": "/registry-image/nodecreds-lab", "certs_dir": CERTS_DIR,
                  "auth": "htpasswd", "delete_enabled": True}))
    result = Setup(lab, plan_path, "Op-" + random_secrets.token_urlsafe(18),
                   "Cl-" + random_secrets.token_urlsafe(18))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REGWIZ_SUDO_PASSWORD", OPS_PASSWORD)
        env.setenv("REGWIZ_REGISTRY_PASSWORD", result.operator_password)
        reset_node_trust(lab, result.registry)
        _clean_nodes(lab)
        try:
            assert main(["certs", "--plan", str(plan_path)]) == 0
            assert result.cli("deploy", "--credentials-file",
                              str(folder / "registry-credentials.json")) == 0
            result.set_cluster_password(result.cluster_password)
            # what was on the nodes before: other registries' logins, to be kept
            for name in NODES:
                path = lab[name].host_path(KUBELET)
                path.write_text(json.dumps({"auths": OTHER}))
                path.chmod(0o600)
            lab["docker"].host_path(ROOT_DOCKER).write_text(
                json.dumps({"auths": OTHER, "psFormat": "table {{.ID}}"}))
            yield result
        finally:
            result.cli("uninstall", "--purge", "--yes")
            reset_node_trust(lab, result.registry)
            _clean_nodes(lab)


def _push_selftest(setup: Setup, tmp_path: Path) -> str:
    """Push the self-test image with skopeo and the operator's credential; its reference."""
    image = build_selftest_image(setup.registry)
    archive = tmp_path / "selftest.tar"
    archive.write_bytes(image.archive)
    certs = tmp_path / "ca-only"
    certs.mkdir()
    (certs / "ca.crt").write_bytes((setup.plan.cert_dir / "ca.crt").read_bytes())
    authfile = tmp_path / "operator.json"
    write_credential(authfile, RegistryCredential(setup.registry, "operator",
                                                  setup.operator_password))
    subprocess.run(["skopeo", "copy", "--quiet", "--authfile", str(authfile),
                    "--dest-cert-dir", str(certs), f"docker-archive:{archive}",
                    f"docker://{image.reference}"], check=True, timeout=120,
                   capture_output=True)
    return image.reference


def _mode_and_owner(setup: Setup, name: str, path: str) -> str:
    return setup.lab[name].exec(["stat", "-c", "%a %U", path]).stdout.decode().strip()


def test_onboard_installs_the_credential_everywhere_and_keeps_other_entries(
        setup: Setup) -> None:
    assert setup.cli("onboard") == 0
    for name in NODES:
        kubelet = setup.node_json(name, KUBELET)
        assert kubelet["auths"] == {**OTHER, setup.registry: {"auth": setup.auth()}}, name
        assert _mode_and_owner(setup, name, KUBELET) == "600 root", name
    docker = setup.node_json("docker", ROOT_DOCKER)
    assert docker["auths"] == {**OTHER, setup.registry: {"auth": setup.auth()}}
    assert docker["psFormat"] == "table {{.ID}}"  # unknown keys kept
    assert _mode_and_owner(setup, "docker", ROOT_DOCKER) == "600 root"
    # a re-run changes nothing anywhere
    report = setup.onboard()
    assert {r.host: r.status.value for r in report.results} == {
        setup.ip(n): "unchanged" for n in NODES}, report.to_dict()
    fingerprint = credential_fingerprint(setup.auth())
    assert {r.credential for r in report.results} == {fingerprint}
    status = setup.status()
    assert {n.host: n.credential_state for n in status.nodes or []} == {
        setup.ip(n): CredentialState.CURRENT for n in NODES}
    assert status.stale_nodes == []


def test_docker_node_pulls_with_the_installed_credential(setup: Setup, tmp_path: Path) -> None:
    reference = _push_selftest(setup, tmp_path)
    docker = setup.lab["docker"]
    pulled = docker.exec(["docker", "pull", reference], timeout=120, check=False)
    assert pulled.returncode == 0, pulled.stderr
    docker.exec(["docker", "image", "rm", reference], check=False)
    # anonymous: refused (the login really came from root's config.json)
    anonymous = docker.exec(["docker", "--config", "/nonexistent-regwiz", "pull", reference],
                            timeout=120, check=False)
    assert anonymous.returncode != 0
    assert b"no basic auth credentials" in anonymous.stderr or b"unauthorized" in (
        anonymous.stderr.lower())


def _verify(setup: Setup) -> VerifyReport:
    return verify(setup.plan, setup.secrets(),
                  host_key_policy=host_key_policy(False, known_hosts=setup.known_hosts),
                  credentials=Credentials(setup.registry, "operator", setup.operator_password))


def test_verify_proves_the_installed_credential_and_the_anonymous_refusal(
        setup: Setup) -> None:
    hosts = [setup.lab[name] for name in NODES]
    with PsWatcher(hosts) as watcher:
        report = _verify(setup)
    assert report.ok, report.to_dict()
    # no secret on any command line on any node while verify ran (CRI pulls included)
    assert watcher.samples > len(hosts)
    secrets = (setup.cluster_password, setup.auth(), setup.operator_password)
    leaked = [line for line in watcher.seen if any(secret in line for secret in secrets)]
    assert leaked == []
    for name in ("containerd", "bare"):  # containerd nodes: the CRI pull as the kubelet makes it
        node = next(n for n in report.nodes if n.host == setup.ip(name))
        cri = [c for c in node.checks if c.kind == "CRI pull as the kubelet (containerd)"]
        assert cri and cri[0].passed, node
        assert "with the kubelet's credential from /var/lib/kubelet/config.json" in cri[0].detail
    kinds = {node.host: [c.kind for c in node.checks] for node in report.nodes}
    for name in NODES:
        assert kinds[setup.ip(name)][-1] == "anonymous access refused", kinds
        proof = ("CRI pull as the kubelet" if name in ("containerd", "bare")
                 else "kubelet credential")
        assert any(kind.startswith(proof) for kind in kinds[setup.ip(name)])
    assert kinds[setup.ip("docker")][0] == "docker pull with root's ~/.docker/config.json"
    assert "OS trust store" in kinds[setup.ip("plain")][0]
    text = json.dumps(report.to_dict())
    assert setup.cluster_password not in text and setup.auth() not in text


def test_rotation_updates_every_node_and_status_shows_stale_until_then(setup: Setup) -> None:
    old = setup.cluster_password
    setup.set_cluster_password("Cl2-" + random_secrets.token_urlsafe(18))
    assert setup.http_status("/v2/", (PULL_ACCOUNT, old)) == 401  # the old one is refused
    assert setup.http_status("/v2/", (PULL_ACCOUNT, setup.cluster_password)) == 200
    status = setup.status()
    assert {n.host: n.credential_state for n in status.nodes or []} == {
        setup.ip(n): CredentialState.STALE for n in NODES}
    assert not status.healthy
    # verify uses what the nodes have installed, not the file here: the old login is refused
    stale = _verify(setup)
    assert not stale.ok and stale.push_pull.passed
    for node in stale.nodes:
        refused = [c for c in node.checks if c.kind.startswith(("kubelet credential",
                                                                 "CRI pull as the kubelet"))]
        assert refused and not refused[0].passed, node
        assert ("HTTP 401" in refused[0].detail or "401 Unauthorized" in refused[0].detail), \
            refused[0].detail
    plain = setup.lab["plain"]
    plain.stop_sshd()
    try:
        report = onboard.update_node_credentials(
            setup.plan, setup.secrets(),
            host_key_policy=host_key_policy(False, known_hosts=setup.known_hosts), timeout=30)
        states = {r.host: r.status.value for r in report.results}
        assert states == {**{setup.ip(n): "changed" for n in NODES if n != "plain"},
                          setup.ip("plain"): "failed"}, report.to_dict()
        for name in ("docker", "containerd", "bare"):
            assert setup.node_json(name, KUBELET)["auths"] == {
                **OTHER, setup.registry: {"auth": setup.auth()}}
        assert setup.node_json("docker", ROOT_DOCKER)["auths"] == {
            **OTHER, setup.registry: {"auth": setup.auth()}}
    finally:
        plain.start_sshd()
    status = setup.status()
    by_host = {n.host: n.credential_state for n in status.nodes or []}
    assert by_host[setup.ip("plain")] is CredentialState.STALE
    assert [n.host for n in status.stale_nodes] == [setup.ip("plain")]
    assert setup.cli("onboard", "--retry-failed") == 0
    assert setup.node_json("plain", KUBELET)["auths"] == {
        **OTHER, setup.registry: {"auth": setup.auth()}}
    assert setup.status().stale_nodes == []


def test_accounts_rotate_cluster_updates_every_node_at_once(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """`regwiz accounts rotate cluster`: the registry takes the new password only, and every
    node holds it when the command returns (no separate onboarding run)."""
    old = setup.cluster_password
    assert setup.cli("accounts", "rotate", PULL_ACCOUNT) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "nodes updated (4 changed)" in out, out
    new = str(setup.plan_credential().password)
    assert new != old and new not in out and old not in out
    setup.cluster_password = new
    assert setup.http_status("/v2/", (PULL_ACCOUNT, old)) == 401
    assert setup.http_status("/v2/", (PULL_ACCOUNT, new)) == 200
    for name in NODES:
        assert setup.node_json(name, KUBELET)["auths"][setup.registry] == {"auth": setup.auth()}
    assert setup.status().stale_nodes == []


def test_revoke_removes_only_our_entries(setup: Setup) -> None:
    credential_path(setup.plan, PULL_ACCOUNT).unlink()
    report = setup.onboard()
    assert report.ok, report.to_dict()
    assert {r.credential for r in report.results} == {"removed"}
    for name in NODES:
        assert setup.node_json(name, KUBELET)["auths"] == OTHER, name
    assert setup.node_json("docker", ROOT_DOCKER)["auths"] == OTHER
    status = setup.status()
    assert {n.host: n.credential_state for n in status.nodes or []} == {
        setup.ip(n): CredentialState.REMOVED for n in NODES}
    again = setup.onboard()
    assert {r.status.value for r in again.results} == {"unchanged"}
