"""Acceptance for a registry regwiz did not deploy (issue 16) on the lab.

A plain Distribution registry stands in for Harbor: it runs on the lab's registry host with its
own CA (server certificate + root in its tls.crt, as Harbor's installer serves them), its own
htpasswd and a robot-style pull account whose name holds a ``$``. It is started with ``docker
run`` directly, never by regwiz. The plan says ``managed = false``; regwiz fetches and saves its
root CA, onboards a Docker node and both containerd nodes, verifies the named image on each with
the provided login, reports status, and refuses to deploy.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as random_secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from app.connections import host_key_policy
from app.htpasswd import htpasswd_line
from app.plan import Secrets, load_plan
from app.status import TrustState, collect_status
from app.verify import verify
from tests.deploy_helpers import Pki, make_pki
from tests.lab.lab import BUSYBOX_IMAGE, OPS_PASSWORD, REGISTRY_IMAGE, Lab, LabHost
from tests.lab.trust import https_status, reset_node_trust
from tests.polling import poll_until

PORT = 8591
CONTAINER = "byo-lab-registry"
FILES = "/registry-image/byo-lab"  # private to the registry host
ROBOT = "robot$cluster-pull"  # Harbor names robot accounts like this
PUSHER = "admin"
IMAGE = "library/busybox:latest"
NODES = ("docker", "containerd", "bare")
CREDENTIAL_FILES = ("/var/lib/kubelet/config.json", "/root/.docker/config.json")


@dataclass
class External:
    lab: Lab
    pki: Pki
    plan_path: Path
    robot_password: str

    @property
    def reference(self) -> str:
        return f"{self.lab['registry'].ip}:{PORT}"

    def cli(self, command: str, *extra: str) -> int:
        return main([*command.split(), "--plan", str(self.plan_path), *extra])

    def known_hosts(self) -> list[str]:
        return ["--known-hosts", str(self.lab.known_hosts)]


def _start_registry(host: LabHost, pki: Pki, logins: dict[str, str]) -> None:
    host.exec(["mkdir", "-p", FILES])
    # the server presents its certificate and its root, as Harbor's installer does
    host.host_path(f"{FILES}/tls.crt").write_bytes(pki.cert_pem + pki.ca_pem)
    host.host_path(f"{FILES}/tls.key").write_bytes(pki.key_pem)
    host.host_path(f"{FILES}/htpasswd").write_text(
        "".join(htpasswd_line(user, password, rounds=4) + "\n"
                for user, password in logins.items()))
    host.exec(["docker", "run", "-d", "--name", CONTAINER, "-p", f"{PORT}:5000",
               "-v", f"{FILES}:/auth:ro",
               "-e", "REGISTRY_HTTP_TLS_CERTIFICATE=/auth/tls.crt",
               "-e", "REGISTRY_HTTP_TLS_KEY=/auth/tls.key",
               "-e", "REGISTRY_AUTH=htpasswd", "-e", "REGISTRY_AUTH_HTPASSWD_REALM=byo",
               "-e", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd", REGISTRY_IMAGE])


def _push_image(host: LabHost, reference: str, ca_pem: bytes, password: str) -> None:
    """Push the lab's busybox as IMAGE with the registry host's Docker (a throwaway client
    config: /root/.docker is a node credential file other tests read)."""
    certs = host.host_path(f"/etc/docker/certs.d/{reference}")
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "ca.crt").write_bytes(ca_pem)
    config = f"{FILES}/pusher"
    target = f"{reference}/{IMAGE}"
    try:
        host.exec(["docker", "--config", config, "login", "-u", PUSHER, "--password-stdin",
                   reference], input=password.encode())
        host.exec(["docker", "tag", BUSYBOX_IMAGE, target])
        host.exec(["docker", "--config", config, "push", target], timeout=120)
    finally:
        host.exec(["docker", "rmi", target], check=False)
        host.exec(["rm", "-rf", config, str(f"/etc/docker/certs.d/{reference}")], check=False)


def _remove_our_entries(lab: Lab, reference: str) -> None:
    """Take this registry's login out of the node credential files other tests share."""
    for name in NODES:
        for path in CREDENTIAL_FILES:
            file = lab[name].host_path(path)
            if not file.is_file():
                continue
            data = json.loads(file.read_text() or "{}")
            if data.get("auths", {}).pop(reference, None) is not None:
                file.write_text(json.dumps(data, indent=2) + "\n")


@pytest.fixture(scope="module")
def external(lab: Lab) -> Iterator[External]:
    host = lab["registry"]
    reference = f"{host.ip}:{PORT}"
    pki = make_pki([host.ip], cn="Harbor-like private CA")
    robot_password = random_secrets.token_urlsafe(18)
    pusher_password = random_secrets.token_urlsafe(18)
    host.exec(["docker", "rm", "-f", CONTAINER], check=False)
    _start_registry(host, pki, {ROBOT: robot_password, PUSHER: pusher_password})
    saved_env = os.environ.get("REGWIZ_SUDO_PASSWORD")
    os.environ["REGWIZ_SUDO_PASSWORD"] = OPS_PASSWORD  # the containerd node's sudo, for the CLI
    with tempfile.TemporaryDirectory(prefix="regwiz-byo-") as folder:
        try:
            assert poll_until(lambda: _answers(host.ip, pki.ca_pem), timeout=60)
            _push_image(host, reference, pki.ca_pem, pusher_password)
            plan_path = _write_plan(Path(folder), lab, reference, robot_password)
            yield External(lab, pki, plan_path, robot_password)
        finally:
            if saved_env is None:
                os.environ.pop("REGWIZ_SUDO_PASSWORD", None)
            else:
                os.environ["REGWIZ_SUDO_PASSWORD"] = saved_env
            host.exec(["docker", "rm", "-f", CONTAINER], check=False)
            host.exec(["rm", "-rf", FILES], check=False)
            reset_node_trust(lab, reference)
            _remove_our_entries(lab, reference)


def _answers(ip: str, ca_pem: bytes) -> bool:
    try:
        return https_status(f"https://{ip}:{PORT}/v2/", ca_pem) == 401
    except OSError:
        return False


def _write_plan(folder: Path, lab: Lab, reference: str, robot_password: str) -> Path:
    """The plan a Harbor user writes: no certificate section, no registry host; the robot
    account's login as a Docker config.json (the file `docker login` would write)."""
    login = base64.b64encode(f"{ROBOT}:{robot_password}".encode()).decode()
    (folder / "robot.json").write_text(json.dumps({"auths": {reference: {"auth": login}}}))
    (folder / "robot.json").chmod(0o600)
    hosts = []
    for name in NODES:
        node = lab[name]
        hosts.append(f'[[nodes.hosts]]\nhost = "{node.ip}"\nssh_user = "{node.ssh_user}"\n')
    registry_ip, port = reference.rsplit(":", 1)
    text = "\n".join([
        "[registry]",
        "managed = false",
        f'address = "{registry_ip}"',
        f"port = {port}",
        'ca_file = "harbor-ca.crt"',
        'pull_auth_file = "robot.json"',
        f'verify_image = "{IMAGE}"',
        "",
        "[nodes.defaults]",
        f'identity_file = "{lab.key_path}"',
        "",
        *hosts,
    ])
    path = folder / "plan.toml"
    path.write_text(text)
    return path


def _secrets() -> Secrets:
    return Secrets(sudo_password=OPS_PASSWORD)


def test_fetch_ca_saves_the_root_the_server_presents(external: External,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    saved = external.plan_path.parent / "harbor-ca.crt"
    assert external.cli("certs fetch-ca", "--yes") == 0
    shown = capsys.readouterr().out
    assert "presents 2 certificate(s)" in shown and "root CA: CN=Harbor-like private CA" in shown
    assert saved.read_bytes() == external.pki.ca_pem


def test_deploy_uninstall_and_certs_refuse_a_registry_regwiz_did_not_deploy(
        external: External, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("deploy", "uninstall", "certs"):
        assert external.cli(command) == 2, command
        assert "managed = false" in capsys.readouterr().err
    # nothing was touched: the registry still answers with its own certificate
    assert _answers(external.lab["registry"].ip, external.pki.ca_pem)


def test_onboard_makes_docker_and_both_containerd_nodes_trust_it(external: External) -> None:
    assert external.cli("onboard", *external.known_hosts()) == 0
    plan = load_plan(external.plan_path)
    report = collect_status(plan, _secrets(), host_key_policy=host_key_policy(
        False, known_hosts=str(external.lab.known_hosts)))
    assert report.registry.reachable and report.registry.tls_valid
    assert [n.state for n in report.nodes or []] == [TrustState.MATCH] * len(NODES)
    assert all(n.credential_state is not None and n.credential_state.value == "current"
               for n in report.nodes or [])
    assert report.catalog.repositories.get("library/busybox") == ["latest"]
    assert not report.managed and report.healthy
    kubelet = json.loads(external.lab["containerd"].host_path(
        "/var/lib/kubelet/config.json").read_text())
    login = base64.b64decode(kubelet["auths"][external.reference]["auth"]).decode()
    assert login == f"{ROBOT}:{external.robot_password}"  # the "$" survived as it is


def test_verify_pulls_the_named_image_on_every_node_with_the_robot_login(
        external: External) -> None:
    plan = load_plan(external.plan_path)
    report = verify(plan, _secrets(), host_key_policy=host_key_policy(
        False, known_hosts=str(external.lab.known_hosts)))
    assert report.push_pull.passed, report.push_pull.message
    assert report.push_pull.registry_digest
    failed = [(n.host, n.message) for n in report.nodes if not n.passed]
    assert not failed
    kinds = {n.host: " | ".join(check.kind for check in n.checks) for n in report.nodes}
    lab = external.lab
    assert "docker pull with root's" in kinds[lab["docker"].ip]
    for name in NODES:  # the kubelet's installed login, and no anonymous way in
        assert "kubelet credential" in kinds[lab[name].ip], kinds
        assert "anonymous access refused" in kinds[lab[name].ip], kinds
    # nothing was pushed or deleted: the catalog holds only the user's own image
    status = collect_status(plan, _secrets(), host_key_policy=host_key_policy(
        False, known_hosts=str(external.lab.known_hosts)), include_nodes=False)
    assert list(status.catalog.repositories) == ["library/busybox"]


def test_status_cli_reports_it_healthy_without_a_container(
        external: External, capsys: pytest.CaptureFixture[str]) -> None:
    assert external.cli("status", *external.known_hosts()) == 0
    out = capsys.readouterr().out
    assert "not deployed by regwiz" in out and "overall       healthy" in out
