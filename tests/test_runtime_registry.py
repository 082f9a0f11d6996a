"""Adding a runtime is one adapter plus one registration: onboard, status and verify pick it up
without any change to them. A throwaway runtime "toyrt" (found by a fake probe fact, trusting
one CA file) goes through each of them here, on a fake node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app import onboard, status, validate, verify
from app.address import RegistryAddress
from app.credential_files import RegistryCredential, credential_path, write_credential
from app.node_credentials import PULL_ACCOUNT, pull_credential
from app.plan import Plan, ResolvedNode, Secrets
from app.runtimes import registry
from app.runtimes.base import FileAction, NodeAction, NodeCheckSpec, RuntimeAdapter
from app.runtimes.credentials import FORMAT_DOCKER_CONFIG, CredentialLocation
from app.runtimes.probe import NodeFacts, probe_node
from app.selftest_image import build_selftest_image
from tests.test_onboard_fakes import FakeFleet, FakeNode, plan_with_ca

TOY_PROBE = "bin.toyrtd=/usr/bin/toyrtd\n"


def toy_ca_path(address: RegistryAddress) -> str:
    return f"/etc/toyrt/certs/{address.certs_d_name}/ca.crt"


class ToyAdapter(RuntimeAdapter):
    names = ("toyrt",)
    plan_names = ("toyrt",)
    probe_binaries = ("toyrtd",)

    def detect(self, facts: NodeFacts) -> list[str]:
        return ["toyrt"] if "toyrtd" in facts.probe.binaries else []

    def trust_actions(self, name: str, facts: NodeFacts, address: RegistryAddress,
                      ca_pem: bytes) -> list[NodeAction]:
        return [FileAction(toy_ca_path(address), ca_pem, name, "install the CA for toyrt",
                           "toyrt reads it on every pull")]

    def ca_paths(self, name: str, facts: NodeFacts, address: RegistryAddress) -> list[str]:
        return [toy_ca_path(address)]

    def pull_check(self, name: str, facts: NodeFacts, reference: str, *, sudo: bool,
                   helpers: frozenset[str], image_id: str | None) -> NodeCheckSpec | None:
        return NodeCheckSpec("toyrt pull", ["toyrt", "pull", reference], sudo)


@pytest.fixture
def toy() -> Iterator[ToyAdapter]:
    adapter = ToyAdapter()
    registry.register(adapter)
    try:
        yield adapter
    finally:
        registry.unregister(adapter)
    assert "toyrt" not in registry.known_runtimes()


def toy_node(name: str = "toy-node") -> FakeNode:
    return FakeNode(name, TOY_PROBE)


def resolved(host: str) -> ResolvedNode:
    return ResolvedNode(host=host, ssh_user="root", ssh_port=22, sudo=False, runtime="auto",
                        os_trust_store=False, identity_file=None)


def connect_to(monkeypatch: pytest.MonkeyPatch, node: FakeNode) -> None:
    """status and verify open nodes through app.connections: hand them the fake node."""
    import app.connections

    monkeypatch.setattr(app.connections, "open_node_transport",
                        lambda *_args, **_kwargs: node)


def test_the_registry_knows_the_new_runtime(toy: ToyAdapter) -> None:
    assert registry.adapter_for("toyrt") is toy
    assert "toyrt" in registry.plan_runtimes()
    # The OS trust store stays last: a registered runtime comes before it.
    assert registry.adapters()[-2:] == (toy, *registry.system_stores())
    with pytest.raises(ValueError, match="already registered"):
        registry.register(ToyAdapter())


def test_builtin_plan_runtimes_come_from_the_registry() -> None:
    assert ("auto", *registry.plan_runtimes(), "none") == validate.RUNTIMES
    assert validate.RUNTIMES == ("auto", "docker", "containerd", "cri-o", "k3s", "rke2", "none")


def test_probe_and_onboard_planning_use_it(toy: ToyAdapter) -> None:
    facts = probe_node(toy_node(), sudo=False, runtime="auto")
    assert (facts.detected, facts.runtimes) == (["toyrt"], ["toyrt"])
    address = RegistryAddress("198.18.9.2", 8443)
    actions = onboard.plan_node_actions(facts, address=address, ca_pem=b"PEM",
                                        os_trust_store=False)
    assert actions == [FileAction("/etc/toyrt/certs/198.18.9.2:8443/ca.crt", b"PEM", "toyrt",
                                  "install the CA for toyrt", "toyrt reads it on every pull")]


def test_onboard_writes_its_file(toy: ToyAdapter, tmp_path: Path) -> None:
    node = toy_node()
    plan = plan_with_ca(tmp_path, [node.name])
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                   connect=FakeFleet({node.name: node}), save=False)
    result = report.results[0]
    assert (result.status, result.runtimes) == (onboard.NodeState.CHANGED, ["toyrt"])
    assert result.changed_files == ["/etc/toyrt/certs/198.18.9.2:8443/ca.crt"]
    assert node.files[result.changed_files[0]] == (plan.cert_dir / "ca.crt").read_bytes()


def test_status_checks_its_ca_path(toy: ToyAdapter, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_with_ca(tmp_path, ["toy-node"])
    ca = status.certificate_status_from_file(plan.cert_dir / "ca.crt", "ca.crt")
    node = toy_node()
    connect_to(monkeypatch, node)
    missing = status.node_trust_status(plan, Secrets(), None, resolved(node.name),
                                       (ca.fingerprint,))
    assert missing.state is status.TrustState.MISSING
    assert [(f.runtime, f.path) for f in missing.files] == [
        ("toyrt", "/etc/toyrt/certs/198.18.9.2:8443/ca.crt")]
    node.files["/etc/toyrt/certs/198.18.9.2:8443/ca.crt"] = (plan.cert_dir / "ca.crt").read_bytes()
    trusted = status.node_trust_status(plan, Secrets(), None, resolved(node.name),
                                       (ca.fingerprint,))
    assert trusted.state is status.TrustState.MATCH and trusted.runtimes == ["toyrt"]


def test_verify_pulls_with_it(toy: ToyAdapter, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    plan: Plan = plan_with_ca(tmp_path, ["toy-node"])
    image = build_selftest_image(plan.registry_reference, tag="t")
    node = toy_node()
    pulls: list[list[str]] = []

    def record(argv: list[str]) -> None:
        if argv[:2] == ["toyrt", "pull"]:
            pulls.append(argv)

    node.on_command = record
    connect_to(monkeypatch, node)
    job = verify._NodeJob(plan, Secrets(), None, image, None, None, lambda _event: None,
                          lambda: False)
    result = verify.NodeVerifyResult(node.name)
    verify._verify_node(job, resolved(node.name), result)
    assert result.runtimes == ["toyrt"]
    assert [(c.kind, c.passed) for c in result.checks] == [("toyrt pull", True)]
    assert pulls == [["toyrt", "pull", image.reference]]



class ToyWithCredentials(ToyAdapter):
    """The toy runtime, also reading the pull credential from a Docker-format file of its own."""

    def credential_locations(self, name: str, facts: NodeFacts) -> list[CredentialLocation]:
        return [CredentialLocation("/etc/toyrt/auth.json", FORMAT_DOCKER_CONFIG, "toyrt")]


def test_its_credential_file_goes_through_onboard_and_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = ToyWithCredentials()
    registry.register(adapter)
    try:
        node = toy_node()
        plan = plan_with_ca(tmp_path, [node.name])
        plan.registry.auth = "htpasswd"
        write_credential(credential_path(plan, PULL_ACCOUNT),
                         RegistryCredential(plan.registry_reference, PULL_ACCOUNT, "pw"))
        report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                       connect=FakeFleet({node.name: node}), save=False)
        assert "/etc/toyrt/auth.json" in report.results[0].changed_files
        connect_to(monkeypatch, node)
        wanted = pull_credential(plan)
        checked = status.node_trust_status(plan, Secrets(), None, resolved(node.name), (),
                                           wanted)
        assert {(f.reader, f.state) for f in checked.credential_files} == {
            ("toyrt", status.CredentialState.CURRENT),
            ("kubelet", status.CredentialState.CURRENT)}
    finally:
        registry.unregister(adapter)
