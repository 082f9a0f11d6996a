"""Shared pieces of the fault-injection suite (real sshd, dockerd, registry in the lab).

Every fault test leaves the lab as it found it: it restarts what it stopped, unmounts what it
mounted, removes the files and containers it made, and uses its own registry references,
container names and ports so it never collides with the rest of the suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.certs import ensure_certificates
from app.connections import host_key_policy
from app.plan import NodeSettings, Plan, new_plan, save_plan
from app.transport.hostkeys import HostKeyPolicy
from tests.lab.lab import Lab, LabHost, process_alive, wait_until

# What the transports leave while they work: staged uploads (in /tmp) and install temp files
# (next to the target). Neither may survive a run, whatever happened during it.
STAGED_GLOB = ".regwiz-*"
INSTALL_TEMP_PREFIX = ".regwiz-tmp."


def sshd_only_nodes(lab: Lab, count: int) -> list[LabHost]:
    """The first `count` sshd-only nodes, adding them when the lab has fewer.

    The lab cannot remove hosts; nodes added here stay for the rest of the session (they are
    what other tests add too), but every file a fault test writes on them is removed.
    """
    existing = sorted((h for n, h in lab.hosts.items() if n.startswith("node")),
                      key=lambda h: h.name)
    if len(existing) < count:
        existing += lab.add_sshd_nodes(count - len(existing))
    return existing[:count]


def node_plan(tmp: Path, lab: Lab, nodes: list[LabHost], *, port: int,
              runtime: str = "docker", known_hosts: Path | None = None) -> Plan:
    """A saved plan (with certificates) whose nodes are `nodes`; the registry itself need not
    run for onboarding: only its reference (registry host IP:port) names the files."""
    registry_ip = lab["registry"].ip
    plan = new_plan(tmp / "plan.toml")
    plan.certificate.subject_alt_names = [registry_ip]
    plan.registry.host = registry_ip
    plan.registry.address, plan.registry.port = registry_ip, port
    plan.node_defaults.identity_file = str(lab.key_path)
    plan.node_defaults.ssh_user = "rwdeploy"
    plan.node_defaults.runtime = runtime
    plan.nodes = [NodeSettings(host=n.ip) for n in nodes]
    ensure_certificates(plan)
    save_plan(plan)
    return plan


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
    pids = sshd_pids(host)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not any(process_alive(p) for p in pids), timeout=10)
    # rwlab-svc start reads the pid file before the new sshd rewrites it; a stale pid there
    # makes it report "sshd exited during start-up". The recorded process is dead: drop it.
    (host.state_dir / "pids" / "sshd.pid").unlink(missing_ok=True)


@contextlib.contextmanager
def sshd_restored(host: LabHost) -> Iterator[None]:
    try:
        yield
    finally:
        host.start_sshd()


# --------------------------------------------------------------------------- killing a transfer


class KillMidWrite:
    """An SFTP file whose write sends half the data, kills the host's sshd, then goes on."""

    def __init__(self, handle: Any, kill: Callable[[], None]) -> None:
        self.handle, self.kill = handle, kill

    def __enter__(self) -> KillMidWrite:
        self.handle.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self.handle.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:  # chmod, set_pipelined, ...: the real file's
        return getattr(self.handle, name)

    def write(self, data: bytes) -> None:
        half = len(data) // 2
        self.handle.set_pipelined(False)  # wait for the server's ack: the half is on its disk
        self.handle.write(data[:half])
        self.handle.flush()
        self.kill()
        self.handle.write(data[half:])
        self.handle.flush()


class SftpKillProxy:
    """Stands in for a transport's SFTP client: the `nth` file opened for writing becomes a
    KillMidWrite (the earlier ones are written normally)."""

    def __init__(self, real: Any, kill: Callable[[], None], nth: int = 1) -> None:
        self.real, self.kill, self.left = real, kill, nth

    def open(self, path: str, mode: str = "r", *args: Any) -> Any:
        handle = self.real.open(path, mode, *args)
        if "w" not in mode:
            return handle
        self.left -= 1
        return KillMidWrite(handle, self.kill) if self.left == 0 else handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


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
    return sshd_only_nodes(lab, 3)
