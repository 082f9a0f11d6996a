"""Faults during node onboarding: sshd killed mid-transfer, a full disk, a changed host key.

Each case: the failed node's error names the host and the cause; the other nodes finish;
no partial file and no temp file is left on the failed node; a re-run once the fault is
gone succeeds.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app import onboard
from app.plan import Plan, ResolvedNode, Secrets
from app.transport.base import Transport
from tests.faults.conftest import (
    NodeFiles,
    install_temps,
    kill_sshd_mid_transfer,
    policy_for,
    private_known_hosts,
    staged_leftovers,
)
from tests.lab.lab import Lab, LabHost
from tests.lab.plans import node_plan


@pytest.fixture
def files(three_nodes: list[LabHost]) -> Iterator[NodeFiles]:
    made = NodeFiles("")
    yield made
    made.remove(three_nodes)


def _setup(lab: Lab, nodes: list[LabHost], tmp: Path, port: int,
           files: NodeFiles) -> tuple[Plan, Path, bytes]:
    plan = node_plan(tmp, lab, nodes, port=port)
    files.registry = plan.registry_reference
    files.remove(nodes)
    return plan, private_known_hosts(lab, tmp), (plan.cert_dir / "ca.crt").read_bytes()


def _run(plan: Plan, known_hosts: Path,
         connect: Callable[[ResolvedNode], Transport] | None = None) -> dict[str, Any]:
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=policy_for(known_hosts),
                                   connect=connect, timeout=120)
    return {r.host: r for r in report.results}


def _assert_no_leftovers(node: LabHost, files: NodeFiles, ca_pem: bytes) -> None:
    """Nothing partial or temporary in the target directories (the staging area in /tmp is
    checked separately by test_no_staged_upload_survives_a_killed_connection)."""
    assert install_temps(node, "/etc/docker") == []
    target = node.host_path(f"{files.docker_dir}/ca.crt")
    assert not target.exists() or target.read_bytes() == ca_pem, "a partial ca.crt was left"


# --------------------------------------------------------------------------- sshd killed


def _onboard_killing_sshd(lab: Lab, nodes: list[LabHost], tmp_path: Path, port: int,
                          files: NodeFiles) -> tuple[Plan, Path, bytes, dict[str, Any]]:
    plan, known_hosts, ca_pem = _setup(lab, nodes, tmp_path, port, files)
    with kill_sshd_mid_transfer(nodes[1], ca_pem, files.docker_dir) as kill:
        results = _run(plan, known_hosts)
    assert kill.fired, "the CA upload to the victim was never seen: the hook needs updating"
    assert kill.transfer_started, "sshd was killed before the upload began on the host"
    return plan, known_hosts, ca_pem, results


def _remove_staged(content: bytes) -> None:
    for staged in staged_leftovers(content):
        shutil.rmtree(staged.parent, ignore_errors=True)


def test_sshd_killed_in_the_middle_of_a_file_transfer(
    lab: Lab, three_nodes: list[LabHost], tmp_path: Path, files: NodeFiles
) -> None:
    plan, known_hosts, ca_pem, results = _onboard_killing_sshd(
        lab, three_nodes, tmp_path, 18601, files)
    _remove_staged(ca_pem)
    victim, others = three_nodes[1], [three_nodes[0], three_nodes[2]]
    failed = results[victim.ip]
    assert failed.status == "failed"
    assert victim.ip in failed.message
    assert failed.reason in ("unreachable", "transfer failed"), failed
    assert "bug" not in (failed.hint or ""), f"an unexpected exception escaped: {failed}"
    for node in others:
        assert results[node.ip].status == "changed"
        assert node.host_path(f"{files.docker_dir}/ca.crt").read_bytes() == ca_pem
    assert not victim.host_path(f"{files.docker_dir}/ca.crt").exists()
    _assert_no_leftovers(victim, files, ca_pem)

    again = _run(plan, known_hosts)
    assert again[victim.ip].status == "changed", again[victim.ip]
    assert {again[n.ip].status for n in others} == {"unchanged"}
    assert victim.host_path(f"{files.docker_dir}/ca.crt").read_bytes() == ca_pem
    _assert_no_leftovers(victim, files, ca_pem)


def test_no_staged_upload_survives_a_killed_connection(
    lab: Lab, three_nodes: list[LabHost], tmp_path: Path, files: NodeFiles
) -> None:
    """The transport stages every upload in /tmp/.regwiz-<random>/content before installing
    it; when the connection dies mid-upload, its cleanup (over the same, dead, SFTP channel)
    cannot run and the partial file stays. For deploy's tls.key that is private key material
    left outside certs_dir. Nothing later removes it: a second run stages under a new name."""
    _, known_hosts, ca_pem, _ = _onboard_killing_sshd(lab, three_nodes, tmp_path, 18604, files)
    try:
        _run(node_plan(tmp_path / "again", lab, three_nodes, port=18604), known_hosts)
        assert staged_leftovers(ca_pem) == [], "a staged upload of the CA was left in /tmp"
    finally:
        _remove_staged(ca_pem)


# --------------------------------------------------------------------------- disk full


def test_disk_full_on_one_node(
    lab: Lab, three_nodes: list[LabHost], tmp_path: Path, files: NodeFiles
) -> None:
    plan, known_hosts, ca_pem = _setup(lab, three_nodes, tmp_path, 18602, files)
    victim, others = three_nodes[0], three_nodes[1:]
    # A tiny tmpfs over /etc/docker in the victim's own mount namespace, then filled up.
    victim.exec(["mount", "-t", "tmpfs", "-o", "size=16k,mode=755", "regwiz-fault", "/etc/docker"])
    try:
        victim.exec(["dd", "if=/dev/zero", "of=/etc/docker/fill", "bs=4k"], check=False)
        results = _run(plan, known_hosts)
        failed = results[victim.ip]
        assert failed.status == "failed"
        assert failed.reason == "disk full", failed
        assert victim.ip in failed.message and "space" in failed.message
        assert {results[n.ip].status for n in others} == {"changed"}
        assert not victim.host_path(f"{files.docker_dir}/ca.crt").exists()
        _assert_no_leftovers(victim, files, ca_pem)

        victim.exec(["rm", "-f", "/etc/docker/fill"])
        again = _run(plan, known_hosts)
        assert again[victim.ip].status == "changed", again[victim.ip]
        assert {again[n.ip].status for n in others} == {"unchanged"}
        assert victim.exec(["cat", f"{files.docker_dir}/ca.crt"]).stdout == ca_pem
        _assert_no_leftovers(victim, files, ca_pem)
    finally:
        victim.exec(["umount", "/etc/docker"])
    assert victim.host_path("/etc/docker").is_dir()


# --------------------------------------------------------------------------- host key


def _fingerprint(public_key_file: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key_file)], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[1]


def test_host_key_changed_between_two_runs(
    lab: Lab, three_nodes: list[LabHost], tmp_path: Path, files: NodeFiles
) -> None:
    plan, known_hosts, ca_pem = _setup(lab, three_nodes, tmp_path, 18603, files)
    victim, others = three_nodes[2], three_nodes[:2]
    first = _run(plan, known_hosts)
    assert {r.status for r in first.values()} == {"changed"}
    shutil.rmtree(victim.host_path(files.docker_dir))  # so the next run has work to do there

    saved = tmp_path / "old-host-key"
    saved.mkdir()
    key = victim.host_key_path
    shutil.copy2(key, saved / "key")
    shutil.copy2(f"{key}.pub", saved / "key.pub")
    old_fp = _fingerprint(saved / "key.pub")
    try:
        new_fp = victim.replace_host_key()
        results = _run(plan, known_hosts)
        failed = results[victim.ip]
        assert failed.status == "failed" and failed.reason == "host key changed", failed
        assert victim.ip in failed.message
        assert old_fp in failed.message and new_fp in failed.message
        assert {results[n.ip].status for n in others} == {"unchanged"}
        assert not victim.host_path(files.docker_dir).exists()  # nothing written there
        _assert_no_leftovers(victim, files, ca_pem)

        # The operator checks the new key and replaces the old entry: the re-run succeeds.
        lines = [line for line in known_hosts.read_text().splitlines()
                 if not line.startswith(f"{victim.ip} ")]
        lines.append(f"{victim.ip} {victim.host_public_key()}")
        known_hosts.write_text("\n".join(lines) + "\n")
        again = _run(plan, known_hosts)
        assert again[victim.ip].status == "changed", again[victim.ip]
        assert {again[n.ip].status for n in others} == {"unchanged"}
        assert victim.host_path(f"{files.docker_dir}/ca.crt").read_bytes() == ca_pem
    finally:
        shutil.copy2(saved / "key", key)
        shutil.copy2(saved / "key.pub", f"{key}.pub")
        victim.exec(["/usr/local/sbin/rwlab-svc", "restart", "sshd"], timeout=90)
    assert victim.host_public_key() in lab.known_hosts.read_text()


# --------------------------------------------------------------------------- races


def test_two_runs_at_once_never_leave_a_mixed_file(
    lab: Lab, three_nodes: list[LabHost], tmp_path: Path, files: NodeFiles
) -> None:
    """Two operators onboard the same nodes at the same moment with different CAs for the
    same registry reference: each file ends up as one CA or the other, whole; no temp file."""
    plan_a, known_hosts, ca_a = _setup(lab, three_nodes, tmp_path / "a", 18606, files)
    plan_b = node_plan(tmp_path / "b", lab, three_nodes, port=18606)
    ca_b = (plan_b.cert_dir / "ca.crt").read_bytes()
    assert ca_a != ca_b
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = [pool.submit(_run, plan, known_hosts) for plan in (plan_a, plan_b)]
            outcomes = [run.result() for run in runs]
        for results in outcomes:
            assert {r.status for r in results.values()} <= {"changed", "unchanged"}
        for node in three_nodes:
            assert node.host_path(f"{files.docker_dir}/ca.crt").read_bytes() in (ca_a, ca_b)
            assert install_temps(node, "/etc/docker") == []


def test_cancel_in_the_middle_of_a_run(
    lab: Lab, three_nodes: list[LabHost], tmp_path: Path, files: NodeFiles
) -> None:
    """Cancelled after the first node finished (one worker): that node is done, the others
    are reported cancelled with nothing written; a re-run finishes them."""
    plan, known_hosts, ca_pem = _setup(lab, three_nodes, tmp_path, 18607, files)
    finished: list[str] = []

    def progress(event: onboard.NodeProgress) -> None:
        if event.state in onboard.FINAL_STATES:
            finished.append(event.host)

    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=policy_for(known_hosts),
                                   parallel=1, on_progress=progress,
                                   should_stop=lambda: bool(finished))
    statuses = [r.status for r in report.results]
    assert statuses == ["changed", "cancelled", "cancelled"], report.results
    assert report.exit_code == 1
    first, rest = three_nodes[0], three_nodes[1:]
    assert first.host_path(f"{files.docker_dir}/ca.crt").read_bytes() == ca_pem
    for node in rest:
        assert not node.host_path(files.docker_dir).exists()
    again = _run(plan, known_hosts)
    assert [again[n.ip].status for n in three_nodes] == ["unchanged", "changed", "changed"]


def test_sshd_killed_mid_transfer_to_a_node_whose_sudo_needs_a_password(
    lab: Lab, three_nodes: list[LabHost], tmp_path: Path
) -> None:
    """The containerd node's sudo needs a password, which travels on the same stream as the
    file content: a cut there must fail that node alone and leave nothing half-written."""
    victim = lab["containerd"]
    nodes = [three_nodes[0], victim]
    plan = node_plan(tmp_path, lab, nodes, port=18608, runtime="auto")
    plan.nodes[0].runtime = "docker"
    plan.nodes[1].ssh_user = victim.ssh_user
    registry = plan.registry_reference
    target = f"/etc/containerd/certs.d/{registry}"
    known_hosts = private_known_hosts(lab, tmp_path)
    ca_pem = (plan.cert_dir / "ca.crt").read_bytes()
    secrets = Secrets(sudo_password=victim.sudo_password)
    try:
        with kill_sshd_mid_transfer(victim, ca_pem, target) as kill:
            report = onboard.onboard_nodes(plan, secrets, host_key_policy=policy_for(known_hosts),
                                           timeout=120)
        assert kill.fired and kill.transfer_started
        results = {r.host: r for r in report.results}
        failed = results[victim.ip]
        assert failed.status == "failed" and victim.ip in failed.message, failed
        assert "bug" not in (failed.hint or "") and "sudo password" not in failed.reason
        assert results[three_nodes[0].ip].status == "changed"
        assert install_temps(victim, "/etc/containerd/certs.d") == []
        assert not victim.host_path(f"{target}/ca.crt").exists()
        assert not victim.host_path(f"{target}/hosts.toml").exists()

        again = onboard.onboard_nodes(plan, secrets, host_key_policy=policy_for(known_hosts))
        assert {r.host: r.status for r in again.results} == {
            three_nodes[0].ip: "unchanged", victim.ip: "changed"}
        assert victim.host_path(f"{target}/ca.crt").read_bytes() == ca_pem
        assert f'ca = "{target}/ca.crt"' in victim.host_path(f"{target}/hosts.toml").read_text()
    finally:
        victim.exec(["rm", "-rf", target])
        NodeFiles(registry).remove(three_nodes[:1])
