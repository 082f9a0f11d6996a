"""Issue 12 item 6: a host key of another type, on the lab's real sshd.

known_hosts lists a node's ed25519 key; the node's sshd now presents only an ECDSA key (what an
attacker who cannot present the known key would do). Before the fix this was a plain unknown
key, silently added under ``--accept-new-host-keys``. Now it is refused, naming the known
ed25519 fingerprint, and known_hosts is left as it was; the wizard's policy asks with that
warning and only a yes accepts it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import onboard
from app.cli import main
from app.connections import host_key_policy
from app.plan import Secrets
from app.transport.base import ConnectionSecrets, ConnectionSettings, TransportError
from app.transport.ssh import connect
from tests.faults.conftest import NodeFiles, private_known_hosts
from tests.lab.lab import DEPLOY_USER, Lab, LabHost
from tests.lab.plans import node_plan


@pytest.fixture
def ecdsa_only_node(lab: Lab) -> Iterator[tuple[LabHost, str]]:
    """An sshd node presenting only an ECDSA host key; yields it and its known ed25519
    fingerprint. The lab's config and key come back afterwards."""
    node = lab.sshd_nodes(2)[1]
    known = node.host_key_fingerprint()
    sshd = node.state_dir / "sshd"
    ecdsa = sshd / "ssh_host_ecdsa_key"
    for stale in (ecdsa, Path(f"{ecdsa}.pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(ecdsa)], check=True)
    config = sshd / "sshd_config"
    original = config.read_text()
    config.write_text(original.replace(str(node.host_key_path), str(ecdsa)))
    node.stop_sshd()
    node.start_sshd()
    try:
        yield node, known
    finally:
        config.write_text(original)
        node.stop_sshd()
        node.start_sshd()


def _settings(lab: Lab, node: LabHost) -> ConnectionSettings:
    return ConnectionSettings(host=node.ip, user=DEPLOY_USER, identity_file=str(lab.key_path),
                              ssh_config="")


def test_new_key_type_is_refused_under_accept_new_naming_the_known_key(
    lab: Lab, ecdsa_only_node: tuple[LabHost, str], tmp_path: Path
) -> None:
    node, known = ecdsa_only_node
    known_hosts = private_known_hosts(lab, tmp_path)
    before = known_hosts.read_text()
    policy = host_key_policy(True, known_hosts=known_hosts)
    with pytest.raises(TransportError) as caught:
        connect(_settings(lab, node), ConnectionSecrets(), policy).close()
    assert caught.value.kind == "host-key-changed"
    assert known in caught.value.message and "ssh-ed25519" in caught.value.message
    assert "ecdsa" in caught.value.message
    assert known_hosts.read_text() == before, "the new key type was saved"


def test_onboard_cli_with_accept_new_refuses_the_node(
    lab: Lab, ecdsa_only_node: tuple[LabHost, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node, known = ecdsa_only_node
    known_hosts = private_known_hosts(lab, tmp_path)
    plan = node_plan(tmp_path, lab, [node], port=31743)
    files = NodeFiles(plan.registry_reference)
    try:
        assert plan.path is not None
        code = main(["onboard", "--plan", str(plan.path), "--known-hosts", str(known_hosts),
                     "--accept-new-host-keys"])
        output = capsys.readouterr()
        assert code == 1
        assert known in output.out + output.err
        assert not node.host_path(f"{files.docker_dir}/ca.crt").exists()
    finally:
        files.remove([node])


def test_wizard_policy_asks_with_the_known_keys_and_only_yes_accepts(
    lab: Lab, ecdsa_only_node: tuple[LabHost, str], tmp_path: Path
) -> None:
    node, known = ecdsa_only_node
    known_hosts = private_known_hosts(lab, tmp_path)
    asked: list[tuple[str, ...]] = []

    def answer(value: bool):  # type: ignore[no-untyped-def]
        def confirm(host: str, key_type: str, fingerprint: str,
                    known_keys: tuple[str, ...]) -> bool:
            asked.append(known_keys)
            return value
        return confirm

    refuse = host_key_policy(False, known_hosts=known_hosts, confirm=lambda *a: True,
                             confirm_other_type=answer(False))
    with pytest.raises(TransportError) as caught:
        connect(_settings(lab, node), ConnectionSecrets(), refuse).close()
    assert caught.value.kind == "host-key-unknown" and "not accepted" in caught.value.message
    assert asked == [(f"ssh-ed25519 {known}",)]
    accept = host_key_policy(False, known_hosts=known_hosts, confirm_other_type=answer(True))
    with connect(_settings(lab, node), ConnectionSecrets(), accept) as transport:
        assert transport.run(["true"]).ok
    assert "ecdsa-sha2-nistp256" in known_hosts.read_text()
    report = onboard.onboard_nodes(
        node_plan(tmp_path / "p", lab, [node], port=31744), Secrets(),
        host_key_policy=host_key_policy(False, known_hosts=known_hosts), dry_run=True,
        timeout=60)
    assert report.results[0].status.value != "failed"  # now known: no question, no refusal
