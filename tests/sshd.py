"""A real OpenSSH server on 127.0.0.1 for transport tests (no lab needed).

``SshServer.start(directory)`` generates a host key, client keys (one plain, one protected by
a passphrase), writes an sshd_config (``UsePAM no``, ``PermitRootLogin prohibit-password``)
and runs ``sshd -D`` on a free high port as the current user (root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.polling import wait_until

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
KEY_PASSPHRASE = "correct horse battery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "") -> Path:
    size = ["-b", "2048"] if key_type == "rsa" else []  # 3072-bit RSA is slow to generate
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, *size, "-N", passphrase, "-C", "regwiz-test",
         "-f", str(path)],
        check=True,
    )
    return path


@dataclass
class SshServer:
    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    host_key: Path = field(init=False)
    client_key: Path = field(init=False)
    passphrase_key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.host_key = self.directory / "ssh_host_ed25519_key"
        self.client_key = self.directory / "client_ed25519"
        self.passphrase_key = self.directory / "client_rsa_passphrase"

    @property
    def host_public_key(self) -> str:
        """The host key line as ``type base64`` (what known_hosts stores)."""
        fields = (self.host_key.with_suffix(".pub")).read_text().split()
        return f"{fields[0]} {fields[1]}"

    def fingerprint(self) -> str:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key.with_suffix(".pub"))],
            check=True, capture_output=True, text=True,
        ).stdout
        return out.split()[1]

    def prepare(self, extra_config: str = "") -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        keygen(self.host_key)
        keygen(self.client_key)
        keygen(self.passphrase_key, "rsa", KEY_PASSPHRASE)
        authorized = [
            (self.client_key.with_suffix(".pub")).read_text(),
            Path(f"{self.passphrase_key}.pub").read_text(),
        ]
        (self.directory / "authorized_keys").write_text("".join(authorized))
        self.port = self.port or free_port()
        (self.directory / "sshd_config").write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.directory / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}\n"
            "UsePAM no\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "StrictModes no\n"
            "AllowTcpForwarding yes\n"
            "Subsystem sftp internal-sftp\n"
            "MaxStartups 50\n"
            "MaxSessions 50\n"
            "LogLevel ERROR\n" + extra_config
        )

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        log = open(self.directory / "sshd.log", "ab")  # noqa: SIM115 - kept open for sshd
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.directory / "sshd_config")],
            stdout=log, stderr=log,
        )
        log.close()
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        # Readiness polling, not a timing assertion: give up only if sshd died or never listens.
        def listening() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.directory / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(listening, "sshd listens")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def start_server(directory: Path, extra_config: str = "") -> SshServer:
    server = SshServer(directory)
    server.prepare(extra_config)
    server.start()
    return server


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd per test module (start ~0.1 s), stopped at the end."""
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root; run the tests as root")
    server = start_server(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
