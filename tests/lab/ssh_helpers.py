"""SSH to lab hosts the way regwiz connects (paramiko, lab known_hosts only), for lab tests
that check the lab itself."""

from __future__ import annotations

import paramiko

from tests.lab.lab import LabHost


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
    # generous: update-ca-certificates runs a Java keystore hook that is slow on a busy machine
    chan_in, chan_out, chan_err = client.exec_command(command, timeout=300)
    if stdin:
        chan_in.write(stdin)
    chan_in.channel.shutdown_write()
    out = chan_out.read().decode() + chan_err.read().decode()
    return chan_out.channel.recv_exit_status(), out
