"""Host keys read in bulk before a job (a key exchange, no login) against a real sshd, and the
time a node waits for the user's answer left out of the node's time."""

from __future__ import annotations

import base64
import subprocess
import threading
from pathlib import Path

from app import onboard
from app.connections import host_key_policy
from app.plan import Secrets
from app.transport.base import ConnectionSettings
from app.transport.hostkeys import HostKeyPolicy
from app.transport.keyscan import (
    CHANGED,
    KNOWN,
    NOT_SCANNED,
    OTHER_TYPE,
    UNKNOWN,
    remember_accepted,
    scan_host_key,
    scan_host_keys,
)
from app.user_waits import Stopwatch, UserWaits
from tests.sshd import SshServer, free_port, keygen, sshd  # noqa: F401  (fixture)
from tests.test_onboard_fakes import FakeFleet, FakeNode, plan_with_ca


def target(server: SshServer, host: str = "127.0.0.1") -> ConnectionSettings:
    return ConnectionSettings(host=host, user="root", port=server.port, ssh_config="")


def fingerprint(public_key_file: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key_file)],
                         check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def key_line(label: str, public_key_file: Path) -> str:
    key_type, blob = public_key_file.read_text().split()[:2]
    return f"{label} {key_type} {blob}\n"


def test_scan_reads_the_key_and_judges_it_like_a_connection(
    sshd: SshServer, tmp_path: Path  # noqa: F811
) -> None:
    known_hosts = tmp_path / "known_hosts"
    policy = HostKeyPolicy(known_hosts=known_hosts)
    label = f"[127.0.0.1]:{sshd.port}"
    unknown = scan_host_key(target(sshd), policy)
    assert (unknown.status, unknown.label, unknown.key_type) == (UNKNOWN, label, "ssh-ed25519")
    assert unknown.fingerprint == sshd.fingerprint() and unknown.needs_answer
    known_hosts.write_text(f"{label} {sshd.host_public_key}\n")
    assert scan_host_key(target(sshd), policy).status == KNOWN
    other = keygen(tmp_path / "other")
    known_hosts.write_text(key_line(label, Path(f"{other}.pub")))
    changed = scan_host_key(target(sshd), policy)
    assert changed.status == CHANGED and changed.refused
    assert changed.known == (fingerprint(Path(f"{other}.pub")),)
    rsa = keygen(tmp_path / "rsa", "rsa")
    known_hosts.write_text(key_line(label, Path(f"{rsa}.pub")))
    other_type = scan_host_key(target(sshd), policy)
    assert other_type.status == OTHER_TYPE and other_type.known[0].startswith("ssh-rsa SHA256:")
    assert not known_hosts.read_text().count("ssh-ed25519")  # a scan never saves anything


def test_a_host_that_does_not_answer_is_not_scanned(tmp_path: Path) -> None:
    policy = HostKeyPolicy(known_hosts=tmp_path / "known_hosts")
    closed = ConnectionSettings(host="127.0.0.1", port=free_port(), ssh_config="")
    scan = scan_host_key(closed, policy)
    assert scan.status == NOT_SCANNED and "refused" in scan.error and not scan.needs_answer


def test_parallel_scan_keeps_order_and_stops_when_asked(
    sshd: SshServer, tmp_path: Path  # noqa: F811
) -> None:
    policy = HostKeyPolicy(known_hosts=tmp_path / "known_hosts")
    targets = [target(sshd, "127.0.0.1"), target(sshd, "localhost")]
    assert [s.host for s in scan_host_keys(targets, policy)] == ["127.0.0.1", "localhost"]
    stopped = scan_host_keys(targets, policy, should_stop=lambda: True)
    assert [(s.status, s.error) for s in stopped] == [(NOT_SCANNED, "cancelled")] * 2


def test_only_accepted_new_keys_are_remembered(
    sshd: SshServer, tmp_path: Path  # noqa: F811
) -> None:
    known_hosts = tmp_path / "known_hosts"
    policy = HostKeyPolicy(known_hosts=known_hosts)
    new = scan_host_key(target(sshd), policy)
    other = keygen(tmp_path / "other")
    known_hosts.write_text(key_line(f"[localhost]:{sshd.port}", Path(f"{other}.pub")))
    changed = scan_host_key(target(sshd, "localhost"), policy)
    remember_accepted(policy, [new, changed])
    remember_accepted(policy, [new])  # twice: saved once
    lines = known_hosts.read_text().splitlines()
    assert lines.count(f"[127.0.0.1]:{sshd.port} {sshd.host_public_key}") == 1
    assert len(lines) == 2  # the changed key was not added next to the known one
    policy.verify("127.0.0.1", sshd.port, new.key_type, new.blob)  # now trusted


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_question_is_counted_as_waiting_on_its_own_thread(tmp_path: Path) -> None:
    clock = FakeClock()
    blob = base64.b64decode(Path(f"{keygen(tmp_path / 'k')}.pub").read_text().split()[1])

    def confirm(host: str, key_type: str, fingerprint: str) -> bool:
        clock.now += 42.0  # the user took 42 s to answer
        return True

    policy = host_key_policy(False, confirm, tmp_path / "known_hosts", waits=UserWaits(clock))
    watch = Stopwatch(policy.waits)
    clock.now += 1.5  # work before the question
    policy.verify("10.0.0.9", 22, "ssh-ed25519", blob)
    assert (watch.waited(), watch.elapsed()) == (42.0, 1.5)
    other_thread: list[float] = []
    thread = threading.Thread(target=lambda: other_thread.append(policy.waits.total()))
    thread.start()
    thread.join()
    assert other_thread == [0.0]  # another node's thread did not wait


def test_a_rejected_host_is_never_connected_and_fails_host_key_rejected(
    tmp_path: Path,
) -> None:
    plan = plan_with_ca(tmp_path, ["a", "b"])
    fleet = FakeFleet({"a": FakeNode("a", "socket=/run/docker.sock\n"),
                       "b": FakeNode("b", "socket=/run/docker.sock\n")})
    report = onboard.onboard_nodes(plan, Secrets(), host_key_policy=HostKeyPolicy(),
                                   connect=fleet, rejected_host_keys={"b"}, save=False)
    results = {r.host: r for r in report.results}
    assert fleet.connected == ["a"]
    assert (results["b"].status, results["b"].reason, results["b"].kind) == (
        onboard.FAILED, "host key rejected", "host-key-rejected")
    assert results["a"].status == onboard.CHANGED
