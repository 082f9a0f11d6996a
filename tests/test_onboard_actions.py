"""What onboarding decides to write and restart per runtime (pure planning + one fake node)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app import onboard
from app import runtimes as rt
from app.address import RegistryAddress
from app.errors import RegwizError
from app.plan import Secrets
from tests.test_onboard_fakes import ROCKY, FakeFleet, FakeNode, plan_with_ca

REG = "198.18.9.2:8443"
ADDRESS = RegistryAddress("198.18.9.2", 8443)
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def facts(probe: str, runtime: str = "auto", os_release: str = "ID=debian\n",
          config: str | None = None) -> rt.NodeFacts:
    node = FakeNode("n", probe, os_release,
                    {rt.CONTAINERD_CONFIG: config.encode()} if config else None)
    return rt.probe_node(node, sudo=True, runtime=runtime)


def paths(actions: list[onboard.NodeAction]) -> list[str]:
    return [a.path if not isinstance(a, onboard.CommandAction) else " ".join(a.argv)
            for a in actions]


def test_docker_only_needs_its_certs_d_file() -> None:
    actions = onboard.plan_node_actions(facts("socket=/run/docker.sock\n"), address=ADDRESS,
                                        ca_pem=CA, os_trust_store=False)
    assert paths(actions) == [f"/etc/docker/certs.d/{REG}/ca.crt"]


def test_containerd_with_config_path_needs_no_restart() -> None:
    config = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
              'config_path = "/etc/containerd/certs.d"\n')
    f = facts("socket=/run/containerd/containerd.sock\n", config=config)
    actions = onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=False)
    assert paths(actions) == [f"/etc/containerd/certs.d/{REG}/ca.crt",
                              f"/etc/containerd/certs.d/{REG}/hosts.toml"]
    hosts_toml = actions[1]
    assert isinstance(hosts_toml, onboard.FileAction)
    assert f'ca = "/etc/containerd/certs.d/{REG}/ca.crt"'.encode() in hosts_toml.content


def test_containerd_custom_hosts_dir_is_used() -> None:
    config = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/srv/h"\n'
    f = facts("socket=/run/containerd/containerd.sock\n", config=config)
    actions = onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=False)
    assert paths(actions) == [f"/srv/h/{REG}/ca.crt", f"/srv/h/{REG}/hosts.toml"]


def test_containerd_without_config_path_backs_up_enables_and_restarts() -> None:
    f = facts("socket=/run/containerd/containerd.sock\ncontainerd.config_mode=600\n",
              config="version = 2\n")
    actions = onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=False)
    assert paths(actions) == [f"/etc/containerd/certs.d/{REG}/ca.crt",
                              f"/etc/containerd/certs.d/{REG}/hosts.toml",
                              rt.CONTAINERD_CONFIG, "systemctl restart containerd"]
    config = actions[2]
    assert isinstance(config, onboard.FileAction) and config.backup and config.mode == 0o600
    restart = actions[3]
    assert isinstance(restart, onboard.CommandAction)
    assert restart.triggers == (rt.CONTAINERD_CONFIG,)


def test_crio_and_podman_share_one_file() -> None:
    f = facts("socket=/run/crio/crio.sock\nbin.podman=/usr/bin/podman\n")
    assert f.runtimes == ["cri-o", "podman"]
    actions = onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=False)
    assert paths(actions) == [f"/etc/containers/certs.d/{REG}/ca.crt"]


@pytest.mark.parametrize(("runtime", "service"), [("k3s", "k3s-agent"), ("rke2", "rke2-server")])
def test_k3s_rke2_registries_yaml_and_restart_of_the_active_service(
        runtime: str, service: str) -> None:
    f = facts(f"bin.{runtime}=/usr/local/bin/{runtime}\nactive={service}\n")
    actions = onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=False)
    assert paths(actions) == [f"/etc/rancher/{runtime}/certs.d/{REG}/ca.crt",
                              f"/etc/rancher/{runtime}/registries.yaml",
                              f"systemctl restart {service}"]


def test_k3s_not_running_is_not_restarted() -> None:
    f = facts("path=/etc/rancher/k3s\n")
    actions = onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=False)
    assert not any(isinstance(a, onboard.CommandAction) for a in actions)


def test_explicit_runtime_wins_over_detection() -> None:
    f = facts("socket=/run/docker.sock\n", runtime="cri-o")
    assert (f.runtimes, f.detected) == (["cri-o"], ["docker"])
    actions = onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=False)
    assert paths(actions) == [f"/etc/containers/certs.d/{REG}/ca.crt"]


def test_os_store_on_rhel() -> None:
    f = facts("", runtime="none", os_release=ROCKY)
    actions = onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=True)
    anchor = "/etc/pki/ca-trust/source/anchors/regwiz-198.18.9.2_8443.pem"
    assert paths(actions) == [anchor, "update-ca-trust extract"]


def test_nothing_to_configure_is_an_unknown_runtime_failure() -> None:
    # docker.io installed but not running: binaries alone do not count.
    f = facts("bin.docker=/usr/bin/docker\nbin.containerd=/usr/bin/containerd\n")
    with pytest.raises(rt.NodeSetupError) as info:
        onboard.plan_node_actions(f, address=ADDRESS, ca_pem=CA, os_trust_store=False)
    assert info.value.kind == "unknown-runtime"
    assert "os_trust_store" in (info.value.hint or "")


# --------------------------------------------------------------------------- run on a fake node


def run_one(tmp_path: Path, node: FakeNode, **fields: object) -> onboard.OnboardReport:
    plan = plan_with_ca(tmp_path, [node.name], **fields)
    return onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                 connect=FakeFleet({node.name: node}))


def test_k3s_merge_keeps_other_registries_restarts_once_then_nothing(tmp_path: Path) -> None:
    existing = b'mirrors:\n  docker.io:\n    endpoint: ["https://mirror.example"]\n'
    node = FakeNode("k3s-node", "bin.k3s=/usr/local/bin/k3s\nactive=k3s\n",
                    files={"/etc/rancher/k3s/registries.yaml": existing})
    first = run_one(tmp_path, node)
    assert first.results[0].status == "changed", first.results[0].message
    assert first.results[0].restarted == ["k3s"]
    data = yaml.safe_load(node.files["/etc/rancher/k3s/registries.yaml"])
    assert data["mirrors"]["docker.io"]["endpoint"] == ["https://mirror.example"]
    assert data["configs"][REG]["tls"]["ca_file"] == f"/etc/rancher/k3s/certs.d/{REG}/ca.crt"
    backups = [p for p in node.files if ".regwiz-backup-" in p]
    assert [node.files[p] for p in backups] == [existing]
    assert node.commands.count(["systemctl", "restart", "k3s"]) == 1

    node.commands.clear()
    second = run_one(tmp_path, node)
    assert second.results[0].status == "unchanged"
    assert not any(c[:2] == ["systemctl", "restart"] for c in node.commands)


def test_os_store_update_runs_only_when_the_anchor_changed(tmp_path: Path) -> None:
    node = FakeNode("plain")
    assert run_one(tmp_path, node, os_trust_store=True).results[0].status == "changed"
    assert ["update-ca-certificates"] in node.commands
    node.commands.clear()
    assert run_one(tmp_path, node, os_trust_store=True).results[0].status == "unchanged"
    assert ["update-ca-certificates"] not in node.commands


def test_dry_run_writes_nothing_and_names_what_is_in_place(tmp_path: Path) -> None:
    node = FakeNode("c", "socket=/run/containerd/containerd.sock\n",
                    files={rt.CONTAINERD_CONFIG: b"version = 2\n"})
    plan = plan_with_ca(tmp_path, ["c"])
    ca = (plan.cert_dir / "ca.crt").read_bytes()
    node.files[f"/etc/containerd/certs.d/{REG}/ca.crt"] = ca
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                   connect=FakeFleet({"c": node}), dry_run=True)
    result = report.results[0]
    assert result.status == "planned" and node.writes == [] and node.commands == [["true"]]
    text = "\n".join(result.dry_run_lines)
    assert "install the registry CA for containerd: already in place" in text
    assert "hosts.toml" in text and "restart containerd" in text
    assert not onboard.results_path(plan).exists()  # dry runs are not saved


def test_k3s_dry_run_agrees_with_the_real_run(tmp_path: Path) -> None:
    yaml_path = "/etc/rancher/k3s/registries.yaml"
    node = FakeNode("k", "bin.k3s=/usr/local/bin/k3s\nactive=k3s\n",
                    files={yaml_path: b'mirrors:\n  docker.io:\n    endpoint: ["https://m.example"]\n'})
    plan = plan_with_ca(tmp_path, ["k"])

    def onboard_k(dry_run: bool) -> onboard.NodeResult:
        return onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                     connect=FakeFleet({"k": node}), dry_run=dry_run).results[0]

    merge_in_place = "[k] add the registry to k3s's registries.yaml: already in place"
    before = onboard_k(dry_run=True)
    assert node.writes == [] and merge_in_place not in before.dry_run_lines
    assert any("restart k3s" in line for line in before.dry_run_lines)
    assert onboard_k(dry_run=False).status == "changed"
    after = onboard_k(dry_run=True)
    assert merge_in_place in after.dry_run_lines
    assert all(line.endswith("already in place") for line in after.dry_run_lines)


def test_only_the_ca_certificate_ever_reaches_a_node(tmp_path: Path) -> None:
    node = FakeNode("all", "socket=/run/docker.sock\nsocket=/run/containerd/containerd.sock\n"
                    "socket=/run/crio/crio.sock\nbin.k3s=/k3s\n",
                    files={rt.CONTAINERD_CONFIG: b"version = 2\n"})
    plan = plan_with_ca(tmp_path, ["all"], os_trust_store=True)
    keys = [(plan.cert_dir / name).read_bytes() for name in ("ca.key", "tls.key")]
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                   connect=FakeFleet({"all": node}))
    assert report.results[0].status == "changed", report.results[0].message
    assert len(node.writes) >= 8
    for path in node.writes:
        content = node.files.get(path, b"")  # a done restart's record is written, then removed
        assert b"PRIVATE KEY" not in content, path
        assert all(key not in content for key in keys)


def test_a_ca_file_with_a_key_in_it_is_refused(tmp_path: Path) -> None:
    plan = plan_with_ca(tmp_path, ["n"])
    ca = plan.cert_dir / "ca.crt"
    ca.write_bytes(ca.read_bytes() + (plan.cert_dir / "ca.key").read_bytes())
    with pytest.raises(RegwizError) as info:
        onboard.load_ca_certificate(plan)
    assert "private key" in info.value.message
    key_body = (plan.cert_dir / "ca.key").read_text().splitlines()[1]
    assert key_body not in str(info.value)


@pytest.mark.parametrize(("content", "expected"), [(None, "does not exist"),
                                                   (b"garbage", "not a PEM certificate")])
def test_missing_or_broken_ca_file(tmp_path: Path, content: bytes | None, expected: str) -> None:
    plan = plan_with_ca(tmp_path, ["n"])
    ca = plan.cert_dir / "ca.crt"
    ca.unlink()
    if content is not None:
        ca.write_bytes(content)
    with pytest.raises(RegwizError) as info:
        onboard.load_ca_certificate(plan)
    assert expected in info.value.message and info.value.hint


def test_a_hand_written_hosts_toml_is_backed_up_before_it_is_replaced(tmp_path: Path) -> None:
    config = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
              'config_path = "/etc/containerd/certs.d"\n')
    mine = f'server = "https://{REG}"\n# my own mirror settings\n'.encode()
    hosts_toml = f"/etc/containerd/certs.d/{REG}/hosts.toml"
    node = FakeNode("c", "socket=/run/containerd/containerd.sock\n",
                    files={rt.CONTAINERD_CONFIG: config.encode(), hosts_toml: mine})
    assert run_one(tmp_path, node).results[0].status == "changed"
    backups = [p for p in node.files if p.startswith(hosts_toml + ".regwiz-backup-")]
    assert [node.files[p] for p in backups] == [mine]
    assert b"ca = " in node.files[hosts_toml]
    assert node.commands == [["true"]]  # no restart for hosts.toml
