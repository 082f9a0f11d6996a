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
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from app.connections import host_key_policy
from app.plan import Secrets, load_plan
from app.status import TrustState, collect_status
from app.verify import verify
from tests.lab.external_registry import IMAGE, ROBOT, ExternalRegistry, external_registry
from tests.lab.lab import OPS_PASSWORD, Lab

PORT = 8591
CONTAINER = "byo-lab-registry"
NODES = ("docker", "containerd", "bare")


@dataclass
class External:
    lab: Lab
    registry: ExternalRegistry
    plan_path: Path

    @property
    def reference(self) -> str:
        return self.registry.reference

    def cli(self, command: str, *extra: str) -> int:
        return main([*command.split(), "--plan", str(self.plan_path), *extra])

    def known_hosts(self) -> list[str]:
        return ["--known-hosts", str(self.lab.known_hosts)]


@pytest.fixture(scope="module")
def external(lab: Lab) -> Iterator[External]:
    saved_env = os.environ.get("REGWIZ_SUDO_PASSWORD")
    os.environ["REGWIZ_SUDO_PASSWORD"] = OPS_PASSWORD  # the containerd node's sudo, for the CLI
    try:
        with tempfile.TemporaryDirectory(prefix="regwiz-byo-") as folder, \
                external_registry(lab, PORT, CONTAINER) as registry:
            yield External(lab, registry, _write_plan(Path(folder), lab, registry))
    finally:
        if saved_env is None:
            os.environ.pop("REGWIZ_SUDO_PASSWORD", None)
        else:
            os.environ["REGWIZ_SUDO_PASSWORD"] = saved_env


def _write_plan(folder: Path, lab: Lab, registry: ExternalRegistry) -> Path:
    """The plan a Harbor user writes: no certificate section, no registry host; the robot
    account's login as a Docker config.json."""
    registry.write_robot_file(folder / "robot.json")
    hosts = [f'[[nodes.hosts]]\nhost = "{lab[name].ip}"\nssh_user = "{lab[name].ssh_user}"\n'
             for name in NODES]
    text = "\n".join([
        "[registry]",
        "managed = false",
        f'address = "{registry.ip}"',
        f"port = {registry.port}",
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
    assert saved.read_bytes() == external.registry.pki.ca_pem


def test_deploy_uninstall_and_certs_refuse_a_registry_regwiz_did_not_deploy(
        external: External, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("deploy", "uninstall", "certs"):
        assert external.cli(command) == 2, command
        assert "managed = false" in capsys.readouterr().err
    # nothing was touched: the registry still answers with its own certificate
    assert external.registry.answers()


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
    assert login == f"{ROBOT}:{external.registry.robot_password}"  # the "$" survived as it is


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
        # containerd nodes: a CRI pull as the kubelet makes it, with that login (issue 13)
        proof = "kubelet credential" if name == "docker" else "CRI pull as the kubelet"
        assert proof in kinds[lab[name].ip], kinds
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
