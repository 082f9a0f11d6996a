"""An in-memory node for testing onboarding's pure logic (planning, orchestration, reporting).

Real SSH, sudo and daemons are exercised by tests/lab/test_onboard_lab.py; this fake only lets
the decision logic run fast and deterministically for runtimes the lab does not have (k3s,
RKE2, CRI-O, RHEL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from app.certs import ensure_certificates
from app.plan import NodeSettings, Plan, ResolvedNode, new_plan
from app.runtimes.containerd import REGWIZ_DIRS_SCRIPT, RUNNING_CONFIG_SCRIPT
from app.runtimes.facts import OS_RELEASE_MARKER
from app.runtimes.probe import probe_script
from app.runtimes.registry import adapters
from app.runtimes.restarts import OWED_DIR
from app.transport.base import CommandResult, Transport, TransportError

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n'
ROCKY = 'ID="rocky"\nID_LIKE="rhel centos fedora"\n'


class FakeNode(Transport):
    """Files in a dict, a canned probe, and a log of the commands run."""

    def __init__(self, name: str, probe: str = "", os_release: str = DEBIAN,
                 files: dict[str, bytes] | None = None) -> None:
        self.name = name
        self.probe_output = probe + "---os-release---\n" + os_release
        self.files: dict[str, bytes] = dict(files or {})
        self.commands: list[list[str]] = []
        self.writes: list[str] = []
        self.closed = False
        self.on_command: Callable[[list[str]], None] | None = None
        # Whether `systemctl restart SERVICE` fails now (e.g. judged by a file's content); a
        # service whose restart failed is not active until a restart succeeds.
        self.start_fails: Callable[[FakeNode, str], bool] | None = None
        self.down: set[str] = set()

    def run(self, argv: list[str], *, sudo: bool = False, stdin: bytes | None = None,
            timeout: float = 60.0, check: bool = True) -> CommandResult:
        if self.on_command:
            self.on_command(argv)
        if argv == ["sh", "-c", probe_script(adapters())]:  # the registered adapters' probe
            return CommandResult(argv, 0, self._probe_text(), "")
        if argv[:3] in (["sh", "-c", REGWIZ_DIRS_SCRIPT], ["sh", "-c", RUNNING_CONFIG_SCRIPT]):
            return CommandResult(argv, 0, "", "")  # containerd's read-only looks
        self.commands.append(argv)
        if argv[:2] == ["systemctl", "is-active"]:
            return CommandResult(argv, 0, "inactive\n" if argv[2] in self.down else "active\n",
                                 "")
        if argv[:2] == ["systemctl", "restart"]:
            return self._restart(argv)
        if argv[:3] == ["rm", "-f", "--"]:
            for path in argv[3:]:
                self.files.pop(path, None)
        return CommandResult(argv, 0, "", "")

    def _restart(self, argv: list[str]) -> CommandResult:
        service = argv[2]
        if self.start_fails is not None and self.start_fails(self, service):
            self.down.add(service)
            raise TransportError(f"`systemctl restart {service}` failed on {self.name} (exit 1): "
                                 f"Job for {service}.service failed.", kind="command")
        self.down.discard(service)
        return CommandResult(argv, 0, "", "")

    def _probe_text(self) -> str:
        """The canned probe, plus what the real probe prints for the owed-restart records
        in /run/regwiz (before the os-release part)."""
        owed = "".join(f"restart-owed.{path.rsplit('/', 1)[1].removesuffix('.json')}="
                       f"{content.decode().splitlines()[0]}\n"
                       for path, content in sorted(self.files.items())
                       if path.startswith(f"{OWED_DIR}/") and path.endswith(".json"))
        head, marker, release = self.probe_output.partition(OS_RELEASE_MARKER + "\n")
        return head + owed + marker + release

    def read_file(self, path: str, *, sudo: bool = False, timeout: float = 30.0) -> bytes | None:
        return self.files.get(path)

    def write_file(self, path: str, content: bytes, *, mode: int = 0o644, owner: str = "root",
                   group: str = "root", sudo: bool = False, timeout: float = 60.0) -> bool:
        if self.files.get(path) == content:
            return False
        self.files[path] = content
        self.writes.append(path)
        return True

    def close(self) -> None:
        self.closed = True


class FakeFleet:
    """A connector for onboard_nodes that hands out FakeNodes (or raises) by host."""

    def __init__(self, nodes: dict[str, FakeNode | BaseException]) -> None:
        self.nodes = nodes
        self.lock = threading.Lock()
        self.connected: list[str] = []

    def __call__(self, node: ResolvedNode) -> Transport:
        with self.lock:
            self.connected.append(node.host)
        target = self.nodes[node.host]
        if isinstance(target, BaseException):
            raise target
        return target


def unreachable(host: str) -> TransportError:
    return TransportError(f"cannot reach {host}:22: connection refused",
                          "check that sshd runs there", kind="unreachable")


def plan_with_ca(directory: Path, hosts: list[str], **node_fields: object) -> Plan:
    plan = new_plan(directory / "plan.toml")
    plan.certificate.subject_alt_names = ["198.18.9.2"]
    plan.registry.address, plan.registry.port = "198.18.9.2", 8443
    plan.nodes = [NodeSettings(host=host, **node_fields) for host in hosts]  # type: ignore[arg-type]
    ensure_certificates(plan)
    return plan
