"""Issue 12 item 3: sudo by its prompt, on the lab's real sshd, sudo and dockerd.

- A user whose sudo needs a password, except ``NOPASSWD: /usr/bin/docker``: before the fix the
  password line was written to stdin up front, and ``sudo docker system dial-stdio`` (which
  sudo runs without asking) passed it into dockerd's API stream. Now the Docker API works
  through that stream, and a deploy as that user works.
- The password reaches sudo only after sudo's own (random) prompt has appeared on stderr.
- A host whose sessions get a German environment (sshd ``SetEnv``): a wrong password is still
  reported as ``sudo-password-wrong`` (sudo runs under ``LC_ALL=C``).
- The plan's ``sudo_password_env`` gives a host its own secret instead of the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from app.connections import host_key_policy
from app.dockerapi import docker_client
from app.transport.base import ConnectionSecrets, ConnectionSettings, TransportError
from app.transport.ssh import SSHTransport, connect
from tests.faults.test_deploy_faults import Env, env  # noqa: F401 - the deploy fixture
from tests.lab.lab import OPS_PASSWORD, OPS_USER, Lab, LabHost

NOPASSWD_DOCKER = "/etc/sudoers.d/zz-regwiz-fault-docker"  # read after the lab's own rules


def _ops(lab: Lab, host: LabHost, sudo_password: str) -> SSHTransport:
    settings = ConnectionSettings(host=host.ip, user=OPS_USER, identity_file=str(lab.key_path),
                                  ssh_config="")
    return connect(settings, ConnectionSecrets(sudo_password=sudo_password),
                   host_key_policy(False, known_hosts=lab.known_hosts))


@pytest.fixture
def nopasswd_docker(lab: Lab) -> Iterator[LabHost]:
    """rwops on the registry host: a password for everything but docker (both places this
    machine has it: sudo's secure_path finds /usr/local/bin/docker first)."""
    host = lab["registry"]
    rule = host.host_path(NOPASSWD_DOCKER)
    rule.write_text(f"{OPS_USER} ALL=(root) NOPASSWD: /usr/bin/docker, /usr/local/bin/docker\n")
    rule.chmod(0o440)
    host.exec(["visudo", "-c"])
    check = host.exec(["su", OPS_USER, "-c", "sudo -n docker version"], check=False)
    assert check.returncode == 0, check.stderr  # the rule really applies
    yield host
    rule.unlink()


def test_docker_api_through_sudo_dial_stdio_with_nopasswd_docker(
    lab: Lab, nopasswd_docker: LabHost
) -> None:
    with _ops(lab, nopasswd_docker, OPS_PASSWORD) as transport:
        assert transport.sudo_mode() == "password"  # `sudo -n true` needs the password
        client = docker_client(transport, sudo=True, timeout=30)
        try:
            assert client.version()["ApiVersion"]
            assert any("registry:2" in image.tags for image in client.images.list())
        finally:
            client.close()


def test_deploy_as_a_password_sudo_user_with_nopasswd_docker_and_its_own_secret(
    lab: Lab, nopasswd_docker: LabHost, env: Env,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    env.write_plan(ssh_user=OPS_USER, sudo_password_env="REGWIZ_SUDO_PASSWORD_REGISTRY")
    # the shared password is wrong: only the registry's own variable can make this work
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", "not-the-registry-password")
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD_REGISTRY", OPS_PASSWORD)
    code, output = env.cli(capsys, "deploy")
    assert code == 0, output
    assert env.v2_status() == 200
    assert OPS_PASSWORD not in output


def test_password_reaches_sudo_only_after_its_prompt(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, bytes]] = []
    send, recv_stderr = paramiko.Channel.send, paramiko.Channel.recv_stderr

    def recording_send(channel: paramiko.Channel, data: Any) -> int:
        events.append(("sent", bytes(data)))
        return send(channel, data)

    def recording_recv_stderr(channel: paramiko.Channel, nbytes: int) -> bytes:
        data = recv_stderr(channel, nbytes)
        events.append(("stderr", data))
        return data

    with _ops(lab, lab["containerd"], OPS_PASSWORD) as transport:
        assert transport.sudo_mode() == "password"
        monkeypatch.setattr(paramiko.Channel, "send", recording_send)
        monkeypatch.setattr(paramiko.Channel, "recv_stderr", recording_recv_stderr)
        done = transport.run(["cat"], sudo=True, stdin=b"the command's input\n")
    assert done.stdout == "the command's input\n"
    assert "regwiz-sudo" not in done.stderr and "regwiz-ready" not in done.stderr
    password_at = [i for i, (what, data) in enumerate(events)
                   if what == "sent" and OPS_PASSWORD.encode() in data]
    assert password_at, events
    before = b"".join(data for what, data in events[:password_at[0]] if what == "stderr")
    assert b"[regwiz-sudo-" in before, "the password was sent before sudo asked for it"
    input_at = [i for i, (what, data) in enumerate(events)
                if what == "sent" and b"the command's input" in data]
    assert input_at and input_at[0] > password_at[0]
    ready = b"".join(data for what, data in events[:input_at[0]] if what == "stderr")
    assert b"[regwiz-ready-" in ready, "the input was sent before the command ran"


@pytest.fixture
def german_node(lab: Lab) -> Iterator[LabHost]:
    """An sshd node whose SSH sessions get a German environment. The machine has no de_DE
    locale compiled (and sudo, being setuid, ignores LOCPATH), so LANG is C.UTF-8 and German
    comes from LANGUAGE, which gettext honours for any locale but plain C."""
    node = lab.sshd_nodes(1)[0]
    config = node.state_dir / "sshd" / "sshd_config"
    original = config.read_text()
    config.write_text(original + "SetEnv LANG=C.UTF-8 LANGUAGE=de_DE:de\n")
    node.stop_sshd()
    node.start_sshd()
    try:
        yield node
    finally:
        config.write_text(original)
        node.stop_sshd()
        node.start_sshd()


def test_wrong_sudo_password_on_a_german_host_is_reported_as_wrong(
    lab: Lab, german_node: LabHost
) -> None:
    with _ops(lab, german_node, "not-the-password") as transport:
        # the environment really is German: plain sudo says so (the test can fail)
        plain = transport.run(["sudo", "-n", "true"], check=False)
        assert "Passwort" in plain.stderr, plain.stderr
        with pytest.raises(TransportError) as caught:
            transport.run(["true"], sudo=True)
    assert caught.value.kind == "sudo-password-wrong", caught.value
    assert german_node.ip in caught.value.message


def test_right_sudo_password_on_a_german_host_works(lab: Lab, german_node: LabHost) -> None:
    with _ops(lab, german_node, OPS_PASSWORD) as transport:
        assert transport.run(["id", "-u"], sudo=True).stdout.strip() == "0"
        written = Path("/tmp") / f"regwiz-fault-german-{german_node.name}"
        try:
            assert transport.write_file(str(written), b"data\n", mode=0o600, sudo=True)
            assert written.read_bytes() == b"data\n"
        finally:
            written.unlink(missing_ok=True)
