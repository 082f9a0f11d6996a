"""Shared pieces of the fault-injection suite (real sshd, dockerd, registry in the lab).

Every fault test leaves the lab as it found it: it restarts what it stopped, unmounts what it
mounted, removes the files and containers it made, and uses its own registry references,
container names and ports so it never collides with the rest of the suite.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.connections import host_key_policy
from app.transport.hostkeys import HostKeyPolicy
from tests.lab.lab import Lab, LabHost, signal_and_wait
from tests.polling import poll_until

# What the transports leave while they work: staged uploads (in /tmp) and install temp files
# (next to the target). Neither may survive a run, whatever happened during it.
STAGED_GLOB = ".regwiz-*"
INSTALL_TEMP_PREFIX = ".regwiz-tmp."


def policy_for(known_hosts: Path) -> HostKeyPolicy:
    return host_key_policy(False, known_hosts=known_hosts)


def private_known_hosts(lab: Lab, tmp: Path) -> Path:
    """A copy of the lab's known_hosts this test may edit without touching the lab's."""
    copy = tmp / "known_hosts"
    shutil.copy(lab.known_hosts, copy)
    return copy


# --------------------------------------------------------------------------- leftovers


def install_temps(host: LabHost, directory: str) -> list[Path]:
    """Install temp files (.regwiz-tmp.*) anywhere under `directory` on the host."""
    root = host.host_path(directory)
    if not root.exists():
        return []
    return sorted(p for p in root.rglob(f"{INSTALL_TEMP_PREFIX}*"))


def staged_leftovers(content: bytes) -> list[Path]:
    """Staged uploads in /tmp (shared by every lab host) holding `content` or a prefix of it
    (an upload cut before any byte arrived leaves an empty file: that counts too).

    Other tests may be staging their own files right now; matching on this test's content
    (unique per test: its own CA or key) keeps the check to what this test uploaded.
    """
    found = []
    for directory in Path("/tmp").glob(STAGED_GLOB):
        staged = directory / "content"
        with contextlib.suppress(OSError):
            if content.startswith(staged.read_bytes()):
                found.append(staged)
    return found


# --------------------------------------------------------------------------- sshd


def sshd_pids(host: LabHost) -> list[int]:
    """Every sshd process of the host: the listener and each session's privsep processes."""
    out = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True,
                         check=False).stdout.split()
    pids = []
    for pid in out:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                pids.append(int(pid))
    return pids


def kill_all_sshd(host: LabHost) -> None:
    """SIGKILL the host's sshd and all its sessions (the lab started them; ended by pid)."""
    assert signal_and_wait(sshd_pids(host), signal.SIGKILL, timeout=10)
    # rwlab-svc start reads the pid file before the new sshd rewrites it; a stale pid there
    # makes it report "sshd exited during start-up". The recorded process is dead: drop it.
    (host.state_dir / "pids" / "sshd.pid").unlink(missing_ok=True)


# --------------------------------------------------------------------------- killing a transfer


@dataclass
class MidTransferKill:
    """Set by kill_sshd_mid_transfer: whether the transfer was seen and cut."""

    fired: bool = False
    transfer_started: bool = False


def _transfer_started(host: LabHost, content: bytes, target_dir: str) -> bool:
    """The upload of `content` has begun on the host: an install temp file in the target
    directory, or a staged upload in /tmp (whichever the transport uses), holds a prefix of
    it (with SFTP a one-packet write lands whole or not at all: the empty file counts)."""
    candidates = install_temps(host, target_dir) + [
        p for p in Path("/tmp").glob(f"{STAGED_GLOB}/content")]
    for path in candidates:
        with contextlib.suppress(OSError):
            if content.startswith(path.read_bytes()):
                return True
    return False


@contextlib.contextmanager
def kill_sshd_mid_transfer(host: LabHost, content: bytes, target_dir: str
                           ) -> Iterator[MidTransferKill]:
    """While active, the first SSH send to `host` that carries `content` (whether as SFTP
    data or as a command's stdin) sends only its first half; once the upload has begun on
    the host (waited for, at most 3 s), every sshd process of the host is SIGKILLed, then the
    send goes on. Works at paramiko's Channel level, so it does not depend on how the
    transport moves file content. sshd is restarted when the block ends."""
    import paramiko

    marker = content[:40]
    state = MidTransferKill()
    original = paramiko.Channel.send

    def send(channel: paramiko.Channel, data: bytes | bytearray) -> int:
        chunk = bytes(data)
        if state.fired or marker not in chunk:
            return original(channel, data)
        transport = channel.get_transport()
        if transport is None or transport.getpeername()[0] != host.ip:
            return original(channel, data)
        state.fired = True
        cut = chunk.index(marker) + len(content) // 2
        sent = original(channel, chunk[:cut])
        state.transfer_started = poll_until(
            lambda: _transfer_started(host, content, target_dir), timeout=3)
        kill_all_sshd(host)
        return sent

    paramiko.Channel.send = send  # type: ignore[method-assign,assignment]
    try:
        yield state
    finally:
        paramiko.Channel.send = original  # type: ignore[method-assign]
        host.start_sshd()


# --------------------------------------------------------------------------- data


@dataclass
class NodeFiles:
    """The files onboarding writes on sshd-only nodes for one registry reference."""

    registry: str

    @property
    def docker_dir(self) -> str:
        return f"/etc/docker/certs.d/{self.registry}"

    def remove(self, nodes: list[LabHost]) -> None:
        """Remove this registry's files; a certs.d left empty goes too (onboarding made it)."""
        for node in nodes:
            for base in ("/etc/docker/certs.d", "/etc/containerd/certs.d"):
                if self.registry:
                    shutil.rmtree(node.host_path(f"{base}/{self.registry}"), ignore_errors=True)
                with contextlib.suppress(OSError):
                    node.host_path(base).rmdir()


@pytest.fixture
def three_nodes(lab: Lab) -> list[LabHost]:
    return lab.sshd_nodes(3)
