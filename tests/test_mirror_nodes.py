"""Nodes using the plan's mirrors (issue 14): each runtime adapter's mirror files, the refusals
of private caches, mirror_only, the removal of a mirror taken out of the plan, and restarts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml

from app import onboard
from app import runtimes as rt
from app.address import RegistryAddress
from app.plan import MirrorSettings, Secrets
from app.runtimes.base import (
    MergeAction,
    MirrorJob,
    NodeCredential,
    NodeMirror,
    NoteAction,
    RemoveAction,
)
from app.runtimes.containerd import REGWIZ_DIRS_SCRIPT, split_regwiz_listing
from app.runtimes.crio import render_mirror_conf
from app.runtimes.docker import merge_daemon_json
from app.runtimes.rancher import merge_registries_mirrors
from app.transport.base import CommandResult
from tests.test_onboard_fakes import FakeFleet, FakeNode, plan_with_ca

REGISTRY = RegistryAddress("198.18.9.2", 8443)
HUB = NodeMirror("docker.io", RegistryAddress("198.18.9.2", 5001))
QUAY = NodeMirror("quay.io", RegistryAddress("198.18.9.2", 5002))
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
V2_WITH_PATH = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                'config_path = "/etc/containerd/certs.d"\n')
CONTAINERD = "socket=/run/containerd/containerd.sock\n"
DOCKER = "socket=/run/docker.sock\nactive=docker\n"
K3S = "bin.k3s=/usr/local/bin/k3s\nactive=k3s\n"
CRIO = "socket=/run/crio/crio.sock\nactive=crio\n"
CERTS = "/etc/containerd/certs.d"


def job(*mirrors: NodeMirror, mirror_only: bool = False,
        credential: NodeCredential | None = None) -> MirrorJob:
    return MirrorJob(mirrors, REGISTRY, CA, mirror_only, credential)


def facts(probe: str, config: str | None = V2_WITH_PATH) -> rt.NodeFacts:
    node = FakeNode("n", probe, files={rt.CONTAINERD_CONFIG: config.encode()} if config else None)
    return rt.probe_node(node, sudo=True, runtime="auto")


def planned(probe: str, mirrors: MirrorJob, config: str | None = V2_WITH_PATH
            ) -> list[onboard.NodeAction]:
    return onboard.plan_node_actions(facts(probe, config), address=REGISTRY, ca_pem=CA,
                                     os_trust_store=False, mirrors=mirrors)


def where(actions: list[onboard.NodeAction]) -> list[str]:
    return [" ".join(a.argv) if isinstance(a, onboard.CommandAction)
            else a.what if isinstance(a, NoteAction) else a.path for a in actions]


# --------------------------------------------------------------------------- containerd


def test_containerd_writes_the_mirror_first_with_the_upstream_as_fallback() -> None:
    actions = planned(CONTAINERD, job(HUB))
    assert where(actions)[2:] == [f"{CERTS}/198.18.9.2:5001/ca.crt",
                                  f"{CERTS}/docker.io/hosts.toml"]
    hosts = tomllib.loads(actions[3].content.decode())  # type: ignore[union-attr]
    assert hosts["server"] == "https://registry-1.docker.io"
    assert hosts["host"]["https://198.18.9.2:5001"] == {
        "capabilities": ["pull", "resolve"], "ca": f"{CERTS}/198.18.9.2:5001/ca.crt"}
    assert actions[3].backup and actions[3].upstream == "docker.io"  # type: ignore[union-attr]
    assert not any(isinstance(a, onboard.CommandAction) for a in actions)  # no restart


def test_containerd_mirror_only_points_server_at_the_mirror() -> None:
    actions = planned(CONTAINERD, job(QUAY, mirror_only=True))
    hosts = tomllib.loads(actions[-1].content.decode())  # type: ignore[union-attr]
    assert hosts["server"] == "https://198.18.9.2:5002"  # an omitted server means quay.io
    assert hosts["ca"] == f"{CERTS}/198.18.9.2:5002/ca.crt"
    assert "quay.io" not in json.dumps(hosts)


def test_containerd_without_config_path_enables_it_once_for_ca_and_mirrors() -> None:
    actions = planned(CONTAINERD, job(HUB), config="version = 2\n")
    assert where(actions).count("systemctl restart containerd") == 1
    assert where(actions)[-1] == "systemctl restart containerd"
    assert f"{CERTS}/docker.io/hosts.toml" in where(actions)


def test_containerd_refuses_a_private_mirror_after_its_other_files() -> None:
    private = NodeMirror("ghcr.io", RegistryAddress("198.18.9.2", 5003), private=True)
    actions = planned(CONTAINERD, job(private, HUB))
    last = actions[-1]
    assert isinstance(last, NoteAction) and last.refuse and last.kind == "mirror-auth"
    assert "containerd" in last.note and "ghcr.io" in last.note and last.hint
    assert f"{CERTS}/docker.io/hosts.toml" in where(actions)


# --------------------------------------------------------------------------- Docker


def test_docker_lists_only_docker_io_and_restarts_dockerd() -> None:
    actions = planned(DOCKER, job(HUB, QUAY, mirror_only=True))
    assert where(actions) == [
        "/etc/docker/certs.d/198.18.9.2:8443/ca.crt",
        "/etc/docker/certs.d/198.18.9.2:5001/ca.crt",
        "mirror quay.io",
        "/etc/docker/daemon.json",
        "mirror_only",
        "systemctl restart docker",
    ]
    notes = [a.note for a in actions if isinstance(a, NoteAction)]
    assert "Docker Hub (docker.io) only" in notes[0] and "cannot enforce mirror_only" in notes[1]
    restart = actions[-1]
    assert isinstance(restart, onboard.CommandAction)
    assert restart.service == "docker" and restart.triggers == ("/etc/docker/daemon.json",)


def test_docker_without_mirrors_leaves_daemon_json_alone() -> None:
    assert where(planned(DOCKER, job())) == ["/etc/docker/certs.d/198.18.9.2:8443/ca.crt"]


def test_daemon_json_merge_keeps_other_keys_and_mirrors() -> None:
    current = json.dumps({"log-driver": "json-file",
                          "registry-mirrors": ["https://mirror.example",
                                               "https://198.18.9.2:5009"]}).encode()
    merged = merge_daemon_json(current, ["https://198.18.9.2:5001"], job(HUB))
    assert merged is not None
    assert json.loads(merged) == {"log-driver": "json-file", "registry-mirrors": [
        "https://198.18.9.2:5001", "https://mirror.example"]}  # regwiz's old cache gone
    assert merge_daemon_json(merged, ["https://198.18.9.2:5001"], job(HUB)) is None
    removed = merge_daemon_json(merged, [], job())
    assert removed is not None
    assert json.loads(removed)["registry-mirrors"] == ["https://mirror.example"]


def test_daemon_json_that_is_not_json_is_refused() -> None:
    with pytest.raises(rt.NodeSetupError, match="not valid JSON"):
        merge_daemon_json(b"{", ["https://198.18.9.2:5001"], job(HUB))


# --------------------------------------------------------------------------- k3s / RKE2


def test_k3s_merges_endpoint_and_ca_and_restarts_on_registries_yaml() -> None:
    actions = planned(K3S, job(HUB))
    merges = [a for a in actions if isinstance(a, MergeAction)]
    assert [m.upstream for m in merges] == ["docker.io"]
    restart = actions[-1]
    assert isinstance(restart, onboard.CommandAction)
    assert restart.triggers == ("/etc/rancher/k3s/registries.yaml",)
    existing = b'mirrors:\n  docker.io:\n    endpoint: ["https://mirror.example"]\n'
    data = yaml.safe_load(merges[0].merge(existing) or b"")
    assert data["mirrors"]["docker.io"]["endpoint"] == ["https://198.18.9.2:5001",
                                                        "https://mirror.example"]
    assert data["configs"]["198.18.9.2:5001"]["tls"]["ca_file"] == (
        "/etc/rancher/k3s/certs.d/198.18.9.2:5001/ca.crt")


def test_k3s_private_mirror_gets_the_pull_account_and_mirror_only_is_a_note() -> None:
    private = NodeMirror("ghcr.io", RegistryAddress("198.18.9.2", 5003), private=True)
    login = NodeCredential("198.18.9.2:8443", "cluster", "Y2x1c3RlcjpzM2NyM3Q=")
    merged = merge_registries_mirrors(None, "k3s", [private], job(private, credential=login))
    auth = yaml.safe_load(merged or b"")["configs"]["198.18.9.2:5003"]["auth"]
    assert auth == {"username": "cluster", "password": "s3cr3t"}
    actions = planned(K3S, job(private, mirror_only=True))  # no pull account: refused
    assert any(isinstance(a, NoteAction) and a.refuse for a in actions)
    noted = planned(K3S, job(HUB, mirror_only=True))
    assert any(isinstance(a, NoteAction) and "disable-default-registry-endpoint" in a.note
               for a in noted)


def test_k3s_removal_takes_out_only_regwiz_entries() -> None:
    existing = yaml.safe_dump({
        "mirrors": {"docker.io": {"endpoint": ["https://198.18.9.2:5001"]},
                    "quay.io": {"endpoint": ["https://198.18.9.2:5002", "https://q.example"]},
                    "198.18.9.2:8443": {"endpoint": ["https://198.18.9.2:8443"]}},
        "configs": {"198.18.9.2:5001": {"tls": {"ca_file": "x"}},
                    "198.18.9.2:8443": {"tls": {"ca_file": "y"}}},
    }).encode()
    data = yaml.safe_load(merge_registries_mirrors(existing, "k3s", [], job()) or b"")
    assert data["mirrors"] == {"quay.io": {"endpoint": ["https://q.example"]},
                               "198.18.9.2:8443": {"endpoint": ["https://198.18.9.2:8443"]}}
    assert list(data["configs"]) == ["198.18.9.2:8443"]


# --------------------------------------------------------------------------- CRI-O


def test_crio_drop_in_with_and_without_mirror_only() -> None:
    plain = tomllib.loads(render_mirror_conf(HUB, mirror_only=False))
    assert plain["registry"] == [{"prefix": "docker.io", "location": "docker.io",
                                  "mirror": [{"location": "198.18.9.2:5001"}]}]
    only = tomllib.loads(render_mirror_conf(HUB, mirror_only=True))
    assert only["registry"] == [{"prefix": "docker.io", "location": "198.18.9.2:5001"}]


def test_crio_writes_ca_and_drop_in_removes_old_ones_and_reloads() -> None:
    probe = CRIO + "crio.mirror_confs=regwiz-mirror-quay.io.conf regwiz-mirror-docker.io.conf\n"
    actions = planned(probe, job(HUB))
    assert where(actions) == [
        "/etc/containers/certs.d/198.18.9.2:8443/ca.crt",
        "/etc/containers/certs.d/198.18.9.2:5001/ca.crt",
        "/etc/containers/registries.conf.d/regwiz-mirror-docker.io.conf",
        "/etc/containers/registries.conf.d/regwiz-mirror-quay.io.conf",
        "systemctl reload crio",
    ]
    assert isinstance(actions[3], RemoveAction)
    reload = actions[-1]
    assert isinstance(reload, onboard.CommandAction) and not reload.is_restart


# --------------------------------------------------------------------------- onboard runs


class MirrorNode(FakeNode):
    """A fake node that lists its containerd files as the real listing script does."""

    def run(self, argv: list[str], *, sudo: bool = False, stdin: bytes | None = None,
            timeout: float = 60.0, check: bool = True) -> CommandResult:
        if argv[:3] == ["sh", "-c", REGWIZ_DIRS_SCRIPT]:
            files = [f"file={p}" for p, content in sorted(self.files.items())
                     if p.startswith(CERTS + "/") and ".regwiz-backup-" not in p
                     and (p.endswith("/ca.crt") or (p.endswith("/hosts.toml") and content
                                                    .startswith(b"# Written by regwiz: mirror")))]
            originals = [f"original={self._original_of(f.removeprefix('file='))}" for f in files
                         if f.endswith("/hosts.toml") and self._original_of(f[5:])]
            return CommandResult(argv, 0, "\n".join(files + originals), "")
        return super().run(argv, sudo=sudo, stdin=stdin, timeout=timeout, check=check)


    def _original_of(self, path: str) -> str | None:
        """The newest backup of ``path`` that regwiz did not write (as the script finds it)."""
        backups = sorted(p for p in self.files if p.startswith(path + ".regwiz-backup-")
                         and not self.files[p].startswith(b"# Written by regwiz"))
        return backups[-1] if backups else None


def run_plan(tmp_path: Path, node: FakeNode, mirrors: list[MirrorSettings],
             **fields: object) -> onboard.NodeResult:
    plan = plan_with_ca(tmp_path, [node.name], **fields)
    plan.mirrors = mirrors
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                   connect=FakeFleet({node.name: node}))
    return report.results[0]


def test_containerd_second_run_unchanged_and_removed_mirror_is_cleaned(tmp_path: Path) -> None:
    hand_written = b'server = "https://quay.io"\n'
    node = MirrorNode("c", CONTAINERD, files={rt.CONTAINERD_CONFIG: V2_WITH_PATH.encode(),
                                              f"{CERTS}/quay.io/hosts.toml": hand_written})
    mirrors = [MirrorSettings("docker.io", 5001), MirrorSettings("quay.io", 5002)]
    first = run_plan(tmp_path, node, mirrors)
    assert first.status == "changed", first.message
    assert [node.files[p] for p in node.files if "quay.io/hosts.toml.regwiz-backup" in p] == [
        hand_written]
    assert run_plan(tmp_path, node, mirrors).status == "unchanged"
    moved = [mirrors[0], MirrorSettings("quay.io", 5003)]  # regwiz rewrites its own file
    assert run_plan(tmp_path, node, moved).status == "changed"
    plan = plan_with_ca(tmp_path, ["c"])
    plan.mirrors = mirrors[:1]
    preview = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                    connect=FakeFleet({"c": node}), dry_run=True)
    assert (f"put back the operator's own {CERTS}/quay.io/hosts.toml from {CERTS}/quay.io/"
            "hosts.toml.regwiz-backup-") in "\n".join(preview.results[0].dry_run_lines)
    third = run_plan(tmp_path, node, mirrors[:1])
    assert third.status == "changed", third.message
    assert node.files[f"{CERTS}/quay.io/hosts.toml"] == hand_written  # the operator's, back
    assert f"{CERTS}/198.18.9.2:5003/ca.crt" not in node.files
    assert f"{CERTS}/docker.io/hosts.toml" in node.files
    assert f"{CERTS}/198.18.9.2:8443/ca.crt" in node.files  # the registry's own stays
    assert run_plan(tmp_path, node, mirrors[:1]).status == "unchanged"
    assert run_plan(tmp_path, node, []).status == "changed"
    assert f"{CERTS}/docker.io/hosts.toml" not in node.files  # regwiz's alone: removed
    assert node.files[f"{CERTS}/quay.io/hosts.toml"] == hand_written


def test_docker_restarts_once_then_nothing_and_notes_what_it_cannot(tmp_path: Path) -> None:
    node = FakeNode("d", DOCKER, files={"/etc/docker/daemon.json": b'{"debug": true}\n'})
    mirrors = [MirrorSettings("docker.io", 5001), MirrorSettings("quay.io", 5002)]
    first = run_plan(tmp_path, node, mirrors)
    assert first.status == "changed" and first.restarted == ["docker"], first.message
    assert json.loads(node.files["/etc/docker/daemon.json"]) == {
        "debug": True, "registry-mirrors": ["https://198.18.9.2:5001"]}
    assert any("quay.io is not mirrored" in note for note in first.notes)
    node.commands.clear()
    second = run_plan(tmp_path, node, mirrors)
    assert second.status == "unchanged"
    assert ["systemctl", "restart", "docker"] not in node.commands


def test_private_mirror_fails_the_node_naming_node_runtime_and_fix(tmp_path: Path) -> None:
    node = MirrorNode("c", CONTAINERD, files={rt.CONTAINERD_CONFIG: V2_WITH_PATH.encode()})
    result = run_plan(tmp_path, node, [MirrorSettings("ghcr.io", 5003, username="me")])
    assert result.status == "failed" and result.kind == "mirror-auth"
    assert result.reason == "mirror needs a login"
    assert "node c" in result.message and "containerd" in result.message and result.hint
    assert f"{CERTS}/198.18.9.2:8443/ca.crt" in node.files  # the registry's CA still written


def test_dry_run_names_the_mirror_files(tmp_path: Path) -> None:
    node = MirrorNode("c", CONTAINERD, files={rt.CONTAINERD_CONFIG: V2_WITH_PATH.encode()})
    plan = plan_with_ca(tmp_path, ["c"])
    plan.mirrors = [MirrorSettings("docker.io", 5001)]
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                   connect=FakeFleet({"c": node}), dry_run=True)
    text = "\n".join(report.results[0].dry_run_lines)
    assert "pull docker.io through its mirror (hosts.toml)" in text and node.writes == []


# --------------------------------------------------------------------------- status


def node_status(tmp_path: Path, node: FakeNode, mirrors: list[MirrorSettings]
                ) -> list[str]:
    from app.status import check_mirrors

    plan = plan_with_ca(tmp_path, [node.name])
    plan.mirrors = mirrors
    resolved = plan.resolved_nodes()[0]
    found = check_mirrors(node, plan, resolved, rt.probe_node(node, sudo=True, runtime="auto"),
                          None)
    return [f"{m.runtime}: {m.text}" for m in found]


def test_status_reads_each_mirror_back_through_the_adapters(tmp_path: Path) -> None:
    node = MirrorNode("c", CONTAINERD, files={rt.CONTAINERD_CONFIG: V2_WITH_PATH.encode()})
    hub, quay = MirrorSettings("docker.io", 5001), MirrorSettings("quay.io", 5002)
    run_plan(tmp_path, node, [hub])
    assert node_status(tmp_path, node, [hub, quay]) == [
        "containerd: docker.io ✓", "containerd: quay.io ✗ (no ca.crt, no hosts.toml)"]
    node.files[f"{CERTS}/docker.io/hosts.toml"] = b"# hand-edited\n"
    assert node_status(tmp_path, node, [hub])[0] == "containerd: docker.io ✗ (hosts.toml differs)"


def test_status_of_docker_says_what_it_cannot_mirror(tmp_path: Path) -> None:
    node = FakeNode("d", DOCKER)
    hub, quay = MirrorSettings("docker.io", 5001), MirrorSettings("quay.io", 5002)
    assert node_status(tmp_path, node, [hub, quay]) == [
        "docker: docker.io ✗ (no ca.crt, no daemon.json)",
        "docker: quay.io – (quay.io is not mirrored on Docker: dockerd's registry-mirrors serve "
        "Docker Hub (docker.io) only)"]
    run_plan(tmp_path, node, [hub, quay], mirror_only=True)
    assert node_status(tmp_path, node, [hub])[0] == "docker: docker.io ✓"


def test_status_report_counts_a_node_missing_its_mirror_as_stale() -> None:
    from app.status import MirrorState, NodeMirrorStatus, NodeTrustStatus, TrustState

    node = NodeTrustStatus("n", TrustState.MATCH, mirrors=[
        NodeMirrorStatus("docker.io", "docker", MirrorState.CONFIGURED),
        NodeMirrorStatus("quay.io", "docker", MirrorState.UNSUPPORTED, "Docker: docker.io only")])
    assert not node.mirrors_stale
    node.mirrors.append(NodeMirrorStatus("ghcr.io", "docker", MirrorState.MISSING, "no ca.crt"))
    assert node.mirrors_stale
    assert node.mirrors_text == ("docker.io ✓, quay.io – (Docker: docker.io only), "
                                 "ghcr.io ✗ (no ca.crt)")


# --------------------------------------------------------------------------- verify


class PullingNode(FakeNode):
    """A fake Docker node whose pulls fail while ``broken``."""

    broken = False

    def run(self, argv: list[str], *, sudo: bool = False, stdin: bytes | None = None,
            timeout: float = 60.0, check: bool = True) -> CommandResult:
        if argv[:2] == ["docker", "pull"] and self.broken:
            self.commands.append(argv)
            return CommandResult(argv, 1, "", "Error response from daemon: Get "
                                 '"https://registry-1.docker.io/v2/": dial tcp: i/o timeout')
        return super().run(argv, sudo=sudo, stdin=stdin, timeout=timeout, check=check)


def verify_mirrors(tmp_path: Path, node: FakeNode, mirrors: list[MirrorSettings]
                   ) -> list[tuple[str, bool, str]]:
    from app.verify import NamedImage, _NodeJob, mirror_checks

    plan = plan_with_ca(tmp_path, [node.name])
    plan.mirrors = mirrors
    job = _NodeJob(plan, Secrets(), None, NamedImage("r", "x", "1"), None, None,
                   lambda _event: None, lambda: False)
    found = mirror_checks(job, plan.resolved_nodes()[0],
                          rt.probe_node(node, sudo=True, runtime="auto"), node)
    return [(check.kind, check.passed, check.detail) for check in found]


def test_verify_pulls_each_upstream_by_its_own_name(tmp_path: Path) -> None:
    node = PullingNode("d", DOCKER)
    mirrors = [MirrorSettings("docker.io", 5001), MirrorSettings("quay.io", 5002),
               MirrorSettings("registry.k8s.io", 5003)]
    checks = verify_mirrors(tmp_path, node, mirrors)
    assert checks[0] == ("mirror of docker.io (198.18.9.2:5001), docker: docker pull", True,
                         "pulled docker.io/library/busybox:latest (through the mirror "
                         "198.18.9.2:5001)")
    assert checks[1] == ("mirror of quay.io (198.18.9.2:5002)", True,
                         "not checked: set mirrors[1].verify_image")
    assert checks[2][1] and "not checked: registry.k8s.io is not mirrored on Docker" in checks[2][2]
    assert ["docker", "pull", "docker.io/library/busybox:latest"] in node.commands


def test_verify_failure_names_node_mirror_and_upstream(tmp_path: Path) -> None:
    node = PullingNode("d", DOCKER)
    node.broken = True
    [check] = verify_mirrors(tmp_path, node, [MirrorSettings("docker.io", 5001)])
    assert not check[1]
    assert check[2].startswith("node d could not pull docker.io/library/busybox:latest through "
                               "the mirror of docker.io at 198.18.9.2:5001: ")


def test_verify_image_is_read_and_saved_with_the_mirror(tmp_path: Path) -> None:
    from app.plan import load_plan, save_plan

    plan = plan_with_ca(tmp_path, ["n"])
    plan.mirrors = [MirrorSettings("quay.io", 5002, verify_image="prometheus/busybox:latest")]
    save_plan(plan)
    loaded = load_plan(tmp_path / "plan.toml")
    assert loaded.mirrors[0].image_to_verify == "prometheus/busybox:latest"
    assert MirrorSettings("docker.io", 5001).image_to_verify == "library/busybox:latest"
    assert MirrorSettings("registry.k8s.io", 5001).image_to_verify == "pause:3.9"


def test_onboard_summary_prints_what_a_runtime_cannot_mirror(tmp_path: Path) -> None:
    import io

    from app.commands.output import print_onboard_report

    node = FakeNode("d", DOCKER)
    plan = plan_with_ca(tmp_path, ["d"])
    plan.mirrors = [MirrorSettings("quay.io", 5002)]
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                   connect=FakeFleet({"d": node}))
    out = io.StringIO()
    print_onboard_report(report, None, out)
    assert ("d: note: quay.io is not mirrored on Docker: dockerd's registry-mirrors serve "
            "Docker Hub (docker.io) only") in out.getvalue()


def test_old_mirror_cas_are_removed_in_every_runtime_certs_d() -> None:
    probe = (DOCKER + "docker.certs_d=198.18.9.2:8443 198.18.9.2:5009 other.example:5009\n"
             "bin.k3s=/usr/local/bin/k3s\nk3s.certs_d=198.18.9.2:5009 198.18.9.2:5001\n")
    removed = [a.path for a in planned(probe, job(HUB)) if isinstance(a, RemoveAction)]
    assert removed == ["/etc/docker/certs.d/198.18.9.2:5009/ca.crt",
                       "/etc/rancher/k3s/certs.d/198.18.9.2:5009/ca.crt"]


def test_dry_run_says_what_a_runtime_cannot_do(tmp_path: Path) -> None:
    node = FakeNode("d", DOCKER)
    plan = plan_with_ca(tmp_path, ["d"])
    plan.mirrors = [MirrorSettings("quay.io", 5002)]
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                   connect=FakeFleet({"d": node}), dry_run=True)
    assert ("[d] mirror quay.io: quay.io is not mirrored on Docker: dockerd's registry-mirrors "
            "serve Docker Hub (docker.io) only") in report.results[0].dry_run_lines


def test_dockerd_not_coming_back_gets_its_daemon_json_back(tmp_path: Path) -> None:
    original = b'{"debug": true}\n'
    node = FakeNode("d", DOCKER, files={"/etc/docker/daemon.json": original})
    node.start_fails = lambda n, service: b"registry-mirrors" in n.files.get(
        "/etc/docker/daemon.json", b"")
    result = run_plan(tmp_path, node, [MirrorSettings("docker.io", 5001)])
    assert (result.status, result.kind) == ("failed", "restart-failed")
    assert result.message.endswith(
        "restored the previous /etc/docker/daemon.json and docker is active again")
    assert node.files["/etc/docker/daemon.json"] == original and "docker" not in node.down


def test_status_text_lists_each_node_mirrors_with_a_hint_when_stale() -> None:
    from types import SimpleNamespace

    from app.commands.status import print_nodes
    from app.status import MirrorState, NodeMirrorStatus, NodeTrustStatus, TrustState

    node = NodeTrustStatus("198.18.9.3", TrustState.MATCH, ["containerd"], mirrors=[
        NodeMirrorStatus("docker.io", "containerd", MirrorState.CONFIGURED),
        NodeMirrorStatus("quay.io", "containerd", MirrorState.MISSING, "no hosts.toml")])
    lines: list[str] = []
    print_nodes(SimpleNamespace(nodes=[node]), lambda _label, text: lines.append(text))  # type: ignore[arg-type]
    assert "  mirrors: docker.io ✓, quay.io ✗ (no hosts.toml)" in lines
    assert any("hint: run regwiz onboard to point the node at the plan's mirrors" in line
               for line in lines)


def test_another_registry_on_the_registry_host_keeps_its_ca_and_settings(tmp_path: Path) -> None:
    """A second registry on the same host (another port, its own CA) is not an old mirror:
    its CA file and its registries.yaml configs stay when regwiz cleans up after mirrors."""
    other_ca = b"-----BEGIN CERTIFICATE-----\nanother registry's CA\n"
    other = {f"{CERTS}/198.18.9.2:9443/ca.crt": other_ca,
             f"{CERTS}/198.18.9.2:9443/hosts.toml": b'server = "https://198.18.9.2:9443"\n'}
    node = MirrorNode("c", CONTAINERD, files={rt.CONTAINERD_CONFIG: V2_WITH_PATH.encode(),
                                              **other})
    assert run_plan(tmp_path, node, [MirrorSettings("docker.io", 5001)]).status == "changed"
    assert run_plan(tmp_path, node, []).status == "changed"  # the mirror taken out again
    assert f"{CERTS}/198.18.9.2:5001/ca.crt" not in node.files  # the old mirror's CA: ours
    assert {path: node.files.get(path) for path in other} == other
    # the dry run agrees with the run: another CA's file is not one it would remove
    from app.runtimes.base import stale_mirror_ca, would_change

    stale = stale_mirror_ca("/x/ca.crt", "containerd", "198.18.9.2:9443", job())
    assert not would_change(stale, other_ca) and would_change(stale, job().ca_pem)
    existing = yaml.safe_dump({"configs": {"198.18.9.2:9443": {"tls": {"ca_file": "y"}}}}
                              ).encode()
    assert merge_registries_mirrors(existing, "k3s", [], job()) is None  # nothing to take out


def test_the_listing_script_finds_the_operators_file_behind_regwizs(tmp_path: Path) -> None:
    """REGWIZ_DIRS_SCRIPT run by sh on real files: the newest backup regwiz did not write."""
    tmp_path = tmp_path / "certs=d"  # an "=" in a hosts dir's name: still a directory
    tmp_path.mkdir()
    mark = "# Written by regwiz: mirror of {}.\n"
    files = {
        "docker.io/hosts.toml": mark.format("docker.io"),
        "docker.io/hosts.toml.regwiz-backup-20261201000000000000": "# the operator's, old\n",
        "docker.io/hosts.toml.regwiz-backup-20261202000000000000": "# the operator's, newer\n",
        "docker.io/hosts.toml.regwiz-backup-20261203000000000000": mark.format("docker.io"),
        "quay.io/hosts.toml": mark.format("quay.io"),
        "quay.io/hosts.toml.regwiz-backup-20261203000000000000": mark.format("quay.io"),
        "ghcr.io/hosts.toml": "# the operator's, never replaced\n",
        "198.18.9.2:5001/ca.crt": "PEM\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    out = subprocess.run(["sh", "-c", REGWIZ_DIRS_SCRIPT, "sh", str(tmp_path)],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    listing = split_regwiz_listing(out)
    assert listing.dirs == (str(tmp_path),)
    assert sorted(listing.files) == sorted(str(tmp_path / name) for name in (
        "docker.io/hosts.toml", "quay.io/hosts.toml", "198.18.9.2:5001/ca.crt"))
    assert listing.originals == (
        str(tmp_path / "docker.io/hosts.toml.regwiz-backup-20261202000000000000"),)
