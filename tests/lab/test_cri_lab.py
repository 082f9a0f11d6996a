"""Issue 13 on the lab: verify pulls through containerd's real CRI plugin as the kubelet does,
and onboarding/status/verify judge the configuration containerd really runs.

The lab's containerd hosts serve the CRI on their own socket (``/run`` is private per host).
A registry without auth is deployed once; the tests then change bare's containerd
configuration (an imports drop-in) and put it back.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from app.connections import host_key_policy
from app.cri.grpc_stream import GrpcConnection
from app.cri.image_service import ImageServiceClient
from app.plan import NodeSettings, Plan, Secrets, load_plan
from app.runtimes.base import CommandAction, FileAction
from app.runtimes.containerd import (
    CONTAINERD_CONFIG,
    ContainerdAdapter,
    parse_containerd_config,
    remember_config,
)
from app.runtimes.facts import ProbeResult, facts_from_probe
from app.status import TrustState, collect_status
from app.verify import CheckState, VerifyReport, verify
from tests.lab.lab import CONTAINERD_CONFIG_BASE, OPS_PASSWORD, Lab, LabHost
from tests.lab.plans import core_plan_text
from tests.lab.trust import reset_node_trust

PORT = 8874
CONTAINER = "cri-lab-registry"
NODES = ("containerd", "bare")
DROP_IN_DIR = "/etc/containerd/conf.d"
ELSEWHERE = "/etc/containerd/certs-elsewhere.d"
IMPORTS = f'imports = ["{DROP_IN_DIR}/*.toml"]\n'
REGISTRY_TABLE = '[plugins."io.containerd.grpc.v1.cri".registry]\n'
CRI_KIND = "CRI pull as the kubelet (containerd)"
SANDBOX_KIND = "sandbox image (containerd)"
PAUSE = "registry.k8s.io/pause:3.6"  # containerd 1.6's default sandbox image


@dataclass
class Setup:
    lab: Lab
    plan_path: Path

    @property
    def plan(self) -> Plan:
        return load_plan(self.plan_path)

    @property
    def registry(self) -> str:
        return self.plan.registry_reference

    def ip(self, name: str) -> str:
        return self.lab[name].ip

    def cli(self, command: str, *extra: str) -> int:
        return main([command, "--plan", str(self.plan_path), "--known-hosts",
                     str(self.lab.known_hosts), *extra])

    def policy(self):  # type: ignore[no-untyped-def]
        return host_key_policy(False, known_hosts=self.lab.known_hosts)

    def verify(self, plan: Plan | None = None) -> VerifyReport:
        return verify(plan or self.plan, Secrets(sudo_password=OPS_PASSWORD),
                      host_key_policy=self.policy())

    def node(self, report: VerifyReport, name: str):  # type: ignore[no-untyped-def]
        return next(n for n in report.nodes if n.host == self.ip(name))


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    plan_path = tmp_path_factory.mktemp("cri-lab") / "plan.toml"
    plan_path.write_text(core_plan_text(
        lab, NODES, certificate={"common_name": "registry.cri.internal", "directory": "certs"},
        registry={"port": PORT, "container_name": CONTAINER,
                  "data_dir": "/registry-image/cri-lab", "certs_dir": "/etc/docker/cri-lab-certs",
                  "auth": "none"}))
    result = Setup(lab, plan_path)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REGWIZ_SUDO_PASSWORD", OPS_PASSWORD)
        reset_node_trust(lab, result.registry)
        try:
            assert main(["certs", "--plan", str(plan_path)]) == 0
            assert result.cli("deploy") == 0
            assert result.cli("onboard") == 0
            yield result
        finally:
            result.cli("uninstall", "--purge", "--yes")
            reset_node_trust(lab, result.registry)


# --------------------------------------------------------------------------- helpers


def set_containerd_config(host: LabHost, config: str, drop_ins: dict[str, str]) -> None:
    """Give bare this config.toml and these drop-in files, and restart its containerd."""
    host.exec(["rm", "-rf", DROP_IN_DIR])
    for name, text in drop_ins.items():
        path = host.host_path(f"{DROP_IN_DIR}/{name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    host.host_path(CONTAINERD_CONFIG).write_text(config)
    host.stop_daemon("containerd")
    host.start_daemon("containerd")


def restore_bare(setup: Setup, onboarded: str) -> None:
    bare = setup.lab["bare"]
    bare.exec(["rm", "-rf", DROP_IN_DIR, ELSEWHERE])
    set_containerd_config(bare, onboarded, {})
    for backup in bare.host_path("/etc/containerd").glob("config.toml.regwiz-backup-*"):
        backup.unlink()


def running_config_path(host: LabHost) -> str:
    """config_path as the running containerd's own dump shows it."""
    dump = host.exec(["containerd", "config", "dump"]).stdout.decode()
    return ":".join(parse_containerd_config(dump).hosts_dirs)


def todays_actions(config_text: str, registry_plan: Plan) -> list[object]:
    """What onboarding decided before issue 13, reading config.toml alone (no dump)."""
    facts = facts_from_probe(ProbeResult(sockets={"/run/containerd/containerd.sock"},
                                         values={"containerd.version": "containerd 1.6.20"}))
    remember_config(facts, config_text)  # no dump: config.toml alone, as before
    ca = (registry_plan.cert_dir / "ca.crt").read_bytes()
    return list(ContainerdAdapter().trust_actions("containerd", facts,
                                                  registry_plan.registry_address, ca))


def drop_in(config_path: str) -> str:
    return f'version = 2\n{REGISTRY_TABLE}  config_path = "{config_path}"\n'


# --------------------------------------------------------------------------- the tests


def test_each_lab_containerd_serves_the_cri_on_its_own_socket(setup: Setup) -> None:
    """regwiz's own gRPC client against containerd's real CRI plugin, from this machine."""
    seen = set()
    for name in NODES:
        path = setup.lab[name].containerd_socket
        assert path is not None
        unix = socket.socket(socket.AF_UNIX)
        unix.connect(str(path))
        with GrpcConnection(unix) as connection:
            client = ImageServiceClient(connection)
            version = client.version()
            assert (version.api, version.runtime_name) == ("runtime.v1", "containerd")
            assert client.status(f"{setup.registry}/regwiz/none:1") is None
        seen.add(path)
    assert len(seen) == len(NODES)  # one socket per host


def test_the_relay_also_runs_for_a_node_that_is_this_machine(setup: Setup) -> None:
    """LocalTransport: the same relay as a local process, to bare's real socket; a missing
    socket is named, not a bare "connection closed"."""
    from app.cri.grpc_stream import GrpcError
    from app.cri.relay import open_cri
    from app.transport.local import LocalTransport

    path = setup.lab["bare"].containerd_socket
    with open_cri(LocalTransport(), str(path), sudo=False) as connection:
        assert ImageServiceClient(connection).version().runtime_name == "containerd"
    with pytest.raises(GrpcError) as info, open_cri(LocalTransport(), "/nonexistent-cri.sock",
                                                    sudo=False) as connection:
        ImageServiceClient(connection).version()
    assert info.value.kind == "unreachable"
    assert info.value.message.startswith("no CRI socket at /nonexistent-cri.sock")


def test_verify_proves_each_containerd_node_through_the_cri_and_names_the_path(
        setup: Setup) -> None:
    report = setup.verify()
    assert report.ok, report.to_dict()
    for name in NODES:
        checks = setup.node(report, name).checks
        assert [c.kind for c in checks] == [CRI_KIND, SANDBOX_KIND]
        assert checks[0].digest == report.push_pull.pushed_digest
        assert "sudo relay to /run/containerd/containerd.sock" in checks[0].command
        assert "without a credential" in checks[0].detail  # auth is off: the kubelet has none
        # the air-gapped lab cannot pull the default pause image: reported, not failed
        sandbox = checks[1]
        assert sandbox.passed and sandbox.hint
        assert sandbox.detail.startswith(f"{PAUSE} is not on the node and cannot be pulled")
    listed = setup.lab["bare"].exec(["ctr", "-n", "k8s.io", "images", "ls", "-q"]).stdout
    assert b"selftest" not in listed  # RemoveImage cleaned up
    # a root login reaches the socket with the relay alone, no sudo
    plan = setup.plan
    plan.nodes = [NodeSettings(host=setup.ip("bare"), ssh_user="root")]
    as_root = setup.verify(plan)
    assert as_root.ok, as_root.to_dict()
    command = as_root.nodes[0].checks[0].command
    assert command.endswith("over relay to /run/containerd/containerd.sock "
                            "(python3, socat or nc -U)"), command


def test_a_drop_in_pointing_config_path_elsewhere_fails_the_cri_path_only(
        setup: Setup) -> None:
    """config.toml names certs.d, an imported drop-in points containerd elsewhere: ctr
    --hosts-dir (today's check) still pulls, the kubelet's CRI pulls do not."""
    bare = setup.lab["bare"]
    onboarded = bare.host_path(CONTAINERD_CONFIG).read_text()
    reference = f"{setup.registry}/regwiz/selftest:check"  # verify's reused tag stays
    set_containerd_config(bare, IMPORTS + onboarded, {"90-elsewhere.toml": drop_in(ELSEWHERE)})
    try:
        assert running_config_path(bare) == ELSEWHERE
        # today's check: config.toml alone names certs.d, and ctr with that dir pulls fine
        assert parse_containerd_config(bare.host_path(CONTAINERD_CONFIG).read_text()
                                       ).hosts_dirs == ["/etc/containerd/certs.d"]
        ctr = bare.exec(["ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir",
                         "/etc/containerd/certs.d", reference], check=False, timeout=120)
        assert ctr.returncode == 0, ctr.stderr
        bare.exec(["ctr", "-n", "k8s.io", "images", "rm", reference], check=False)
        report = setup.verify()
        status = collect_status(setup.plan, Secrets(sudo_password=OPS_PASSWORD),
                                host_key_policy=setup.policy())
    finally:
        restore_bare(setup, onboarded)
    assert {n.host: n.state for n in report.nodes} == {
        setup.ip("containerd"): CheckState.PASSED, setup.ip("bare"): CheckState.FAILED}
    checks = {c.kind: c for c in setup.node(report, "bare").checks}
    assert not checks[CRI_KIND].passed
    assert "x509" in checks[CRI_KIND].detail, checks[CRI_KIND].detail
    config = checks["containerd configuration"]
    assert ELSEWHERE in config.detail and "/etc/containerd/certs.d" in config.detail
    assert "config dump" in config.detail
    nodes = {n.host: n for n in status.nodes or []}
    assert nodes[setup.ip("bare")].state is TrustState.MISMATCH
    assert nodes[setup.ip("containerd")].state is TrustState.MATCH
    reason = [f.detail for f in nodes[setup.ip("bare")].files
              if f.state is TrustState.MISMATCH]
    assert reason == [f"containerd reads {ELSEWHERE}, not /etc/containerd/certs.d where "
                      "regwiz wrote hosts.toml"], reason


def test_config_path_only_in_an_imported_drop_in_counts_as_configured(setup: Setup) -> None:
    bare = setup.lab["bare"]
    onboarded = bare.host_path(CONTAINERD_CONFIG).read_text()
    config = IMPORTS + CONTAINERD_CONFIG_BASE  # config.toml itself sets no config_path
    # the drop-in also points the sandbox image at the private registry (any image will do)
    sandbox = f"{setup.registry}/regwiz/selftest:check"
    cri_table = '[plugins."io.containerd.grpc.v1.cri"]\n'
    settings = (f'version = 2\n{cri_table}  sandbox_image = "{sandbox}"\n{REGISTRY_TABLE}'
                '  config_path = "/etc/containerd/certs.d"\n')
    set_containerd_config(bare, config, {"10-registry.toml": settings})
    bare.exec(["rm", "-rf", f"/etc/containerd/certs.d/{setup.registry}"])
    try:
        # before issue 13: config.toml alone has no config_path, so onboarding added a second
        # one and restarted containerd
        before = todays_actions(config, setup.plan)
        assert any(isinstance(a, CommandAction) for a in before)
        assert any(isinstance(a, FileAction) and a.path == CONTAINERD_CONFIG for a in before)
        pid = bare.daemon_pid("containerd")
        assert setup.cli("onboard", "--only", setup.ip("bare")) == 0
        assert bare.daemon_pid("containerd") == pid  # not restarted
        assert bare.host_path(CONTAINERD_CONFIG).read_text() == config  # no duplicate setting
        assert bare.host_path(f"/etc/containerd/certs.d/{setup.registry}/hosts.toml").exists()
        report = setup.verify()
        assert report.ok, report.to_dict()
        checks = setup.node(report, "bare").checks
        assert [c.kind for c in checks] == [CRI_KIND, SANDBOX_KIND]
        # the sandbox image the running configuration names, found by the dump, pulls
        assert checks[1].detail == f"{sandbox} was not on the node; it pulls (removed again)"
        assert checks[1].hint is None
    finally:
        restore_bare(setup, onboarded)


def test_config_path_in_a_file_containerd_never_loads_is_found_and_fixed(setup: Setup) -> None:
    """The setting sits in conf.d/10-registry.conf, which the imports glob (*.toml) never
    loads: status reports it, onboarding sets config_path where containerd reads it."""
    bare = setup.lab["bare"]
    onboarded = bare.host_path(CONTAINERD_CONFIG).read_text()
    config = IMPORTS + CONTAINERD_CONFIG_BASE
    set_containerd_config(bare, config, {"10-registry.conf": drop_in("/etc/containerd/certs.d")})
    try:
        assert running_config_path(bare) == ""
        status = collect_status(setup.plan, Secrets(sudo_password=OPS_PASSWORD),
                                host_key_policy=setup.policy())
        node = next(n for n in status.nodes or [] if n.host == setup.ip("bare"))
        assert node.state is TrustState.MISSING
        assert any("config_path" in f.detail for f in node.files), node.files
        # before issue 13, reading config.toml alone, onboarding decided the same here: this
        # case it got right (it did not read drop-ins at all)
        assert any(isinstance(a, CommandAction) for a in todays_actions(config, setup.plan))
        pid = bare.daemon_pid("containerd")
        assert setup.cli("onboard", "--only", setup.ip("bare")) == 0
        assert bare.daemon_pid("containerd") != pid  # restarted once, for config_path
        assert running_config_path(bare) == "/etc/containerd/certs.d"
        report = setup.verify()
        assert report.ok, report.to_dict()
        assert [c.kind for c in setup.node(report, "bare").checks] == [CRI_KIND, SANDBOX_KIND]
        again = setup.cli("onboard", "--only", setup.ip("bare"))
        assert again == 0 and bare.daemon_pid("containerd") is not None
    finally:
        restore_bare(setup, onboarded)


def test_config_path_in_a_config_toml_containerd_was_not_started_with_is_found_and_fixed(
        setup: Setup) -> None:
    """containerd runs with --config /etc/containerd/lab-real.toml (no config_path), while
    /etc/containerd/config.toml, never loaded, sets config_path. Before issue 13 regwiz read
    config.toml alone: it saw config_path and changed nothing, status said match, and ctr
    --hosts-dir pulled; the kubelet's pulls failed. Now the running daemon's file decides."""
    bare = setup.lab["bare"]
    onboarded = bare.host_path(CONTAINERD_CONFIG).read_text()
    assert 'config_path = "/etc/containerd/certs.d"' in onboarded
    real = "/etc/containerd/lab-real.toml"
    bare.host_path(real).write_text(CONTAINERD_CONFIG_BASE)
    bare.host_path("/etc/containerd/.lab-config-file").write_text(real)
    bare.stop_daemon("containerd")
    bare.start_daemon("containerd")
    try:
        assert "--config /etc/containerd/lab-real.toml" in bare.exec(
            ["ps", "-o", "args=", "-p", str(bare.daemon_pid("containerd"))]).stdout.decode()
        # today's reading of config.toml alone: configured, nothing to do
        before = todays_actions(onboarded, setup.plan)
        assert not any(isinstance(a, CommandAction) for a in before)
        status = collect_status(setup.plan, Secrets(sudo_password=OPS_PASSWORD),
                                host_key_policy=setup.policy())
        node = next(n for n in status.nodes or [] if n.host == setup.ip("bare"))
        assert node.state is TrustState.MISSING
        assert [f.path for f in node.files if f.state is TrustState.MISSING] == [real]
        broken = setup.verify()
        checks = {c.kind: c for c in setup.node(broken, "bare").checks}
        assert not checks[CRI_KIND].passed and "x509" in checks[CRI_KIND].detail
        assert real in checks["containerd configuration"].detail
        pid = bare.daemon_pid("containerd")
        assert setup.cli("onboard", "--only", setup.ip("bare")) == 0
        assert bare.daemon_pid("containerd") != pid  # restarted once
        assert 'config_path = "/etc/containerd/certs.d"' in bare.host_path(real).read_text()
        assert bare.host_path(CONTAINERD_CONFIG).read_text() == onboarded  # left alone
        report = setup.verify()
        assert report.ok, report.to_dict()
    finally:
        bare.exec(["rm", "-f", real, "/etc/containerd/.lab-config-file"])
        for backup in bare.host_path("/etc/containerd").glob("lab-real.toml.regwiz-backup-*"):
            backup.unlink()
        restore_bare(setup, onboarded)


def test_a_node_whose_cri_cannot_be_reached_falls_back_and_says_what_was_not_proven(
        setup: Setup) -> None:
    """containerd stopped on bare: no CRI socket to reach. verify falls back to today's ctr
    pull, whose check names why the CRI path was not proven (the pull fails here too)."""
    bare = setup.lab["bare"]
    bare.stop_daemon("containerd")
    try:
        report = setup.verify()
    finally:
        bare.start_daemon("containerd")
    assert setup.node(report, "containerd").passed
    node = setup.node(report, "bare")
    assert node.state is CheckState.FAILED
    kind = node.checks[0].kind
    assert kind.startswith("containerd pull (ctr --hosts-dir /etc/containerd/certs.d) "
                           "(CRI not reachable: "), kind
    assert "/run/containerd/containerd.sock" in kind
    assert [c.kind for c in node.checks] == [kind]  # no CRI check claims anything
