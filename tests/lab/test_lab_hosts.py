"""The lab's own contract, as other tests rely on it: private files per host, sudo rules,
the systemctl stand-in, daemon control, host key replacement and many sshd nodes."""

from __future__ import annotations

import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest

from tests.lab.lab import Lab, LabHost, cgroup2_root, process_alive
from tests.lab.ssh_helpers import ssh_connect, ssh_run
from tests.polling import poll_until


def test_private_dirs_are_private_per_host(lab: Lab) -> None:
    marker = "/etc/docker/certs.d/lab-privacy-check/marker"
    docker, registry = lab["docker"], lab["registry"]
    docker.exec(["sh", "-c", f"mkdir -p {marker.rsplit('/', 1)[0]} && echo hi > {marker}"])
    try:
        assert docker.host_path(marker).read_text() == "hi\n"
        assert registry.exec(["test", "-e", marker], check=False).returncode == 1
        assert not registry.host_path(marker).exists()
    finally:
        docker.exec(["rm", "-rf", "/etc/docker/certs.d/lab-privacy-check"])


def test_each_host_has_its_own_address_and_no_route_elsewhere(lab: Lab) -> None:
    plain = lab["plain"]
    addrs = plain.exec(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout.decode()
    assert f" {plain.ip}/24 " in addrs
    routes = plain.exec(["ip", "-4", "route"]).stdout.decode()
    assert "default" not in routes  # traffic can only reach the lab subnet


def test_sudo_rules_per_user(lab: Lab) -> None:
    deploy = ssh_connect(lab["registry"])
    ops_host = lab["containerd"]
    ops = ssh_connect(ops_host)
    try:
        assert ssh_run(deploy, "sudo -n id -u") == (0, "0\n")
        assert ssh_run(deploy, "docker info --format '{{.Driver}}'") == (0, "vfs\n")
        status, out = ssh_run(ops, "sudo -n id -u")
        assert status != 0 and "password is required" in out
        assert ops_host.sudo_password is not None
        password = f"{ops_host.sudo_password}\n".encode()
        assert ssh_run(ops, "sudo -S -p '' id -u", stdin=password) == (0, "0\n")
        status, out = ssh_run(ops, "sudo -S -p '' id -u", stdin=b"wrong-password\n")
        assert status != 0
    finally:
        deploy.close()
        ops.close()


def test_password_login_for_rwops(lab: Lab) -> None:
    host = lab["containerd"]
    assert host.password is not None
    client = ssh_connect(host, password=host.password)
    try:
        assert ssh_run(client, "id -un") == (0, "rwops\n")
    finally:
        client.close()
    with pytest.raises(paramiko.AuthenticationException):
        ssh_connect(host, password="not-the-password")


def test_systemctl_standin_really_restarts_containerd_over_ssh(lab: Lab) -> None:
    host = lab["containerd"]
    before = host.daemon_pid("containerd")
    assert before is not None
    assert host.sudo_password is not None
    client = ssh_connect(host)
    try:
        status, out = ssh_run(client, "sudo -S -p '' systemctl restart containerd",
                              stdin=f"{host.sudo_password}\n".encode())
        assert status == 0, out
        assert ssh_run(client, "systemctl is-active containerd") == (0, "active\n")
        assert ssh_run(client, "systemctl is-active docker") == (3, "inactive\n")
        status, out = ssh_run(client, "sudo -S -p '' systemctl restart k3s",
                              stdin=f"{host.sudo_password}\n".encode())
        assert status == 5 and "not found" in out
    finally:
        client.close()
    after = host.daemon_pid("containerd")
    assert after is not None and after != before
    host.exec(["ctr", "--address", "/run/containerd/containerd.sock", "version"])


def test_stop_and_start_daemon(lab: Lab) -> None:
    host = lab["bare"]
    host.stop_daemon("containerd")
    try:
        assert host.daemon_pid("containerd") is None
        stopped = host.exec(["ctr", "--connect-timeout", "1s", "version"], check=False)
        assert stopped.returncode != 0
    finally:
        host.start_daemon("containerd")
    assert host.daemon_pid("containerd") is not None
    host.exec(["ctr", "version"])


def test_dockerd_restart_keeps_restart_always_containers(lab: Lab) -> None:
    host = lab["docker"]
    host.exec(["docker", "run", "-d", "--restart=always", "--stop-timeout", "1",
               "--name", "lab-restart-check", "regwiz-lab/busybox:latest", "sleep", "600"])
    try:
        host.stop_daemon("docker")
        assert host.docker_socket is not None and not host.docker_socket.exists()
        host.start_daemon("docker")
        running = host.exec(["docker", "inspect", "--format", "{{.State.Running}}",
                             "lab-restart-check"]).stdout
        assert running.strip() == b"true"
    finally:
        host.exec(["docker", "rm", "-f", "lab-restart-check"], check=False)


@pytest.fixture(scope="module")
def nodes(lab: Lab) -> list[LabHost]:
    """30 sshd-only nodes (reused if this lab already has them)."""
    return lab.sshd_nodes(30)


def test_thirty_sshd_nodes_take_sudo_writes_in_parallel(nodes: list[LabHost]) -> None:
    def write_with_sudo(host: LabHost) -> tuple[str, str]:
        client = ssh_connect(host)
        try:
            ssh_run(client, "sudo -n tee /etc/containers/lab-node-check >/dev/null",
                    stdin=host.name.encode())
        finally:
            client.close()
        return host.name, host.host_path("/etc/containers/lab-node-check").read_text()

    try:
        with ThreadPoolExecutor(max_workers=30) as pool:
            results = list(pool.map(write_with_sudo, nodes))
        assert results == [(h.name, h.name) for h in nodes]
    finally:
        for host in nodes:
            host.host_path("/etc/containers/lab-node-check").unlink(missing_ok=True)


def test_replaced_host_key_is_rejected_until_known_hosts_is_rewritten(
    lab: Lab, nodes: list[LabHost]
) -> None:
    host = nodes[-1]
    old = host.host_key_fingerprint()
    try:
        new = host.replace_host_key()
        assert new != old and new.startswith("SHA256:")
        with pytest.raises(paramiko.BadHostKeyException):
            ssh_connect(host)
    finally:
        lab.write_known_hosts()
    ssh_connect(host).close()


def test_stopped_sshd_refuses_connections(nodes: list[LabHost]) -> None:
    host = nodes[0]
    host.stop_sshd()
    try:
        with pytest.raises(OSError):
            ssh_connect(host)
    finally:
        host.start_sshd()
    ssh_connect(host).close()


def leftovers(other: Lab) -> list[str]:
    """Everything of lab `other` still visible on the machine."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines()
              if line.startswith(other.netns_prefix)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
              if line.split(":")[1].strip().split("@")[0] in (other.bridge,)
              or line.split(":")[1].strip().startswith(f"rwl{other.lab_id}h")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if str(other.state_dir).encode() + b"/" in cmdline:
                found.append(f"process {proc.name}: {cmdline[:80]!r}")
    mounts = Path("/proc/self/mounts").read_text()
    found += [f"mount {m}" for m in mounts.split() if m.startswith(str(other.state_dir))]
    found += [f"path {p}" for p in (other.state_dir, cgroup2_root() / other.cgroup) if p.exists()]
    return found


def test_a_second_lab_runs_alongside_and_down_after_a_crash_leaves_nothing(lab: Lab) -> None:
    other = Lab(lab_id=100 + lab.lab_id)  # ids >= 100 are left to tests like this one
    try:
        other.up()
        other.add_sshd_nodes(2)
        assert leftovers(other)  # sanity: the probe does see a running lab
        client = ssh_connect(other["docker"])
        try:
            assert ssh_run(client, "docker ps -q") == (0, "")
        finally:
            client.close()
        ssh_connect(lab["docker"]).close()  # the session's lab is unaffected
        # A crashed run: nothing remembered, no state file.
        (other.state_dir / "lab.json").unlink()
    finally:
        Lab(lab_id=other.lab_id).down()
    assert leftovers(other) == []


def test_sshd_killed_hard_starts_again(nodes: list[LabHost]) -> None:
    host = nodes[1]
    pid = host.daemon_pid("sshd")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert poll_until(lambda: not process_alive(pid), timeout=10)
    assert host.daemon_pid("sshd") is None
    host.start_sshd()  # its pid file is stale now
    new_pid = host.daemon_pid("sshd")
    assert new_pid is not None and new_pid != pid
    ssh_connect(host).close()
