"""Acceptance tests for the lab itself: every host is reachable over real SSH with its
documented user and key, host keys are checked, and real TLS trust works per runtime."""

from __future__ import annotations

import paramiko
import pytest

from tests.lab.lab import Lab, LabHost

CORE = ("registry", "docker", "containerd", "bare", "plain")


def ssh_connect(host: LabHost, *, password: str | None = None) -> paramiko.SSHClient:
    """Connects like regwiz will: lab known_hosts only, unknown keys rejected."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(host.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if password is None:
        client.connect(host.ip, username=host.ssh_user, key_filename=str(host.key_path),
                       look_for_keys=False, allow_agent=False, timeout=10)
    else:
        client.connect(host.ip, username=host.ssh_user, password=password,
                       look_for_keys=False, allow_agent=False, timeout=10)
    return client


def ssh_run(client: paramiko.SSHClient, command: str, stdin: bytes = b"") -> tuple[int, str]:
    chan_in, chan_out, chan_err = client.exec_command(command, timeout=60)
    if stdin:
        chan_in.write(stdin)
    chan_in.channel.shutdown_write()
    out = chan_out.read().decode() + chan_err.read().decode()
    return chan_out.channel.recv_exit_status(), out


@pytest.mark.parametrize("name", CORE)
def test_ssh_with_documented_user_and_key(lab: Lab, name: str) -> None:
    host = lab[name]
    client = ssh_connect(host)
    try:
        status, out = ssh_run(client, "id -un")
    finally:
        client.close()
    assert (status, out.strip()) == (0, host.ssh_user)
