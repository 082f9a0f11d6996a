"""Faults around the registry deploy: dockerd stopped mid-deploy, a container that crashes on
start, the port taken, an expired or mis-SANed certificate, and registry data across
redeploy / renewal / CA rotation.

Each case uses its own container name, port, certs dir and data dir on the lab's registry
host, and uninstalls (with --purge) at the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import ipaddress
import json
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from app.certs import ensure_certificates
from app.cli import main
from app.connections import host_key_policy, open_registry_transport
from app.deploy import Deployment, DeployOptions
from app.plan import Secrets, load_plan
from app.steps import Outcome, StepResult, format_result, run_steps
from tests.deploy_helpers import push_tiny_image
from tests.faults.conftest import (
    install_temps,
    kill_sshd_mid_transfer,
    staged_leftovers,
)
from tests.lab.lab import Lab, LabHost, port_for, process_alive
from tests.lab.plans import registry_plan_text


@dataclass
class Env:
    lab: Lab
    host: LabHost
    plan_path: Path
    known_hosts: Path
    name: str
    port: int

    @property
    def certs_dir(self) -> str:
        return f"/etc/docker/{self.name}-certs"

    @property
    def data_dir(self) -> str:
        return f"/registry-image/{self.name}"

    @property
    def address(self) -> str:
        return f"{self.host.ip}:{self.port}"

    @property
    def cert_dir(self) -> Path:
        return self.plan_path.parent / "certs"

    @property
    def ca_path(self) -> Path:
        return self.cert_dir / "ca.crt"

    def write_plan(self, **registry: object) -> None:
        self.plan_path.write_text(registry_plan_text(
            self.host, certificate={"common_name": "registry.faults.internal"}, port=self.port,
            container_name=self.name, data_dir=self.data_dir, certs_dir=self.certs_dir,
            **registry))

    def cli(self, capsys: pytest.CaptureFixture[str], command: str, *extra: str) -> tuple[
            int, str]:
        capsys.readouterr()
        ssh = [] if command == "certs" else ["--known-hosts", str(self.known_hosts)]
        code = main([command, "--plan", str(self.plan_path), *ssh, *extra])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    def container_id(self) -> str | None:
        found = self.host.exec(["docker", "inspect", "-f", "{{.Id}}", self.name], check=False)
        return found.stdout.decode().strip() if found.returncode == 0 else None

    def remote(self, name: str) -> bytes | None:
        path = self.host.host_path(f"{self.certs_dir}/{name}")
        return path.read_bytes() if path.exists() else None

    def v2_status(self) -> int | None:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        try:
            conn = http.client.HTTPSConnection(self.host.ip, self.port, context=context,
                                               timeout=5)
            conn.request("GET", "/v2/")
            return conn.getresponse().status
        except OSError:
            return None


@pytest.fixture
def env(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    name = "rwfault-" + request.node.name.removeprefix("test_").replace("_", "-")[:24]
    port = port_for(name)
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(lab.known_hosts, known_hosts)
    made = Env(lab, lab["registry"], tmp_path / "plan.toml", known_hosts, name, port)
    made.write_plan()
    assert main(["certs", "--plan", str(made.plan_path)]) == 0
    yield made
    main(["uninstall", "--plan", str(made.plan_path), "--known-hosts", str(known_hosts),
          "--purge", "--yes"])
    made.host.exec(["docker", "rm", "-f", name], check=False)
    made.host.exec(["rm", "-rf", made.certs_dir, made.data_dir], check=False)


def _deploy_with_fault(env: Env, before: str, fault: Callable[[], None],
                       health_timeout: float = 30.0) -> list[StepResult]:
    """Run the real deploy steps; `fault` runs just before the step whose name starts with
    `before`."""
    plan = load_plan(env.plan_path)
    policy = host_key_policy(False, known_hosts=env.known_hosts)
    secrets = Secrets()
    options = DeployOptions(health_timeout=health_timeout)
    with Deployment(plan, secrets, options,
                    connect=lambda: open_registry_transport(plan, secrets, policy)) as deploy:
        steps = deploy.steps()
        target = next(s for s in steps if s.what.startswith(before))
        original = target.run

        def faulty() -> Outcome:
            fault()
            return original()

        target.run = faulty
        return run_steps(steps)


def _failure(results: list[StepResult]) -> StepResult:
    failed = [r for r in results if r.outcome is Outcome.FAILED]
    assert len(failed) == 1, results
    return failed[0]


def _assert_clean_certs_dir(env: Env) -> None:
    """Only the files deploy puts there, complete, and no temp file."""
    assert install_temps(env.host, env.certs_dir) == []
    present = sorted(p.name for p in env.host.host_path(env.certs_dir).iterdir())
    assert present == ["tls.crt", "tls.key"]
    assert env.remote("tls.crt") == (env.cert_dir / "tls.crt").read_bytes()
    assert env.remote("tls.key") == (env.cert_dir / "tls.key").read_bytes()


# --------------------------------------------------------------------------- dockerd stopped


def test_dockerd_stopped_during_deploy(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    docker_pid = env.host.daemon_pid("docker")
    try:
        results = _deploy_with_fault(env, "Run container",
                                     lambda: env.host.stop_daemon("docker"))
        failed = _failure(results)
        assert failed.what.startswith("Run container")
        line = format_result(failed)
        assert env.host.ip in line
        assert "docker" in failed.message.lower(), failed
        assert docker_pid is not None and not process_alive(docker_pid)
    finally:
        env.host.start_daemon("docker")
    assert env.container_id() is None  # nothing half-created
    _assert_clean_certs_dir(env)
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert env.v2_status() == 200


# --------------------------------------------------------------------------- sshd killed


def _deploy_killing_sshd_during_key_upload(env: Env) -> list[StepResult]:
    """A real deploy; the registry host's sshd (and every session) is killed halfway through
    the upload of tls.key."""
    plan = load_plan(env.plan_path)
    policy = host_key_policy(False, known_hosts=env.known_hosts)
    key = (env.cert_dir / "tls.key").read_bytes()
    with kill_sshd_mid_transfer(env.host, key, env.certs_dir) as kill, Deployment(
            plan, Secrets(), connect=lambda: open_registry_transport(plan, Secrets(), policy)
    ) as deploy:
        results = run_steps(deploy.steps())
    assert kill.fired, "the tls.key upload was never seen: the hook needs updating"
    assert kill.transfer_started, "sshd was killed before the upload began on the host"
    return results


def test_sshd_killed_while_uploading_the_server_key(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = _failure(_deploy_killing_sshd_during_key_upload(env))
    _remove_staged((env.cert_dir / "tls.key").read_bytes())
    assert failed.what.startswith("Upload tls.crt and tls.key")
    assert env.host.ip in format_result(failed) and env.host.ip in failed.message
    assert "bug" not in (failed.hint or ""), failed
    assert install_temps(env.host, env.certs_dir) == []
    assert env.remote("tls.key") is None  # never a partial key in certs_dir
    assert env.container_id() is None
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert env.v2_status() == 200
    _assert_clean_certs_dir(env)


def test_no_staged_private_key_survives_a_killed_connection(env: Env) -> None:
    """Uploads are staged in /tmp/.regwiz-<random>/content and cleaned up over the same SFTP
    channel; when sshd dies mid-upload the cleanup cannot run and the first half of tls.key
    stays in /tmp on the registry host, outside certs_dir, until someone deletes it."""
    key = (env.cert_dir / "tls.key").read_bytes()
    try:
        _deploy_killing_sshd_during_key_upload(env)
        assert staged_leftovers(key) == [], "part of tls.key was left in /tmp on the host"
    finally:
        _remove_staged(key)


def _remove_staged(content: bytes) -> None:
    for staged in staged_leftovers(content):
        shutil.rmtree(staged.parent, ignore_errors=True)


# --------------------------------------------------------------------------- container crash


def test_registry_container_crashing_on_start(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    key = env.host.host_path(f"{env.certs_dir}/tls.key")

    def damage_key() -> None:  # what the registry reads at start: not a key any more
        key.write_bytes(b"this is not a PEM key\n")

    results = _deploy_with_fault(env, "Run container", damage_key, health_timeout=8)
    failed = _failure(results)
    line = format_result(failed)
    assert env.host.ip in line
    assert "did not answer" in failed.message
    assert "container log" in failed.message and "key" in failed.message.lower(), failed
    assert "docker logs" in (failed.hint or "") or "container" in (failed.hint or "")
    assert install_temps(env.host, env.certs_dir) == []

    code, out = env.cli(capsys, "deploy")  # the key is put back: the registry must come up
    assert code == 0, out
    assert env.v2_status() == 200
    _assert_clean_certs_dir(env)


# --------------------------------------------------------------------------- port taken


# What holds the port inside the registry host: a foreign service listening on it, or an
# outgoing connection the kernel gave it as its source port (here: to the host's own sshd).
# Either makes Docker's bind fail; the second is invisible to a check of listeners alone.
PORT_HOLDERS = {
    "listener": "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                "s.bind(('0.0.0.0', {port})); s.listen()",
    # SO_LINGER 0: killed, it resets the connection and leaves no TIME-WAIT holding the port
    "outgoing-connection": "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, "
                           "struct.pack('ii', 1, 0)); "
                           "s.bind(('{ip}', {port})); s.connect(('{ip}', 22))",
}


@pytest.mark.parametrize("holder", sorted(PORT_HOLDERS))
def test_port_taken_on_the_registry_host(
    env: Env, capsys: pytest.CaptureFixture[str], holder: str
) -> None:
    hold = PORT_HOLDERS[holder].format(ip=env.host.ip, port=env.port)
    holding = subprocess.Popen(
        ["nsenter", "-t", str(env.host.pid), "-n", "-m", "--", "python3", "-c",
         f"import socket,struct,time; s=socket.socket(); {hold}; print('ok', flush=True); "
         "time.sleep(600)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holding.stdout is not None and holding.stdout.readline() == b"ok\n"
        code, out = env.cli(capsys, "deploy")
        assert code == 1
        assert f"port {env.port} on {env.host.ip} is already in use" in out, out
        assert env.container_id() is None
        assert not env.host.host_path(env.certs_dir).exists()  # preflight: nothing uploaded
        assert not env.host.host_path(env.data_dir).exists()
    finally:
        holding.kill()
        holding.wait()
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert env.v2_status() == 200


def test_a_port_the_kernel_may_give_outgoing_connections_is_noted_unless_reserved(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    # the lab host's own network namespace has its own port range and reserved ports
    first, last = map(int, env.host.exec(
        ["cat", "/proc/sys/net/ipv4/ip_local_port_range"]).stdout.split())
    env.port = first + 1000
    env.write_plan()  # (the certificate names the host, not the port: it stays valid)
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert (f"note: port {env.port} on {env.host.ip} lies in the range this host gives "
            f"outgoing connections ({first}-{last})") in out, out
    before = env.host.exec(["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"]).stdout
    env.host.exec(["sh", "-c", f"echo {env.port} > /proc/sys/net/ipv4/ip_local_reserved_ports"])
    try:
        code, out = env.cli(capsys, "deploy")
        assert code == 0, out
        assert "note: port" not in out, out
    finally:
        env.host.exec(["sh", "-c", 'echo "$1" > /proc/sys/net/ipv4/ip_local_reserved_ports',
                       "sh", before.decode().strip()])


# --------------------------------------------------------------------------- certificates


def _leaf_signed_by_plan_ca(env: Env, *, sans: list[str], expired: bool) -> bytes:
    ca_cert = x509.load_pem_x509_certificate(env.ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key((env.cert_dir / "ca.key").read_bytes(), None)
    key = serialization.load_pem_private_key((env.cert_dir / "tls.key").read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(s)) for s in sans]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("problem", ["expired", "sans-without-address"])
def test_bad_certificate_is_refused_and_the_running_registry_is_untouched(
    env: Env, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    container, served = env.container_id(), env.remote("tls.crt")
    if problem == "expired":
        bad, cause = _leaf_signed_by_plan_ca(env, sans=[env.host.ip], expired=True), "expired"
    else:
        bad = _leaf_signed_by_plan_ca(env, sans=["198.18.255.254"], expired=False)
        cause = f"no IP SAN {env.host.ip}"
    (env.cert_dir / "tls.crt").write_bytes(bad)

    code, out = env.cli(capsys, "deploy")
    assert code == 1
    assert cause in out and env.host.ip in out, out
    assert env.container_id() == container and env.remote("tls.crt") == served
    assert env.v2_status() == 200  # still serving the previous, valid certificate

    code, out = env.cli(capsys, "certs")  # regwiz reissues what no longer fits the plan
    assert code == 0, out
    assert (env.cert_dir / "tls.crt").read_bytes() != bad
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert env.container_id() != container
    assert env.remote("tls.crt") == (env.cert_dir / "tls.crt").read_bytes()
    assert env.v2_status() == 200
    _assert_clean_certs_dir(env)


# --------------------------------------------------------------------------- data survives


def _pull(env: Env, repository: str, tag: str) -> str:
    """Pull a manifest and every blob with Python trusting only the plan's current CA; check
    each blob's digest; return the manifest digest."""
    context = ssl.create_default_context(cafile=str(env.ca_path))

    def get(path: str, accept: str = "*/*") -> tuple[bytes, str]:
        conn = http.client.HTTPSConnection(env.host.ip, env.port, context=context, timeout=10)
        conn.request("GET", path, headers={"Accept": accept})
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == 200, (path, answer.status)
        return body, answer.getheader("Docker-Content-Digest") or ""

    manifest, digest = get(f"/v2/{repository}/manifests/{tag}",
                           "application/vnd.oci.image.manifest.v1+json")
    assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    parsed = json.loads(manifest)
    for blob in [parsed["config"], *parsed["layers"]]:
        data, _ = get(f"/v2/{repository}/blobs/{blob['digest']}")
        assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]
    return digest


def test_registry_data_survives_redeploy_renewal_and_ca_rotation(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    base = f"https://{env.address}"
    images = {(f"faults/app{i}", f"v{i}"): "" for i in range(3)}
    for repo, tag in images:
        images[(repo, tag)] = push_tiny_image(base, env.ca_path, repo, tag)

    def all_pull_unchanged(stage: str) -> None:
        for (repo, tag), digest in images.items():
            assert _pull(env, repo, tag) == digest, f"{repo}:{tag} after {stage}"

    all_pull_unchanged("first deploy")
    containers = [env.container_id()]

    env.write_plan(delete_enabled=True)  # a settings change: the container is recreated
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    containers.append(env.container_id())
    all_pull_unchanged("redeploy with changed settings")

    old_leaf = (env.cert_dir / "tls.crt").read_bytes()
    code, out = env.cli(capsys, "certs", "--renew")
    assert code == 0, out
    assert (env.cert_dir / "tls.crt").read_bytes() != old_leaf
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    containers.append(env.container_id())
    all_pull_unchanged("certificate renewal")

    old_ca = env.ca_path.read_bytes()
    code, out = env.cli(capsys, "certs", "--new-ca")
    assert code == 0, out
    assert env.ca_path.read_bytes() != old_ca
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    containers.append(env.container_id())
    all_pull_unchanged("CA rotation")
    assert len(set(containers)) == 4, "each change must recreate the container"
    plan = load_plan(env.plan_path)
    assert ensure_certificates(plan).ca_action == "reused"
    stored = env.host.exec(["find", env.data_dir, "-type", "f", "-name", "data"]).stdout
    assert len(stored.split()) >= 9  # 3 manifests + 3 configs + 3 layers, never cleaned



# --------------------------------------------------------------------------- registry disk


def test_registry_host_disk_too_full_for_the_data_dir(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """data_dir on a nearly full filesystem (a 4 MiB tmpfs in the registry host's mount
    namespace): the free-space preflight refuses before anything is uploaded or started."""
    env.host.exec(["mkdir", "-p", env.data_dir])
    env.host.exec(["mount", "-t", "tmpfs", "-o", "size=4m", "regwiz-fault", env.data_dir])
    try:
        code, out = env.cli(capsys, "deploy")
        assert code == 1
        assert f"MiB free for {env.data_dir} on {env.host.ip}" in out, out
        assert env.container_id() is None
        assert not env.host.host_path(env.certs_dir).exists()
    finally:
        env.host.exec(["umount", env.data_dir])
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert env.v2_status() == 200
    _assert_clean_certs_dir(env)
