"""Acceptance for `regwiz apply` on the lab: a fresh plan, real sshd/dockerd/containerd/registry.

One apply must create the certificates, deploy the registry as the sudo user, onboard the docker
node, both containerd nodes (with and without config_path) and the plain node (OS store), and
verify every one of them with a real pull (or the OS-store TLS check); a second onboard then
changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.connections import host_key_policy
from app.plan import Secrets, load_plan
from app.verify import CheckState, verify
from tests.lab.lab import Lab
from tests.lab.plans import core_plan_text
from tests.lab.trust import CORE_NODES, reset_node_trust

PORT = 8743
CONTAINER = "apply-lab-registry"
CERTS_DIR = "/etc/docker/apply-lab-certs"
DATA_DIR = "/registry-image/apply-lab"


def write_plan(lab: Lab, path: Path) -> Path:
    path.write_text(core_plan_text(
        lab, CORE_NODES,
        certificate={"common_name": "registry.lab.internal", "country": "KR",
                     "organization": "regwiz lab", "directory": "certs"},
        registry={"sudo": True, "port": PORT, "container_name": CONTAINER, "data_dir": DATA_DIR,
                  "certs_dir": CERTS_DIR, "delete_enabled": True,
                  # the default was "none" before issue 11; this test reads verify's checks
                  # without a login (the default front with accounts: test_private_lab)
                  "auth": "none"}))
    return path


@pytest.fixture
def fresh_plan(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    registry = f"{lab['registry'].ip}:{PORT}"
    reset_node_trust(lab, registry)
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", "rwops-password")  # the containerd node's sudo
    plan = write_plan(lab, tmp_path / "plan.toml")
    try:
        yield plan
    finally:
        main(["uninstall", "--plan", str(plan), "--known-hosts", str(lab.known_hosts),
              "--purge", "--yes"])
        reset_node_trust(lab, registry)


def test_apply_from_a_fresh_plan_verifies_every_node(
    lab: Lab, fresh_plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known_hosts = str(lab.known_hosts)
    assert main(["apply", "--plan", str(fresh_plan), "--known-hosts", known_hosts]) == 0
    out = capsys.readouterr().out
    for stage in ("1/4 certs", "2/4 deploy", "3/4 onboard", "4/4 verify"):
        assert stage in out
    assert "apply: all 4 stages passed" in out
    assert "deleted from the registry" in out  # delete_enabled: the test tag is cleaned up
    # the bare node had no config_path: onboarding enabled it (and verify relied on it)
    bare_config = lab["bare"].host_path("/etc/containerd/config.toml").read_text()
    assert 'config_path = "/etc/containerd/certs.d"' in bare_config

    # The same proof once more, read structurally: which check ran on which node.
    plan = load_plan(fresh_plan)
    report = verify(plan, Secrets.from_env(),
                    host_key_policy=host_key_policy(False, known_hosts=known_hosts))
    assert report.ok, report.to_dict()
    by_host = {node.host: node for node in report.nodes}
    docker_node = by_host[lab["docker"].ip]
    assert [c.kind for c in docker_node.checks] == ["docker pull"]
    for name in ("containerd", "bare"):
        node = by_host[lab[name].ip]
        assert node.runtimes == ["containerd"]
        assert [c.kind for c in node.checks] == [  # through the CRI, as the kubelet pulls
            "CRI pull as the kubelet (containerd)", "sandbox image (containerd)"]
    for name in ("docker", "containerd", "bare"):  # really pulled: the pushed digest came back
        assert by_host[lab[name].ip].checks[0].digest == report.push_pull.pushed_digest
    plain = by_host[lab["plain"].ip]
    assert plain.runtimes == [] and plain.state is CheckState.PASSED
    assert [c.kind for c in plain.checks] == ["TLS handshake (OS trust store only)"]
    assert "HTTP 200" in plain.checks[0].detail

    # A second onboard finds every node as the plan says.
    capsys.readouterr()
    again = main(["onboard", "--plan", str(fresh_plan), "--known-hosts", known_hosts, "--json"])
    assert again == 0
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    assert {n["host"]: n["status"] for n in nodes} == {
        lab[name].ip: "unchanged" for name in ("docker", "containerd", "bare", "plain")
    }


def test_apply_stops_at_the_first_failed_stage(
    lab: Lab, fresh_plan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image the air-gapped registry host cannot get: deploy fails, onboard never runs."""
    missing_image = '[registry]\nimage = "regwiz-lab/missing:1"\n'
    fresh_plan.write_text(fresh_plan.read_text().replace("[registry]\n", missing_image))
    code = main(["apply", "--plan", str(fresh_plan), "--known-hosts", str(lab.known_hosts)])
    out = capsys.readouterr().out
    assert code == 1
    assert "== 1/4 certs" in out and "== 2/4 deploy" in out
    assert "apply stopped: deploy failed (not run: onboard, verify)" in out
    assert "== 3/4 onboard" not in out
    registry = f"{lab['registry'].ip}:{PORT}"
    assert not lab["docker"].host_path(f"/etc/docker/certs.d/{registry}").exists()
