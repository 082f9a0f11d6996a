"""Transports and the Docker SDK against the lab's real hosts (non-root users, sudo, dockerd).

Run with REGWIZ_LAB_ID set to a lab of your own (e.g. 3) to avoid colliding with others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from app.dockerapi import docker_client
from app.transport.base import ConnectionSecrets, ConnectionSettings, TransportError
from app.transport.factory import open_transport
from app.transport.hostkeys import HostKeyPolicy
from app.transport.ssh import SSHTransport, connect
from tests.lab.lab import Lab, LabHost


@pytest.fixture(autouse=True)
def no_user_ssh_files(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def settings_for(host: LabHost, **overrides: object) -> ConnectionSettings:
    values: dict[str, object] = dict(host=host.ip, user=host.ssh_user,
                                     identity_file=str(host.key_path), ssh_config="")
    values.update(overrides)
    return ConnectionSettings(**values)  # type: ignore[arg-type]


def open_lab(host: LabHost, secrets: ConnectionSecrets | None = None) -> SSHTransport:
    transport = open_transport(settings_for(host), secrets,
                               HostKeyPolicy(known_hosts=host.known_hosts))
    assert isinstance(transport, SSHTransport)
    return transport


@pytest.fixture
def ops(lab: Lab) -> Iterator[SSHTransport]:
    host = lab["containerd"]
    transport = open_lab(host, ConnectionSecrets(sudo_password=host.sudo_password))
    yield transport
    transport.close()


def test_passwordless_sudo(lab: Lab) -> None:
    with open_lab(lab["registry"]) as deploy:
        assert deploy.run(["id", "-un"]).stdout == "rwdeploy\n"
        assert deploy.run(["id", "-u"], sudo=True).stdout == "0\n"
        assert deploy.sudo_mode() == "nopasswd"


def test_sudo_with_password(ops: SSHTransport) -> None:
    assert ops.run(["id", "-u"], sudo=True).stdout == "0\n"
    assert ops.sudo_mode() == "password"
    # Command input follows the password line on sudo's stdin; the command sees only it.
    assert ops.run(["cat"], sudo=True, stdin=b"payload\n").stdout == "payload\n"
    assert ops.run(["sh", "-c", "cat; id -u"], sudo=True, stdin=b"").stdout == "0\n"


def test_sudo_password_never_reaches_the_command(ops: SSHTransport) -> None:
    seen = ops.run(["cat"], sudo=True).stdout
    assert seen == ""
    processes = ops.run(["ps", "-eo", "args"]).stdout
    assert "rwops-password" not in processes


def test_missing_sudo_password_is_named(lab: Lab) -> None:
    with open_lab(lab["containerd"]) as transport, pytest.raises(TransportError) as caught:
        transport.run(["id"], sudo=True)
    assert caught.value.category == "sudo-password"
    assert caught.value.kind == "sudo-password-missing"
    assert "needs a password" in caught.value.message
    assert lab["containerd"].ip in caught.value.message


def test_wrong_sudo_password_is_named(lab: Lab) -> None:
    secrets = ConnectionSecrets(sudo_password="not-the-password")
    with open_lab(lab["containerd"], secrets) as transport:
        with pytest.raises(TransportError) as caught:
            transport.run(["id"], sudo=True)
        assert transport.run(["id", "-un"]).stdout == "rwops\n"  # the connection still works
    assert caught.value.category == "sudo-password"
    assert caught.value.kind == "sudo-password-wrong"
    assert "wrong sudo password" in caught.value.message
    assert "not-the-password" not in str(caught.value)


def test_password_login(lab: Lab) -> None:
    host = lab["containerd"]
    settings = settings_for(host, identity_file=None)
    with connect(settings, ConnectionSecrets(password=host.password),
                 HostKeyPolicy(host.known_hosts)) as transport:
        assert transport.run(["id", "-un"]).stdout == "rwops\n"
    with pytest.raises(TransportError) as caught:
        connect(settings, ConnectionSecrets(password="wrong"), HostKeyPolicy(host.known_hosts))
    assert caught.value.category == "auth" and caught.value.kind == "login-refused"


def test_write_file_with_sudo_creates_root_owned_0600(ops: SSHTransport, lab: Lab) -> None:
    path = "/etc/containerd/regwiz-test/secret.conf"
    host = lab["containerd"]
    try:
        assert ops.write_file(path, b"s3cret\n", mode=0o600, sudo=True) is True
        seen = host.exec(["stat", "-c", "%U:%G %a", path]).stdout.decode().strip()
        assert seen == "root:root 600"
        assert ops.write_file(path, b"s3cret\n", mode=0o600, sudo=True) is False
        assert ops.read_file(path, sudo=True) == b"s3cret\n"
        with pytest.raises(TransportError) as caught:
            ops.read_file(path)  # the non-root user may not read it
        assert caught.value.kind == "permission"
        leftovers = host.exec(["ls", "-A", "/etc/containerd/regwiz-test"]).stdout
        assert leftovers == b"secret.conf\n"
    finally:
        host.exec(["rm", "-rf", "/etc/containerd/regwiz-test"])


def test_write_without_sudo_into_root_dir_is_permission_error(ops: SSHTransport) -> None:
    with pytest.raises(TransportError) as caught:
        ops.write_file("/etc/regwiz-denied.conf", b"x", owner="", group="")
    assert caught.value.kind == "permission"


def test_write_own_file_without_sudo(ops: SSHTransport) -> None:
    assert ops.write_file("/tmp/regwiz-ops-file", b"mine", owner="", group="", mode=0o640)
    assert ops.run(["stat", "-c", "%U %a", "/tmp/regwiz-ops-file"]).stdout == "rwops 640\n"
    assert ops.write_file("/tmp/regwiz-ops-file", b"mine", owner="", group="", mode=0o640) \
        is False
    ops.run(["rm", "-f", "/tmp/regwiz-ops-file"])


def test_changed_lab_host_key_is_refused(lab: Lab, tmp_path: object) -> None:
    host = lab["plain"]
    old = host.host_key_fingerprint()
    new = host.replace_host_key()
    try:
        with pytest.raises(TransportError) as caught:
            open_lab(host)
        assert caught.value.kind == "host-key-changed"
        assert old in caught.value.message and new in caught.value.message
    finally:
        lab.write_known_hosts()


def test_docker_client_over_ssh(lab: Lab) -> None:
    with open_lab(lab["registry"]) as transport:
        client = docker_client(transport, sudo=False)
        try:
            assert client.ping()
            assert client.version()["ApiVersion"] == "1.41"
            tags = {tag for image in client.images.list() for tag in image.tags}
            assert "registry:2" in tags
            assert client.info()["Driver"] == "vfs"
            forwarder = client.forwarder  # type: ignore[attr-defined]
            socket_path = Path(forwarder.path)
            assert oct(socket_path.parent.stat().st_mode & 0o777) == "0o700"
        finally:
            client.close()
        assert not socket_path.parent.exists()  # closed cleanly: socket and dir gone
        # No dial-stdio is left on the host (they exit on EOF; allow them a moment to do so).
        check = "for i in $(seq 50); do ps -eo args | grep -q '[d]ial-stdio' || exit 0; " \
                "sleep 0.1; done; exit 1"
        assert transport.run(["sh", "-c", check], check=False).ok
        assert transport.run(["true"]).ok  # the SSH connection outlives the client


def test_docker_client_over_sudo(lab: Lab) -> None:
    with open_lab(lab["registry"]) as transport:
        client = docker_client(transport, sudo=True)
        try:
            assert client.version()["ApiVersion"] == "1.41"
        finally:
            client.close()


def test_docker_client_without_docker_is_a_clear_error(ops: SSHTransport) -> None:
    with pytest.raises(TransportError) as caught:
        docker_client(ops, sudo=True)
    assert ops.name in caught.value.message
    assert "docker" in caught.value.message.lower()



def test_docker_streams_and_parallel_calls_over_ssh(lab: Lab) -> None:
    from concurrent.futures import ThreadPoolExecutor

    host = lab["registry"]
    with open_lab(host) as transport:
        client = docker_client(transport, sudo=False, timeout=45)
        try:
            assert client.api.timeout == 45
            saved = b"".join(client.images.get("registry:2").save())
            # The same export straight from the daemon's socket: every byte came through.
            direct = docker.DockerClient(base_url=f"unix://{host.docker_socket}", version="auto")
            try:
                expected = b"".join(direct.images.get("registry:2").save())
            finally:
                direct.close()
            assert len(saved) > 1_000_000
            assert hashlib.sha256(saved).digest() == hashlib.sha256(expected).digest()
            with ThreadPoolExecutor(8) as pool:
                versions = list(pool.map(lambda _: client.version()["ApiVersion"], range(16)))
            assert versions == ["1.41"] * 16
        finally:
            client.close()


def test_local_docker_client_uses_the_socket(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.transport.local import LocalTransport

    socket_path = lab["docker"].docker_socket
    assert socket_path is not None
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    client = docker_client(LocalTransport(), sudo=True)
    try:
        assert client.version()["ApiVersion"] == "1.41"
    finally:
        client.close()


def test_no_secret_reaches_the_logs(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    host = lab["containerd"]
    secrets = ConnectionSecrets(password=host.password, sudo_password=host.sudo_password)
    with connect(settings_for(host, identity_file=None), secrets,
                 HostKeyPolicy(host.known_hosts)) as transport:
        transport.run(["true"], sudo=True)
        transport.write_file("/tmp/regwiz-log-check", b"x", sudo=True)
        transport.run(["rm", "-f", "/tmp/regwiz-log-check"], sudo=True)
    assert caplog.records  # paramiko did log at DEBUG
    for record in caplog.records:
        text = record.getMessage()
        assert str(host.password) not in text and str(host.sudo_password) not in text


def test_absent_lab_address_is_no_route(lab: Lab) -> None:
    absent = lab["registry"].ip.rsplit(".", 1)[0] + ".99"  # on the lab subnet, nobody there
    settings = ConnectionSettings(host=absent, ssh_config="", connect_timeout=15)
    with pytest.raises(TransportError) as caught:
        connect(settings, policy=HostKeyPolicy(lab["registry"].known_hosts))
    assert caught.value.kind == "unreachable"
    assert f"{absent}:22" in caught.value.message and "no route to host" in caught.value.message


def test_sudo_disabled_for_host(lab: Lab) -> None:
    host = lab["registry"]
    transport = open_transport(settings_for(host, sudo=False), None,
                               HostKeyPolicy(known_hosts=host.known_hosts))
    with transport, pytest.raises(TransportError) as caught:
        transport.run(["id"], sudo=True)
    assert caught.value.kind == "permission" and "sudo is disabled" in caught.value.message


def test_stream_with_sudo_password_carries_only_the_data(ops: SSHTransport) -> None:
    # How dial-stdio runs for a user whose sudo needs a password: password line, then bytes.
    channel = ops.open_stream(["sh", "-c", "id -u; exec cat"], sudo=True)
    try:
        channel.settimeout(30)
        payload = b"first line\nsecond \x00 binary\xff\n"
        channel.sendall(payload)
        channel.shutdown_write()
        received = b""
        while chunk := channel.recv(65536):
            received += chunk
    finally:
        channel.close()
    assert received == b"0\n" + payload
