"""CA rotation with nodes pulling throughout (issue 15, part 4) on the lab: a registry deployed by
regwiz, a containerd node (pulling through its real CRI, as verify and the kubelet do) and a
Docker node, onboarded; an image pushed. ``regwiz rotate-ca`` then adds the new CA beside the old
(every node's CA file holds both), switches the registry to a certificate from the new CA, and
finishes (every node holds the new CA alone). Both nodes pull the image before, after add, after
switch and after finish. The CA key is passphrase-encrypted throughout.

The first run is made to fail in the finish phase (the Docker node's sshd is down): it stops
naming the phase and the node, every node still pulls, and ``regwiz rotate-ca`` resumes there.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app import ca_rotation
from app.certs import certificate_signed_by, inspect_certificate
from app.cli import main
from app.connections import host_key_policy, open_registry_transport
from app.cri.pull import cri_pull
from app.plan import Plan, Secrets, load_plan
from app.selftest_image import build_selftest_image
from app.status import TrustState, collect_status, pem_fingerprints
from app.transport.local import LocalTransport
from tests.lab.lab import OPS_PASSWORD, REGISTRY_IMAGE, Lab
from tests.lab.plans import core_plan_text
from tests.lab.status_actions import run_status_action
from tests.lab.test_private_lab import Private, private_registry
from tests.lab.trust import reset_node_trust

pytestmark = pytest.mark.lab

PORT = 8593
CONTAINER = "rotation-lab-registry"
NODES = ("containerd", "docker")
PASSPHRASE = "rotation-lab-passphrase"  # noqa: S105 - the lab's own CA key passphrase


@dataclass
class Setup:
    lab: Lab
    plan_path: Path
    image: str = ""
    digest: str = ""
    seen: list[str] = field(default_factory=list)  # what the checks between phases saw

    @property
    def plan(self) -> Plan:
        return load_plan(self.plan_path)

    @property
    def registry(self) -> str:
        return self.plan.registry_reference

    @property
    def certs(self) -> Path:
        return self.plan.cert_dir

    def cli(self, command: str, *extra: str) -> int:
        return main([command, "--plan", str(self.plan_path), "--known-hosts",
                     str(self.lab.known_hosts), *extra])

    def secrets(self) -> Secrets:
        return Secrets(sudo_password=OPS_PASSWORD, ca_key_passphrase=PASSPHRASE)

    def policy(self):  # type: ignore[no-untyped-def]
        return host_key_policy(False, known_hosts=self.lab.known_hosts)

    def node_ca_file(self, name: str) -> Path:
        tool = "containerd" if name == "containerd" else "docker"
        return self.lab[name].host_path(f"/etc/{tool}/certs.d/{self.registry}/ca.crt")

    def node_cas(self, name: str) -> list[str]:
        return pem_fingerprints(self.node_ca_file(name).read_bytes())

    def pull_everywhere(self) -> None:
        """The image pulls on both nodes by their runtimes, with the digest pushed."""
        socket = self.lab["containerd"].containerd_socket
        assert socket is not None
        result = cri_pull(LocalTransport(), str(socket), self.image, None, sudo=False,
                          timeout=120)
        assert result.digest == self.digest
        docker = self.lab["docker"]
        pulled = docker.exec(["docker", "pull", self.image], timeout=120, check=False)
        assert pulled.returncode == 0, pulled.stderr.decode(errors="replace")
        docker.exec(["docker", "image", "rm", self.image], check=False)

    def trust_states(self) -> dict[str, TrustState]:
        report = collect_status(self.plan, self.secrets(), host_key_policy=self.policy())
        return {node.host: node.state for node in report.nodes or []}


@pytest.fixture(scope="module")
def setup(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("rotation")
    plan_path = folder / "plan.toml"
    plan_path.write_text(core_plan_text(
        lab, NODES,
        certificate={"common_name": "registry.rotation.internal", "directory": "certs"},
        registry={"port": PORT, "image": REGISTRY_IMAGE, "container_name": CONTAINER,
                  "data_dir": "/registry-image/rotation-lab",
                  "certs_dir": "/etc/docker/rotation-lab-certs", "auth": "none"}))
    result = Setup(lab, plan_path)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REGWIZ_SUDO_PASSWORD", OPS_PASSWORD)
        env.setenv("REGWIZ_CA_KEY_PASSPHRASE", PASSPHRASE)
        reset_node_trust(lab, result.registry)
        try:
            assert main(["certs", "--plan", str(plan_path)]) == 0
            assert result.cli("deploy") == 0
            assert result.cli("onboard") == 0
            result.image, result.digest = _push_image(result, folder)
            yield result
        finally:
            lab["docker"].start_sshd()
            result.cli("uninstall", "--purge", "--yes")
            reset_node_trust(lab, result.registry)


def _push_image(setup: Setup, folder: Path) -> tuple[str, str]:
    """The self-test image pushed with skopeo (trusting ca.crt alone); (reference, digest)."""
    image = build_selftest_image(setup.registry)
    archive = folder / "image.tar"
    archive.write_bytes(image.archive)
    certs = folder / "skopeo-certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes((setup.certs / "ca.crt").read_bytes())
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-cert-dir", str(certs),
                    f"docker-archive:{archive}", f"docker://{image.reference}"],
                   check=True, timeout=120, capture_output=True)
    inspected = subprocess.run(["skopeo", "inspect", "--cert-dir", str(certs),
                                "--format", "{{.Digest}}", f"docker://{image.reference}"],
                               check=True, timeout=120, capture_output=True, text=True)
    return image.reference, inspected.stdout.strip()


def _check_between_phases(setup: Setup, event: ca_rotation.RotationEvent) -> None:
    """After add and after switch: both CAs on every node, which pulls, and status agrees."""
    if event.started or event.text != "done" or event.phase == "finish":
        return
    for name in NODES:
        assert len(setup.node_cas(name)) == 2, (event.phase, name)
    setup.pull_everywhere()
    assert set(setup.trust_states().values()) == {TrustState.MATCH}, event.phase
    if event.phase == "switch":
        # the registry now serves a certificate from the new CA, the old CA still is ca.crt
        assert certificate_signed_by(setup.certs / "tls.crt", setup.certs / "ca-next.crt")
        assert not certificate_signed_by(setup.certs / "tls.crt", setup.certs / "ca.crt")
        assert setup.cli("verify") == 0  # push from the registry host, pull on every node
        setup.lab["docker"].stop_sshd()  # the finish cannot reach it: the run must stop there
    setup.seen.append(event.phase)


def test_rotation_keeps_every_node_pulling_and_resumes_after_a_failed_phase(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    old_ca = inspect_certificate(setup.certs / "ca.crt").fingerprint
    for name in NODES:
        assert setup.node_cas(name) == [old_ca]
    setup.pull_everywhere()
    assert b"ENCRYPTED" in (setup.certs / "ca.key").read_bytes()

    plan, secrets, policy = setup.plan, setup.secrets(), setup.policy()
    job = ca_rotation.RotationJob(
        plan, secrets, policy, lambda: open_registry_transport(plan, secrets, policy),
        on_event=lambda event: _check_between_phases(setup, event))
    try:
        report = ca_rotation.rotate_ca(job)
    finally:
        setup.lab["docker"].start_sshd()
    assert setup.seen == ["add", "switch"]
    assert report.failed_phase == "finish", report.lines()
    assert setup.lab["docker"].ip in (report.error or "")
    assert "resume at phase finish" in "\n".join(report.lines())
    # the containerd node already holds the new CA alone, the Docker node still both: all pull
    new_ca = inspect_certificate(setup.certs / "ca.crt").fingerprint
    assert new_ca != old_ca
    assert setup.node_cas("containerd") == [new_ca]
    assert setup.node_cas("docker") == [old_ca, new_ca]
    setup.pull_everywhere()
    assert ca_rotation.load_state(setup.plan) is not None

    capsys.readouterr()
    assert setup.cli("rotate-ca", "--yes") == 0
    out = capsys.readouterr().out
    assert "resumed at phase finish" in out and "CA rotated" in out, out
    for name in NODES:
        assert setup.node_cas(name) == [new_ca], name
    setup.pull_everywhere()
    assert set(setup.trust_states().values()) == {TrustState.MATCH}
    # the old CA is kept, dated; the new key is encrypted like the old one; nothing left over
    backups = sorted(p.name for p in setup.certs.glob("ca.*.old-*"))
    assert [name.split(".old-")[0] for name in backups] == ["ca.crt", "ca.key"], backups
    assert inspect_certificate(next(setup.certs.glob("ca.crt.old-*"))).fingerprint == old_ca
    assert b"ENCRYPTED" in (setup.certs / "ca.key").read_bytes()
    leftovers = [p.name for p in setup.certs.iterdir()
                 if p.name.startswith(("ca-next", "ca-bundle", "ca-rotation"))]
    assert leftovers == []
    assert certificate_signed_by(setup.certs / "tls.crt", setup.certs / "ca.crt")
    # the registry host's own Docker trusts the new CA alone, too
    registry_host = setup.lab["registry"].host_path(f"/etc/docker/certs.d/{setup.registry}/ca.crt")
    assert pem_fingerprints(registry_host.read_bytes()) == [new_ca]
    assert setup.cli("verify") == 0


@pytest.fixture
def deployed(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Private]:
    # the wizard below is given no passphrase: this registry's CA key is made without one
    monkeypatch.delenv("REGWIZ_CA_KEY_PASSPHRASE", raising=False)
    with private_registry(lab, tmp_path, "rwp-rotate-lab") as made:
        assert made.cli("deploy") == 0
        yield made


async def test_the_status_step_rotates_the_ca_after_a_confirmation(
        deployed: Private, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_ca = inspect_certificate(deployed.certs / "ca.crt").fingerprint
    text = await run_status_action(
        deployed, tmp_path / "data", monkeypatch, "#rotate-ca",
        lambda shown: "CA rotated" in shown or "✗" in shown)
    assert "✓ CA rotated" in text, text
    assert "phase 3/3" in text or "finish:" in text, text
    assert inspect_certificate(deployed.certs / "ca.crt").fingerprint != old_ca
    assert certificate_signed_by(deployed.certs / "tls.crt", deployed.certs / "ca.crt")
