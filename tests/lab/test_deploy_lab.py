"""Deploy acceptance on the lab: real sshd, real dockerd, real registry, real docker push/pull.

Every test uses its own container name, port, certs dir and data dir (all private to the lab's
registry host) and uninstalls at the end, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import shutil
import ssl
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from app import registry_api
from app.cli import main
from app.connections import host_key_policy
from app.deploy import Deployment, DeployOptions
from app.plan import Secrets, load_plan
from app.transport.factory import open_transport
from tests.lab.lab import BUSYBOX_IMAGE, REGISTRY_IMAGE, Lab, LabHost, port_for
from tests.lab.plans import registry_plan_text
from tests.lab.trust import https_status


@dataclass
class Setup:
    plan_path: Path
    known_hosts: Path
    host: LabHost
    name: str
    port: int
    certs_dir: str
    data_dir: str

    @property
    def address(self) -> str:
        return f"{self.host.ip}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        return (self.plan_path.parent / "certs" / "ca.crt").read_bytes()

    def cli(self, *extra: str) -> int:
        return main([extra[0], "--plan", str(self.plan_path), "--known-hosts",
                     str(self.known_hosts), *extra[1:]])

    def container(self) -> dict[str, object] | None:
        found = self.host.exec(["docker", "inspect", self.name], check=False)
        return json.loads(found.stdout)[0] if found.returncode == 0 else None

    def rewrite(self, **registry: object) -> None:
        self.plan_path.write_text(plan_text(self, **registry))


def plan_text(setup: Setup, **overrides: object) -> str:
    own = {"port": setup.port, "container_name": setup.name, "data_dir": setup.data_dir,
           "certs_dir": setup.certs_dir}
    return registry_plan_text(
        setup.host, certificate={"common_name": "registry.lab.internal", "country": "KR"},
        **(own | overrides))


@pytest.fixture
def setup(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Setup]:
    """A plan for a fresh registry on the lab's registry host; uninstalled (and purged) after."""
    name = "rw-" + request.node.name.removeprefix("test_").replace("_", "-")[:30]
    port = port_for(name)
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(lab.known_hosts, known_hosts)
    made = Setup(tmp_path / "plan.toml", known_hosts, lab["registry"], name, port,
                 f"/etc/docker/{name}-certs", f"/registry-image/{name}")
    made.rewrite()
    assert main(["certs", "--plan", str(made.plan_path)]) == 0
    yield made
    shutil.copy(lab.known_hosts, known_hosts)
    main(["uninstall", "--plan", str(made.plan_path), "--known-hosts", str(known_hosts),
          "--purge", "--yes"])
    made.host.exec(["docker", "rm", "-f", name], check=False)
    made.host.exec(["rm", "-rf", made.certs_dir, made.data_dir], check=False)


def get_v2(address: str, ca_pem: bytes, auth: tuple[str, str] | None = None) -> int:
    """Plain Python, trusting only our CA: the status of GET /v2/."""
    return https_status(f"https://{address}/v2/", ca_pem, auth)


def trust_on(host: LabHost, address: str, ca_pem: bytes) -> None:
    target = host.host_path(f"/etc/docker/certs.d/{address}/ca.crt")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(ca_pem)


def outcomes(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()
            if line.split() and line.split()[0] in ("changed", "unchanged", "failed", "skipped")]


# --------------------------------------------------------------------------- acceptance


def test_deploy_as_sudo_user_then_again_unchanged(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.cli("deploy") == 0, capsys.readouterr()
    first = capsys.readouterr().out
    assert "failed" not in outcomes(first)
    assert get_v2(setup.address, setup.ca_pem) == 200
    container = setup.container()
    assert container is not None
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "always"  # type: ignore[index]
    key = setup.host.exec(["stat", "-c", "%U %a", f"{setup.certs_dir}/tls.key"]).stdout.split()
    assert key == [b"root", b"600"]
    # the registry host's own Docker trusts the CA, so pushes from it use verified TLS
    trusted = setup.host.exec(["cat", f"/etc/docker/certs.d/{setup.address}/ca.crt"]).stdout
    assert trusted == setup.ca_pem

    assert setup.cli("deploy") == 0
    second = capsys.readouterr().out
    assert outcomes(second) and set(outcomes(second)) == {"unchanged"}, second
    again = setup.container()
    assert again is not None and again["Id"] == container["Id"]
    assert again["State"]["StartedAt"] == container["State"]["StartedAt"]  # type: ignore[index]


def test_port_change_recreates_container_and_keeps_images(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.cli("deploy") == 0, capsys.readouterr()
    first_id = setup.container()["Id"]  # type: ignore[index]
    ref = f"{setup.address}/lab/busybox:kept"
    trust_on(setup.host, setup.address, setup.ca_pem)
    setup.host.exec(["docker", "tag", BUSYBOX_IMAGE, ref])
    setup.host.exec(["docker", "push", ref], timeout=120)
    ca = setup.plan_path.parent / "certs" / "ca.crt"
    digest = registry_api.manifest_digest(f"https://{setup.address}", ca, "lab/busybox", "kept")
    assert digest and digest.startswith("sha256:")

    old_address, setup.port = setup.address, setup.port + 1
    setup.rewrite()
    assert setup.cli("deploy") == 0, capsys.readouterr()
    output = capsys.readouterr().out
    assert f"changed  [{setup.host.ip}] Run container {setup.name}" in output
    assert setup.container()["Id"] != first_id  # type: ignore[index]
    assert registry_api.ping(f"https://{old_address}", ca).status is None
    assert registry_api.manifest_digest(
        f"https://{setup.address}", ca, "lab/busybox", "kept") == digest

    new_ref = f"{setup.address}/lab/busybox:kept"
    trust_on(setup.host, setup.address, setup.ca_pem)
    setup.host.exec(["docker", "rmi", ref])
    setup.host.exec(["docker", "pull", new_ref], timeout=120)
    pulled = setup.host.exec(["docker", "image", "inspect", "--format",
                              "{{json .RepoDigests}}", new_ref]).stdout
    assert f"{setup.address}/lab/busybox@{digest}" in json.loads(pulled)
    setup.host.exec(["docker", "rmi", new_ref], check=False)
    setup.host.exec(["rm", "-rf", f"/etc/docker/certs.d/{old_address}",
                     f"/etc/docker/certs.d/{setup.address}"])


def test_renewed_certificate_recreates_the_container(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.cli("deploy") == 0, capsys.readouterr()
    first_id = setup.container()["Id"]  # type: ignore[index]
    setup.host.exec(["touch", f"{setup.data_dir}/marker"])
    assert main(["certs", "--plan", str(setup.plan_path), "--renew"]) == 0
    capsys.readouterr()
    assert setup.cli("deploy") == 0
    out = capsys.readouterr().out
    assert f"changed  [{setup.host.ip}] Upload tls.crt and tls.key" in out
    assert f"changed  [{setup.host.ip}] Run container {setup.name}" in out
    container = setup.container()
    assert container is not None and container["Id"] != first_id
    served = ssl.get_server_certificate((setup.host.ip, setup.port))
    local = (setup.plan_path.parent / "certs" / "tls.crt").read_text()
    assert served.split("-----")[2].split() == local.split("-----")[2].split()
    assert setup.host.exec(["test", "-e", f"{setup.data_dir}/marker"]).returncode == 0


def test_a_san_added_to_the_plan_is_never_served_stale(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.plan import save_plan

    assert setup.cli("deploy") == 0, capsys.readouterr()
    plan = load_plan(setup.plan_path)
    plan.certificate.subject_alt_names.append("mirror.lab.internal")
    save_plan(plan)
    capsys.readouterr()
    # Before: the registry serves the old certificate, and status says so.
    assert setup.cli("status", "--no-nodes") == 1
    status = capsys.readouterr().out
    assert "out of date with the plan:" in status
    assert "SAN mirror.lab.internal is in the plan but not in the certificate" in status
    # Deploy refuses to ship the certificate on disk, which no longer matches the plan.
    assert setup.cli("deploy") == 1
    refused = capsys.readouterr().out
    assert "differs from the plan: SAN mirror.lab.internal" in refused
    assert f"skipped  [{setup.host.ip}] Connect" in refused
    # Reissued, then deployed: the registry serves the new SAN (read with openssl).
    assert main(["certs", "--plan", str(setup.plan_path)]) == 0
    assert setup.cli("deploy") == 0, capsys.readouterr()
    capsys.readouterr()
    served = subprocess.run(
        ["openssl", "s_client", "-connect", f"{setup.host.ip}:{setup.port}", "-showcerts"],
        input=b"", capture_output=True, timeout=30).stdout
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                          input=served, capture_output=True, timeout=30).stdout.decode()
    assert "DNS:mirror.lab.internal" in text, text
    setup.cli("status", "--no-nodes")
    assert "out of date" not in capsys.readouterr().out


def test_unknown_host_key_refused_and_nothing_changed(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.known_hosts.write_text("")
    assert setup.cli("deploy") == 1
    out = capsys.readouterr().out
    assert "host key of" in out and "is not known" in out and "SHA256:" in out
    assert "--accept-new-host-keys" in out
    assert setup.container() is None
    assert setup.host.exec(["test", "-e", setup.certs_dir], check=False).returncode != 0
    assert setup.known_hosts.read_text() == ""


def test_replaced_host_key_refused_with_both_fingerprints(
    lab: Lab, setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    old = setup.host.host_key_fingerprint()
    try:
        new = setup.host.replace_host_key()
        assert setup.cli("deploy", "--accept-new-host-keys") == 1
    finally:
        lab.write_known_hosts()  # the lab's own file follows the new key for later tests
    out = capsys.readouterr().out
    assert "CHANGED" in out and old in out and new in out
    assert setup.container() is None


def test_air_gapped_host_gets_the_image_from_a_tar_and_from_local_docker(
    lab: Lab, setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry host lacks the plan's image and cannot pull (no route out of the lab).
    The image is registry:2 under a name only the donor (the lab's docker host) has, so other
    containers using registry:2 on the registry host are never disturbed."""
    registry, donor = setup.host, lab["docker"]
    image = f"regwiz-lab/{setup.name}:copy"
    donor_url = f"unix://{donor.docker_socket}"
    client = docker.DockerClient(base_url=donor_url)
    tar = tmp_path / "registry.tar"
    try:
        client.images.get(REGISTRY_IMAGE).tag(image)
        with open(tar, "wb") as out:
            for chunk in client.images.get(image).save(named=image):
                out.write(chunk)
        assert registry.exec(["docker", "image", "inspect", image], check=False).returncode
        setup.rewrite(image=image)
        assert setup.cli("deploy", "--image-tar", str(tar)) == 0, capsys.readouterr()
        output = capsys.readouterr().out
        assert f"changed  [{registry.ip}] Make image {image} available" in output
        assert get_v2(setup.address, setup.ca_pem) == 200

        # Second way in: no tar, the image copied from "this machine's" Docker (DOCKER_HOST).
        assert setup.cli("uninstall") == 0
        registry.exec(["docker", "rmi", image])
        monkeypatch.setenv("DOCKER_HOST", donor_url)
        assert setup.cli("deploy") == 0, capsys.readouterr()
        assert f"changed  [{registry.ip}] Make image {image} available" in capsys.readouterr().out
        assert get_v2(setup.address, setup.ca_pem) == 200
    finally:
        setup.cli("uninstall")
        registry.exec(["docker", "rmi", image], check=False)
        client.images.remove(image)
        client.close()


def test_missing_image_without_any_source_fails_with_a_hint(
    lab: Lab, setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup.rewrite(image="regwiz-lab/not-there:1")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    other = tmp_path / "other.tar"  # an archive of some other image
    client = docker.DockerClient(base_url=f"unix://{lab['docker'].docker_socket}")
    other.write_bytes(b"".join(client.images.get(BUSYBOX_IMAGE).save(named=BUSYBOX_IMAGE)))
    client.close()
    assert setup.cli("deploy", "--image-tar", str(other)) == 1
    out = capsys.readouterr().out
    assert "regwiz-lab/not-there:1 is not on" in out and "--image-tar" in out
    assert f"{other} holds {BUSYBOX_IMAGE}, not regwiz-lab/not-there:1" in out
    assert "pull failed" in out and "copy from this machine's Docker failed" not in out
    assert "no Docker on this machine" in out
    assert setup.container() is None


def test_port_taken_by_another_process_fails_before_any_change(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    listener = subprocess.Popen(
        ["nsenter", "-t", str(setup.host.pid), "-m", "-n", "python3", "-c",
         "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
         "socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(); "
         "print('ok', flush=True); s.accept()", str(setup.port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline() == b"ok\n"
        assert setup.cli("deploy") == 1
    finally:
        listener.kill()
        listener.wait()
    out = capsys.readouterr().out
    assert f"port {setup.port} on {setup.host.ip} is already in use" in out
    assert "python3" in out  # ss -p names the process (via sudo)
    assert setup.container() is None
    assert setup.host.exec(["test", "-e", setup.certs_dir], check=False).returncode != 0
    assert setup.host.exec(["test", "-e", setup.data_dir], check=False).returncode != 0


def test_htpasswd_mode_needs_the_saved_credentials(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 11: passwords are never shown; the accounts' files keep them, and the legacy
    # --credentials-file (when it does not exist yet) gets the operator's login
    setup.rewrite(auth="htpasswd")
    creds = tmp_path / "creds" / "registry.json"
    assert setup.cli("deploy", "--credentials-file", str(creds)) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    saved = json.loads(creds.read_text())
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert saved["username"] == "operator"
    assert out.count(saved["password"]) == 0  # never shown (issue 11; it was shown once)
    assert get_v2(setup.address, setup.ca_pem) == 401
    assert get_v2(setup.address, setup.ca_pem, (saved["username"], "wrong")) == 401
    assert get_v2(setup.address, setup.ca_pem, (saved["username"], saved["password"])) == 200
    file_mode = setup.host.exec(["stat", "-c", "%U %a", f"{setup.certs_dir}/htpasswd"])
    assert file_mode.stdout.split() == [b"root", b"600"]

    assert setup.cli("deploy", "--credentials-file", str(creds)) == 0
    again = capsys.readouterr().out
    assert set(outcomes(again)) == {"unchanged"}, again
    assert saved["password"] not in again


def test_legacy_credentials_file_is_migrated_and_hand_made_users_dropped(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """issue 11 replaced "rotation keeps users added by hand": the single credentials file of
    earlier versions becomes a push account (its clients keep working); htpasswd lines that
    are no account are dropped (the front knows no role for them); rotate takes effect at once."""
    from app.htpasswd import htpasswd_line

    setup.rewrite(auth="htpasswd")
    creds = tmp_path / "registry.json"
    creds.write_text(json.dumps({"registry": setup.address, "username": "regwiz",
                                 "password": "legacy-password"}))
    assert setup.cli("deploy", "--credentials-file", str(creds)) == 0, capsys.readouterr()
    assert get_v2(setup.address, setup.ca_pem, ("regwiz", "legacy-password")) == 200
    accounts = json.loads((tmp_path / "credentials" / "accounts.json").read_text())["accounts"]
    assert {(a["name"], a["role"]) for a in accounts} == {
        ("regwiz", "push"), ("operator", "push"), ("cluster", "pull")}
    path = setup.host.host_path(f"{setup.certs_dir}/htpasswd")
    path.write_text(path.read_text() + htpasswd_line("alice", "alice-pass", rounds=4) + "\n")
    assert get_v2(setup.address, setup.ca_pem, ("alice", "alice-pass")) == 200  # read per request
    assert setup.cli("accounts", "rotate", "regwiz") == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert f"unchanged  [{setup.host.ip}] Update front" in out  # a password needs no restart
    assert get_v2(setup.address, setup.ca_pem, ("regwiz", "legacy-password")) == 401
    assert get_v2(setup.address, setup.ca_pem, ("alice", "alice-pass")) == 401


def test_uninstall_keeps_data_unless_purged(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.cli("deploy") == 0, capsys.readouterr()
    # stands for pushed data: purge deletes only a registry's tree (issue 12 item 2)
    stored = f"{setup.data_dir}/docker/registry/v2/stored"
    setup.host.exec(["sh", "-c", 'mkdir -p "${1%/*}" && touch "$1"', "sh", stored])
    assert setup.cli("uninstall") == 0
    assert setup.container() is None
    assert setup.host.exec(["test", "-e", setup.certs_dir], check=False).returncode != 0
    assert setup.host.exec(["test", "-e", stored]).returncode == 0
    assert setup.cli("uninstall", "--purge") == 2  # no terminal: refuses instead of asking
    assert "--yes" in capsys.readouterr().err
    assert setup.host.exec(["test", "-e", setup.data_dir]).returncode == 0
    assert setup.cli("uninstall", "--purge", "--yes") == 0
    assert setup.host.exec(["test", "-e", setup.data_dir], check=False).returncode != 0


def test_ca_private_key_never_leaves_this_machine(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.connections import connection_secrets, registry_connection
    from app.steps import Outcome, run_steps

    plan = load_plan(setup.plan_path)
    ca_key = (plan.cert_dir / "ca.key").read_bytes()
    policy = host_key_policy(False, known_hosts=setup.known_hosts)
    transport = open_transport(registry_connection(plan), connection_secrets(Secrets()), policy)
    sent: list[bytes] = []
    real_run, real_write = transport.run, transport.write_file

    def run(argv: list[str], **kwargs: Any) -> Any:
        sent.extend([" ".join(argv).encode(), kwargs.get("stdin") or b""])
        return real_run(argv, **kwargs)

    def write_file(path: str, content: bytes, **kwargs: Any) -> bool:
        sent.append(content)
        return real_write(path, content, **kwargs)

    monkeypatch.setattr(transport, "run", run)
    monkeypatch.setattr(transport, "write_file", write_file)
    with Deployment(plan, Secrets(), DeployOptions(), transport=transport) as deployment:
        results = run_steps(deployment.steps())
    transport.close()
    assert all(r.outcome in (Outcome.CHANGED, Outcome.UNCHANGED) for r in results), results
    assert (plan.cert_dir / "tls.key").read_bytes() in sent  # the recording does see keys
    body = b"".join(ca_key.split(b"-----")[2].split())
    assert all(body not in b"".join(chunk.split()) for chunk in sent)
    first_line = ca_key.split(b"\n")[1].decode()
    found = setup.host.exec(["grep", "-rlF", first_line, setup.certs_dir, setup.data_dir],
                            check=False)
    assert found.stdout == b""


def test_certificate_from_regwiz_certs_serves_a_docker_push_from_the_docker_node(
    lab: Lab, setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 3: `regwiz certs` output serves the lab registry; a node trusting only ca.crt
    in /etc/docker/certs.d pushes to it."""
    assert setup.cli("deploy") == 0, capsys.readouterr()
    node = lab["docker"]
    ref = f"{setup.address}/issue3/busybox:pushed"
    node.exec(["docker", "tag", BUSYBOX_IMAGE, ref])
    try:
        refused = node.exec(["docker", "push", ref], check=False, timeout=120)
        assert refused.returncode != 0 and b"x509" in refused.stdout + refused.stderr
        trust_on(node, setup.address, setup.ca_pem)
        node.exec(["docker", "push", ref], timeout=120)
        ca = setup.plan_path.parent / "certs" / "ca.crt"
        assert registry_api.tags(f"https://{setup.address}", ca, "issue3/busybox") == ["pushed"]
    finally:
        node.exec(["docker", "rmi", "-f", ref], check=False)
        node.exec(["rm", "-rf", f"/etc/docker/certs.d/{setup.address}"], check=False)


def test_health_failure_shows_container_state_and_what_to_try(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.rewrite(image=BUSYBOX_IMAGE)  # runs, but is no registry: it exits at once
    assert setup.cli("deploy", "--health-timeout", "2") == 1
    out = capsys.readouterr().out
    assert f"failed  [local] Health check https://{setup.address}/v2/" in out
    # exited, restarting, or caught running between two restarts: never "steadily"
    state = out.split(f"container {setup.name}: ", 1)[1].splitlines()[0]
    assert "exit code" in state or "keeps exiting" in state, state
    assert f"docker logs {setup.name}" in out


def test_deploy_on_a_root_login_host(
    lab: Lab, setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lab's docker host: SSH as root, no sudo involved."""
    root_host = lab["docker"]
    setup.host = root_host
    setup.rewrite(sudo=False)  # address and SANs now name the docker host
    assert main(["certs", "--plan", str(setup.plan_path)]) == 0  # reissued for the new SAN
    try:
        assert setup.cli("deploy") == 0, capsys.readouterr()
        assert get_v2(setup.address, setup.ca_pem) == 200
        key = root_host.exec(["stat", "-c", "%U %a", f"{setup.certs_dir}/tls.key"]).stdout
        assert key.split() == [b"root", b"600"]
    finally:
        setup.cli("uninstall", "--purge", "--yes")


def test_user_whose_sudo_needs_a_password_and_not_in_docker_group(
    lab: Lab, setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rwops on the registry host: Docker only through sudo, sudo only with its password."""
    ops = lab["containerd"]  # the lab's documented rwops credentials
    assert ops.sudo_password is not None
    setup.rewrite(ssh_user="rwops")
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", "not-the-password")
    assert setup.cli("deploy") == 1
    assert "wrong sudo password" in capsys.readouterr().out
    assert setup.container() is None
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", ops.sudo_password)
    try:
        assert setup.cli("deploy") == 0, capsys.readouterr()
        capsys.readouterr()
        assert get_v2(setup.address, setup.ca_pem) == 200
        assert setup.cli("deploy") == 0
        assert set(outcomes(capsys.readouterr().out)) == {"unchanged"}
    finally:
        setup.cli("uninstall", "--purge", "--yes")


def test_local_host_with_docker_from_docker_host(
    lab: Lab, setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """host = "local": files written on this machine, Docker reached through DOCKER_HOST (the
    lab registry host's dockerd, which shares /tmp with this machine)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{setup.host.docker_socket}")
    shared = tmp_path / "local-registry"
    setup.rewrite(host="local", certs_dir=str(shared / "certs"), data_dir=str(shared / "data"))
    try:
        assert setup.cli("deploy") == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert "[local] Connect (host key checked)" in out
        assert get_v2(setup.address, setup.ca_pem) == 200
        assert stat.S_IMODE((shared / "certs" / "tls.key").stat().st_mode) == 0o600
        assert setup.cli("deploy") == 0
        assert set(outcomes(capsys.readouterr().out)) == {"unchanged"}
    finally:
        setup.cli("uninstall", "--purge", "--yes")
    assert not (shared / "certs" / "tls.key").exists() and not (shared / "data").exists()
    # deploy made this machine's Docker trust the CA; uninstall takes that back completely
    assert not Path(f"/etc/docker/certs.d/{setup.address}").exists()


def test_htpasswd_mount_that_docker_cannot_see_is_caught(
    lab: Lab, setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files land where this machine sees them, but dockerd lives in another filesystem view
    (like rootless or snap Docker): the registry would silently invent a user. Deploy must
    notice instead of reporting success."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{setup.host.docker_socket}")
    # /registry-image is private to lab hosts: this machine's copy is invisible to dockerd.
    invisible = f"/registry-image/{setup.name}-local-certs"
    setup.rewrite(host="local", auth="htpasswd", certs_dir=invisible)
    try:
        assert setup.cli("deploy", "--health-timeout", "5") == 1
        out = capsys.readouterr().out
        # issue 11: with auth the front mounts the folder (its nginx.conf, htpasswd, TLS files)
        assert f"the front container does not see {invisible}/nginx.conf" in out
        assert "bind-mount" in out
    finally:
        setup.cli("uninstall", "--purge", "--yes")  # also this machine's copy of data_dir
        shutil.rmtree(invisible, ignore_errors=True)
        setup.host.exec(["rm", "-rf", invisible])  # the empty dir dockerd made for the mount


def run_in_terminal(argv: list[str], answers: dict[bytes, bytes], timeout: float = 180) -> bytes:
    """Run argv on a pseudo-terminal, answering each prompt once; return everything shown."""
    import os
    import pty
    import select
    import sys
    import time

    pid, master = pty.fork()
    if pid == 0:  # child: the CLI with a real controlling terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "app", *argv], os.environ)
    shown, pending = b"", dict(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            for prompt in [p for p in pending if p in shown]:
                os.write(master, pending.pop(prompt) + b"\n")
    finally:
        os.close(master)
        _, status = os.waitpid(pid, 0)
    return shown + f"\n[exit {os.waitstatus_to_exitcode(status)}]".encode()


def test_terminal_prompts_for_ssh_and_sudo_passwords(lab: Lab, setup: Setup) -> None:
    """No key, no env secrets: on a terminal regwiz asks for the SSH password, then for the
    sudo password, and never echoes either."""
    ops = lab["containerd"]
    assert ops.sudo_password is not None
    setup.rewrite(ssh_user="rwops", identity_file=None)
    argv = ["deploy", "--plan", str(setup.plan_path), "--known-hosts", str(setup.known_hosts)]
    password = ops.sudo_password.encode()
    shown = run_in_terminal(argv, {b"SSH password for rwops@": password,
                                   b"sudo password on": password})
    assert b"[exit 0]" in shown, shown.decode(errors="replace")
    assert shown.count(password) == 0
    assert get_v2(setup.address, setup.ca_pem) == 200
    uninstall = ["uninstall", *argv[1:], "--purge", "--yes"]
    assert b"[exit 0]" in run_in_terminal(uninstall, {b"SSH password for": password,
                                                      b"sudo password on": password})


def test_terminal_prompts_for_the_key_passphrase(lab: Lab, setup: Setup, tmp_path: Path) -> None:
    encrypted = tmp_path / "id_encrypted"
    shutil.copy(lab.key_path, encrypted)
    encrypted.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-f", str(encrypted), "-N", "key-passphrase"],
                   check=True, capture_output=True)
    setup.rewrite(identity_file=str(encrypted))
    argv = ["deploy", "--plan", str(setup.plan_path), "--known-hosts", str(setup.known_hosts)]
    try:
        shown = run_in_terminal(argv, {b"passphrase for the SSH key": b"key-passphrase"})
    finally:
        setup.rewrite()  # the plain lab key again, for the uninstall at teardown
    assert b"[exit 0]" in shown, shown.decode(errors="replace")
    assert b"key-passphrase" not in shown
    assert get_v2(setup.address, setup.ca_pem) == 200
