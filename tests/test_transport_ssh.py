"""SSHTransport against a real OpenSSH server on 127.0.0.1 (see tests/sshd.py)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.transport.base import (
    INSTALL_SCRIPT,
    ConnectionSecrets,
    ConnectionSettings,
    TransportError,
)
from app.transport.factory import open_transport
from app.transport.hostkeys import HostKeyPolicy
from app.transport.ssh import SSHTransport, connect
from tests.polling import wait_until
from tests.sshd import KEY_PASSPHRASE, SshServer, free_port, keygen, sshd  # noqa: F401


@pytest.fixture(autouse=True)
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME and no agent, so the user's real ~/.ssh never leaks into a test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


def known_hosts_for(server: SshServer, path: Path) -> Path:
    path.write_text(f"[127.0.0.1]:{server.port} {server.host_public_key}\n")
    return path


@pytest.fixture
def policy(sshd: SshServer, tmp_path: Path) -> HostKeyPolicy:  # noqa: F811
    return HostKeyPolicy(known_hosts=known_hosts_for(sshd, tmp_path / "known_hosts"))


def settings_for(server: SshServer, **overrides: object) -> ConnectionSettings:
    values: dict[str, object] = dict(
        host="127.0.0.1", port=server.port, user="root", identity_file=str(server.client_key),
        ssh_config="", connect_timeout=10.0,
    )
    values.update(overrides)
    return ConnectionSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def ssh(sshd: SshServer, policy: HostKeyPolicy) -> Iterator[SSHTransport]:  # noqa: F811
    transport = connect(settings_for(sshd), ConnectionSecrets(), policy)
    yield transport
    transport.close()


# ----------------------------------------------------------------------------- commands


def test_run_returns_output_and_status(ssh: SSHTransport) -> None:
    result = ssh.run(["sh", "-c", 'printf "%s|" "$@"; echo err >&2', "sh", "a b", "$HOME", "'"])
    assert result.ok
    assert result.stdout == "a b|$HOME|'|"
    assert result.stderr == "err\n"


def test_failed_command_names_command_and_stderr(ssh: SSHTransport) -> None:
    assert ssh.run(["false"], check=False).exit_status == 1
    with pytest.raises(TransportError) as caught:
        ssh.run(["ls", "/no/such/dir"])
    assert caught.value.kind == "command"
    assert "ls /no/such/dir" in caught.value.message
    assert "No such file or directory" in caught.value.message
    assert "127.0.0.1" in caught.value.message


def test_missing_program_is_reported(ssh: SSHTransport) -> None:
    with pytest.raises(TransportError) as caught:
        ssh.run(["regwiz-no-such-program"])
    assert "command not found" in caught.value.message


def test_ten_megabytes_of_output_and_stderr_at_once(ssh: SSHTransport) -> None:
    script = "head -c 1048576 /dev/zero | tr '\\0' e >&2 & head -c 10485760 /dev/zero | tr '\\0' o"
    result = ssh.run(["sh", "-c", script + "; wait"], timeout=120)
    assert len(result.stdout) == 10 * 1024 * 1024
    assert set(result.stdout) == {"o"}
    assert len(result.stderr) == 1024 * 1024


def test_large_stdin_reaches_the_command(ssh: SSHTransport) -> None:
    data = os.urandom(3 * 1024 * 1024)
    result = ssh.run(["sha256sum"], stdin=data, timeout=120)
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def test_command_that_ignores_its_stdin(ssh: SSHTransport) -> None:
    assert ssh.run(["echo", "done"], stdin=os.urandom(4 * 1024 * 1024)).stdout == "done\n"
    assert ssh.run(["head", "-c", "3"], stdin=b"abcdef" * 500_000).stdout == "abc"


def test_command_over_its_timeout_is_killed(ssh: SSHTransport) -> None:
    with pytest.raises(TransportError) as caught:
        ssh.run(["sleep", "37.25"], timeout=1)
    assert caught.value.kind == "timeout"
    assert "sleep 37.25" in caught.value.message
    # The remote `timeout` killed it before we got the answer: nothing left behind.
    left = subprocess.run(["pgrep", "-f", "sleep 37.25"], capture_output=True, text=True)
    assert left.stdout == ""


def descendants(pids: list[int]) -> list[int]:
    listing = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True,
                             check=True).stdout
    table = [line.split() for line in listing.splitlines()]
    found: list[int] = []
    frontier = list(pids)
    while frontier:
        children = [int(pid) for pid, ppid in table if int(ppid) in frontier]
        found += children
        frontier = children
    return found


def test_connection_lost_mid_command(sshd: SshServer, policy: HostKeyPolicy) -> None:  # noqa: F811
    assert sshd.process is not None
    before = set(descendants([sshd.process.pid]))  # other tests' connections to this sshd
    transport = connect(settings_for(sshd), policy=policy)
    # This connection's server-side session process (a new child of the module's sshd).
    sessions = [pid for pid in descendants([sshd.process.pid]) if pid not in before][:1]
    assert sessions
    leftovers: list[int] = []

    def cut_connection() -> None:
        leftovers.extend(descendants(sessions))  # the remote command, to clean up after
        for pid in sessions:
            os.kill(pid, 9)

    killer = threading.Timer(0.5, cut_connection)
    killer.start()
    try:
        with pytest.raises(TransportError) as caught:
            transport.run(["sleep", "29.5"], timeout=60)
        assert caught.value.kind == "unreachable"
        assert "lost the SSH connection to 127.0.0.1" in caught.value.message
        with pytest.raises(TransportError) as again:
            transport.run(["true"])
        assert again.value.kind == "unreachable"
    finally:
        killer.join()
        transport.close()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def test_command_killed_by_a_signal(ssh: SSHTransport) -> None:
    # sshd reports "exit-signal", not an exit status: that is not a lost connection.
    with pytest.raises(TransportError) as caught:
        ssh._exec(["sh", "-c", "kill -9 $$"], None, 30)
    assert caught.value.kind == "command" and "signal" in caught.value.message
    assert ssh.run(["true"]).ok


def test_background_child_holding_stdout_does_not_hang(ssh: SSHTransport) -> None:
    result = ssh.run(["sh", "-c", "sleep 12.5 & echo started"], timeout=60)
    assert result.stdout == "started\n"


def test_commands_from_many_threads_share_one_connection(ssh: SSHTransport) -> None:
    outputs: dict[int, str] = {}

    def work(number: int) -> None:
        outputs[number] = ssh.run(["echo", str(number)]).stdout.strip()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outputs == {n: str(n) for n in range(12)}


def test_sudo_is_not_used_when_logged_in_as_root(ssh: SSHTransport) -> None:
    assert ssh.run(["id", "-u"], sudo=True).stdout.strip() == "0"
    assert ssh.sudo_mode() == "root"


# ----------------------------------------------------------------------------- files


def test_write_file_changed_then_unchanged(ssh: SSHTransport, tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "config.yml"
    assert ssh.write_file(str(target), b"one\n", mode=0o600) is True
    assert target.read_bytes() == b"one\n"
    assert oct(target.stat().st_mode & 0o7777) == "0o600"
    assert (target.stat().st_uid, target.stat().st_gid) == (0, 0)
    assert oct(target.parent.stat().st_mode & 0o777) == "0o755"
    inode = target.stat().st_ino
    assert ssh.write_file(str(target), b"one\n", mode=0o600) is False
    assert target.stat().st_ino == inode  # untouched
    # issue 12: an existing file keeps its mode; a looser one asked for never widens it
    assert ssh.write_file(str(target), b"one\n", mode=0o644) is False
    assert oct(target.stat().st_mode & 0o7777) == "0o600"
    with target.open("rb") as old_file:
        assert ssh.write_file(str(target), b"two\n", mode=0o644) is True
        # replaced by rename, not rewritten in place: the old file still holds the old bytes
        assert old_file.read() == b"one\n"
    assert target.read_bytes() == b"two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.yml"]


def test_write_file_changes_owner(ssh: SSHTransport, tmp_path: Path) -> None:
    target = tmp_path / "owned"
    assert ssh.write_file(str(target), b"x", owner="nobody", group="nogroup", mode=0o640)
    assert target.owner() == "nobody" and target.group() == "nogroup"
    assert ssh.write_file(str(target), b"x", owner="nobody", group="nogroup", mode=0o640) is False
    # issue 12: an edited file keeps its owner (the default root:root is for new files)
    assert ssh.write_file(str(target), b"y", mode=0o640) is True
    assert target.owner() == "nobody" and target.group() == "nogroup"


def test_write_file_through_a_symlink_keeps_link_owner_and_mode(
    ssh: SSHTransport, tmp_path: Path
) -> None:
    real = tmp_path / "real" / "config.toml"
    real.parent.mkdir()
    real.write_bytes(b"old")
    real.chmod(0o600)
    os.chown(real, 65534, 65534)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    assert ssh.write_file(str(link), b"new", mode=0o777) is True  # e.g. a link's stat -c %a
    assert link.is_symlink() and link.resolve() == real
    assert real.read_bytes() == b"new"
    assert (oct(real.stat().st_mode & 0o7777), real.stat().st_uid) == ("0o600", 65534)
    assert ssh.write_file(str(link), b"new", mode=0o777) is False
    assert sorted(p.name for p in real.parent.iterdir()) == ["config.toml"]


def test_write_file_never_makes_a_file_group_or_world_writable(
    ssh: SSHTransport, tmp_path: Path
) -> None:
    loose = tmp_path / "loose"
    loose.write_bytes(b"x")
    loose.chmod(0o666)
    assert ssh.write_file(str(loose), b"x", mode=0o644) is True  # mode narrowed
    assert oct(loose.stat().st_mode & 0o7777) == "0o644"
    new = tmp_path / "new"
    assert ssh.write_file(str(new), b"x", mode=0o777) is True
    assert oct(new.stat().st_mode & 0o7777) == "0o755"


def test_failed_write_leaves_old_file_and_no_temp(ssh: SSHTransport, tmp_path: Path) -> None:
    target = tmp_path / "dir" / "keep"
    target.parent.mkdir()
    target.write_bytes(b"old")
    with pytest.raises(TransportError) as caught:
        ssh.write_file(str(target), b"new", owner="regwiz-no-such-user")
    assert "regwiz-no-such-user" in caught.value.message
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["keep"]


def test_cut_short_transfer_changes_nothing(tmp_path: Path) -> None:
    """A connection lost mid-transfer ends the script's stdin early: the sha256 check refuses
    the short copy, removes it, and leaves the old file as it was."""
    (tmp_path / "dir").mkdir()
    target = tmp_path / "dir" / "keep"
    target.write_bytes(b"old")
    content = b"-----BEGIN PRIVATE KEY-----\n" + b"k" * 4096
    digest = hashlib.sha256(content).hexdigest()
    argv = ["sh", "-c", INSTALL_SCRIPT, "sh", str(target), "600", "", digest]
    done = subprocess.run(argv, input=content[:1000], capture_output=True)
    assert done.returncode != 0
    assert b"cut short" in done.stderr
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["keep"]
    whole = subprocess.run(argv, input=content, capture_output=True)
    assert whole.returncode == 0, whole.stderr
    assert target.read_bytes() == content
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_disk_full_is_reported_and_cleaned_up(ssh: SSHTransport, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(TransportError) as caught:
            ssh.write_file(str(small / "big.bin"), os.urandom(512 * 1024))
        assert caught.value.kind == "disk-full"
        assert "127.0.0.1" in caught.value.message
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_read_file(ssh: SSHTransport, tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    (tmp_path / "bin").write_bytes(data)
    assert ssh.read_file(str(tmp_path / "bin")) == data
    assert ssh.read_file(str(tmp_path / "absent")) is None
    with pytest.raises(TransportError):
        ssh.read_file(str(tmp_path))  # a directory


def test_write_file_refuses_directory_target(ssh: SSHTransport, tmp_path: Path) -> None:
    with pytest.raises(TransportError) as caught:
        ssh.write_file(str(tmp_path), b"x")
    assert "is a directory" in caught.value.message


# ----------------------------------------------------------------------------- host keys


def test_unknown_host_key_is_refused_with_fingerprint(sshd: SshServer, tmp_path: Path) -> None:  # noqa: F811
    policy = HostKeyPolicy(known_hosts=tmp_path / "known_hosts")
    with pytest.raises(TransportError) as caught:
        connect(settings_for(sshd), ConnectionSecrets(), policy)
    assert caught.value.kind == "host-key-unknown"
    assert sshd.fingerprint() in caught.value.message
    assert sshd.fingerprint().startswith("SHA256:")
    assert not (tmp_path / "known_hosts").exists()


def test_accept_new_saves_key_that_openssh_then_recognises(
    sshd: SshServer, tmp_path: Path  # noqa: F811
) -> None:
    path = tmp_path / "kh" / "known_hosts"
    with connect(settings_for(sshd), policy=HostKeyPolicy(path, accept_new=True)) as first:
        assert first.run(["true"]).ok
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(path)],
                           capture_output=True, text=True)
    assert found.returncode == 0 and sshd.host_public_key in found.stdout
    # Remembered: a strict policy on the same file now connects.
    with connect(settings_for(sshd), policy=HostKeyPolicy(path)) as second:
        assert second.run(["true"]).ok


def test_changed_host_key_is_refused_even_with_accept_new(
    sshd: SshServer, tmp_path: Path  # noqa: F811
) -> None:
    other = keygen(tmp_path / "other_host_key")
    other_line = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    path = tmp_path / "known_hosts"
    path.write_text(f"[127.0.0.1]:{sshd.port} {other_line}\n")
    old_fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{other}.pub"], capture_output=True,
                                     text=True, check=True).stdout.split()[1]
    with pytest.raises(TransportError) as caught:
        connect(settings_for(sshd), policy=HostKeyPolicy(path, accept_new=True))
    error = caught.value
    assert error.kind == "host-key-changed"
    assert old_fingerprint in error.message and sshd.fingerprint() in error.message
    assert f"[127.0.0.1]:{sshd.port}" in error.message
    assert path.read_text().count("\n") == 1  # nothing added


def test_hashed_known_hosts_entry_is_understood(sshd: SshServer, tmp_path: Path) -> None:  # noqa: F811
    path = known_hosts_for(sshd, tmp_path / "known_hosts")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    assert path.read_text().startswith("|1|")
    with connect(settings_for(sshd), policy=HostKeyPolicy(path)) as transport:
        assert transport.run(["true"]).ok


def test_confirm_callback_decides_unknown_keys(sshd: SshServer, tmp_path: Path) -> None:  # noqa: F811
    asked: list[tuple[str, str, str]] = []
    path = tmp_path / "known_hosts"

    def refuse(host: str, key_type: str, fingerprint: str) -> bool:
        asked.append((host, key_type, fingerprint))
        return False

    with pytest.raises(TransportError) as caught:
        connect(settings_for(sshd), policy=HostKeyPolicy(path, confirm=refuse))
    assert caught.value.kind == "host-key-unknown"
    assert asked == [(f"[127.0.0.1]:{sshd.port}", "ssh-ed25519", sshd.fingerprint())]
    assert not path.exists()
    with connect(settings_for(sshd), policy=HostKeyPolicy(path, confirm=lambda *a: True)):
        pass
    asked.clear()
    with connect(settings_for(sshd), policy=HostKeyPolicy(path, confirm=refuse)):
        pass  # remembered: not asked again
    assert asked == []


def test_parallel_connections_ask_once_per_host(sshd: SshServer, tmp_path: Path) -> None:  # noqa: F811
    # The TUI answers from a modal while workers wait: one question per host, not per worker.
    asked: list[str] = []
    answered = threading.Event()

    def confirm(host: str, key_type: str, fingerprint: str) -> bool:
        asked.append(host)
        answered.wait(timeout=30)
        return True

    policy = HostKeyPolicy(tmp_path / "known_hosts", confirm=confirm)
    results: list[object] = []

    def worker() -> None:
        try:
            with connect(settings_for(sshd), policy=policy) as transport:
                results.append(transport.run(["true"]).ok)
        except TransportError as error:
            results.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    answered.set()
    for thread in threads:
        thread.join()
    assert results == [True] * 4
    assert asked == [f"[127.0.0.1]:{sshd.port}"]
    assert (tmp_path / "known_hosts").read_text().count("\n") == 1


def test_default_known_hosts_is_in_home(sshd: SshServer, empty_home: Path) -> None:  # noqa: F811
    with connect(settings_for(sshd), policy=HostKeyPolicy(accept_new=True)):
        pass
    saved = (empty_home / ".ssh" / "known_hosts").read_text()
    assert saved.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert oct((empty_home / ".ssh").stat().st_mode & 0o777) == "0o700"


# ----------------------------------------------------------------------------- auth & config


def host_entry(name: str, server: SshServer, *extra: str) -> str:
    """An ssh_config ``Host`` block that logs in to the test sshd as root with the client key."""
    lines = [f"Host {name}", "  HostName 127.0.0.1", f"  Port {server.port}", "  User root",
             f"  IdentityFile {server.client_key}", *(f"  {option}" for option in extra)]
    return "\n".join(lines) + "\n"


def test_ssh_config_alias_is_honoured(
    sshd: SshServer, policy: HostKeyPolicy, tmp_path: Path  # noqa: F811
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(host_entry("regwiz-test-alias", sshd))
    settings = ConnectionSettings(host="regwiz-test-alias", ssh_config=str(config))
    with open_transport(settings, host_key_policy=policy) as transport:
        assert transport.run(["whoami"]).stdout == "root\n"
        assert transport.name == "regwiz-test-alias"


def test_default_ssh_config_and_default_key_in_home(
    sshd: SshServer, policy: HostKeyPolicy, empty_home: Path  # noqa: F811
) -> None:
    ssh_dir = empty_home / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "id_ed25519").write_bytes(sshd.client_key.read_bytes())
    (ssh_dir / "id_ed25519").chmod(0o600)
    (ssh_dir / "config").write_text(f"Host lab-alias\n  HostName 127.0.0.1\n  Port {sshd.port}\n")
    with open_transport(ConnectionSettings(host="lab-alias", user="root"),
                        host_key_policy=policy) as transport:
        assert transport.run(["true"]).ok


def test_proxy_jump_through_a_jump_host(
    sshd: SshServer, policy: HostKeyPolicy, tmp_path: Path  # noqa: F811
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(host_entry("jumpbox", sshd) + host_entry("behind", sshd, "ProxyJump jumpbox"))
    with open_transport(ConnectionSettings(host="behind", ssh_config=str(config)),
                        host_key_policy=policy) as transport:
        assert isinstance(transport, SSHTransport)
        assert transport._jump is not None
        assert transport.run(["echo", "through"]).stdout == "through\n"


def test_jump_host_that_cannot_reach_the_target(
    sshd: SshServer, policy: HostKeyPolicy, tmp_path: Path  # noqa: F811
) -> None:
    config = tmp_path / "ssh_config"
    closed_port = free_port()
    config.write_text(
        host_entry("jumpbox", sshd)
        + f"Host nowhere\n  HostName 127.0.0.1\n  Port {closed_port}\n  ProxyJump jumpbox\n"
    )
    with pytest.raises(TransportError) as caught:
        open_transport(ConnectionSettings(host="nowhere", ssh_config=str(config)),
                       host_key_policy=policy)
    assert caught.value.kind == "unreachable"
    assert "jump host jumpbox" in caught.value.message
    assert f"127.0.0.1:{closed_port}" in caught.value.message


def test_looping_proxy_jump_is_refused(
    sshd: SshServer, policy: HostKeyPolicy, tmp_path: Path  # noqa: F811
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host loop\n  HostName 127.0.0.1\n  ProxyJump loop\n")
    with pytest.raises(TransportError) as caught:
        open_transport(ConnectionSettings(host="loop", ssh_config=str(config)),
                       host_key_policy=policy)
    assert "ProxyJump" in caught.value.message and caught.value.hint


def test_proxy_command_is_honoured(
    sshd: SshServer, policy: HostKeyPolicy, tmp_path: Path  # noqa: F811
) -> None:
    # The real OpenSSH client carries the stream (ssh -W), as a ProxyCommand usually does.
    config = tmp_path / "ssh_config"
    proxy = (f"ssh -q -i {sshd.client_key} -o UserKnownHostsFile={policy.path} "
             f"-o StrictHostKeyChecking=yes -o BatchMode=yes -p {sshd.port} -W %h:%p "
             "root@127.0.0.1")
    config.write_text(host_entry("via-command", sshd, f"ProxyCommand {proxy}"))
    with open_transport(ConnectionSettings(host="via-command", ssh_config=str(config)),
                        host_key_policy=policy) as transport:
        assert transport.run(["echo", "proxied"]).stdout == "proxied\n"


def test_key_with_passphrase(sshd: SshServer, policy: HostKeyPolicy) -> None:  # noqa: F811
    settings = settings_for(sshd, identity_file=str(sshd.passphrase_key))
    with pytest.raises(TransportError) as missing:
        connect(settings, ConnectionSecrets(), policy)
    assert missing.value.category == "auth" and missing.value.kind == "key-passphrase-needed"
    assert "passphrase" in missing.value.message
    with pytest.raises(TransportError) as wrong:
        connect(settings, ConnectionSecrets(key_passphrase="not it"), policy)
    assert wrong.value.category == "auth" and wrong.value.kind == "identity-file"
    assert "not it" not in str(wrong.value)
    with connect(settings, ConnectionSecrets(key_passphrase=KEY_PASSPHRASE), policy) as ok:
        assert ok.run(["true"]).ok


def test_ssh_agent_keys_are_used(
    sshd: SshServer, policy: HostKeyPolicy, tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)],
                             stdout=subprocess.DEVNULL)
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        wait_until(socket_path.exists, "ssh-agent creates its socket")
        subprocess.run(["ssh-add", "-q", str(sshd.client_key)], env=env, check=True,
                       capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        with connect(settings_for(sshd, identity_file=None), policy=policy) as transport:
            assert transport.run(["true"]).ok
    finally:
        agent.terminate()
        agent.wait()


def test_unauthorised_key_fails_auth(
    sshd: SshServer, policy: HostKeyPolicy, tmp_path: Path  # noqa: F811
) -> None:
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(TransportError) as caught:
        connect(settings_for(sshd, identity_file=str(stranger)), policy=policy)
    assert caught.value.category == "auth" and caught.value.kind == "login-refused"
    assert f"root@127.0.0.1:{sshd.port}" in caught.value.message
    assert caught.value.hint


def test_missing_identity_file(sshd: SshServer, policy: HostKeyPolicy) -> None:  # noqa: F811
    with pytest.raises(TransportError) as caught:
        connect(settings_for(sshd, identity_file="/no/such/key"), policy=policy)
    assert caught.value.category == "auth" and "/no/such/key" in caught.value.message
    assert caught.value.kind == "identity-file"


def test_refused_port_is_unreachable(policy: HostKeyPolicy) -> None:
    settings = ConnectionSettings(host="127.0.0.1", port=free_port(), ssh_config="")
    with pytest.raises(TransportError) as caught:
        connect(settings, policy=policy)
    assert caught.value.kind == "unreachable"
    assert "refused" in caught.value.message and "127.0.0.1" in caught.value.message


def test_silent_server_times_out_as_unreachable(policy: HostKeyPolicy) -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the TCP connection but never speaks SSH
        port = silent.getsockname()[1]
        settings = ConnectionSettings(host="127.0.0.1", port=port, ssh_config="",
                                      connect_timeout=1)
        with pytest.raises(TransportError) as caught:
            connect(settings, policy=policy)
    assert caught.value.kind == "unreachable"
    assert f"127.0.0.1:{port}" in caught.value.message


def test_secrets_never_show_in_repr() -> None:
    secrets = ConnectionSecrets(password="pw-1", key_passphrase="pp-2", sudo_password="sp-3")
    assert not {"pw-1", "pp-2", "sp-3"} & set(repr(secrets).replace("'", " ").split())
    assert "pw-1" not in repr(secrets)
