"""Private by default (issue 11) on the lab: real sshd, dockerd, registry, nginx front, skopeo.

A plan without ``registry.auth`` deploys the registry behind its nginx front with the accounts
``operator`` (push) and ``cluster`` (pull); the front refuses anonymous requests, and refuses the
pull account anything but GET/HEAD. Rotate and revoke take effect at once. ``auth = "none"``
still works, and warns. ``bind_address`` is the published port's only host address.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from tests.lab.lab import BUSYBOX_IMAGE, FRONT_IMAGE, Lab, LabHost, port_for
from tests.lab.plans import registry_plan_text
from tests.lab.ps_watcher import PsWatcher
from tests.lab.trust import https_status

pytestmark = pytest.mark.lab


@dataclass
class Private:
    plan: Path
    known_hosts: Path
    host: LabHost
    name: str
    port: int
    lab: Lab

    @property
    def address(self) -> str:
        return f"{self.host.ip}:{self.port}"

    @property
    def certs(self) -> Path:
        return self.plan.parent / "certs"

    @property
    def ca_pem(self) -> bytes:
        return (self.certs / "ca.crt").read_bytes()

    def credential(self, account: str) -> Path:
        return self.plan.parent / "credentials" / f"{account}.json"

    def password(self, account: str) -> str:
        data = json.loads(self.credential(account).read_text())
        token = data["auths"][self.address]["auth"]
        return base64.b64decode(token).decode().partition(":")[2]

    def cli(self, *args: str) -> int:
        return main([args[0], *args[1:], "--plan", str(self.plan), "--known-hosts",
                     str(self.known_hosts)])

    def write(self, **registry: object) -> None:
        own: dict[str, object] = {
            "port": self.port, "container_name": self.name,
            "data_dir": f"/registry-image/{self.name}",
            "certs_dir": f"/etc/docker/{self.name}-certs", "auth": None, "delete_enabled": True}
        self.plan.write_text(registry_plan_text(
            self.host, certificate={"common_name": "registry.private.internal",
                                    "name_constraints": True}, **(own | registry)))


def _front_image_on(host: LabHost, lab: Lab) -> None:
    """Labs started before the front existed lack the image: load the lab's build."""
    if host.exec(["docker", "image", "inspect", FRONT_IMAGE], check=False).returncode != 0:
        archive = lab.images.get(FRONT_IMAGE)
        if archive is None:
            from tests.lab.lab import cached_image_archives

            archive = cached_image_archives()[FRONT_IMAGE]
        host.exec(["docker", "load"], input=Path(archive).read_bytes(), timeout=300)


@contextmanager
def private_registry(lab: Lab, tmp_path: Path, name: str) -> Iterator[Private]:
    """A plan for a registry of regwiz's called ``name`` on the lab's registry host, with its
    certificates made (not yet deployed); afterwards everything of it is removed."""
    port = port_for(name)
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(lab.known_hosts, known_hosts)
    made = Private(tmp_path / "plan.toml", known_hosts, lab["registry"], name, port, lab)
    made.write()
    _front_image_on(made.host, lab)
    assert main(["certs", "--plan", str(made.plan)]) == 0
    try:
        yield made
    finally:
        made.cli("uninstall", "--purge", "--yes")
        for container in (name, f"{name}-front"):
            made.host.exec(["docker", "rm", "-f", container], check=False)
        made.host.exec(["docker", "network", "rm", f"regwiz-{name}"], check=False)
        made.host.exec(["rm", "-rf", f"/etc/docker/{name}-certs", f"/registry-image/{name}"],
                       check=False)


@pytest.fixture
def private(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Private]:
    name = "rwp-" + request.node.name.removeprefix("test_").replace("_", "-")[:24]
    with private_registry(lab, tmp_path, name) as made:
        yield made


def request_status(private: Private, method: str, path: str,
                   account: str | None = None, password: str | None = None) -> int:
    login = None
    if account:
        login = (account, password if password is not None else private.password(account))
    return https_status(f"https://{private.address}{path}", private.ca_pem, login,
                        method=method, timeout=15)


def skopeo(private: Private, *args: str) -> subprocess.CompletedProcess[str]:
    cert_dir = private.certs.parent / "skopeo-certs"
    cert_dir.mkdir(exist_ok=True)
    (cert_dir / "ca.crt").write_bytes(private.ca_pem)
    argv = [a.replace("CERTS", str(cert_dir)) for a in args]
    return subprocess.run(["skopeo", *argv], capture_output=True, text=True, timeout=180,
                          check=False)


def outcomes(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()
            if line.split() and line.split()[0] in ("changed", "unchanged", "failed", "skipped")]


def test_default_plan_is_private_with_roles_rotate_and_revoke(
    private: Private, lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    private.write(bind_address=private.host.ip)
    started = time.monotonic()
    with PsWatcher([private.host]) as watcher:
        assert private.cli("deploy") == 0, capsys.readouterr()
    first_seconds = time.monotonic() - started
    first = capsys.readouterr()
    assert "operator, cluster" in first.out and "warning" not in first.err
    for account in ("operator", "cluster"):
        assert private.credential(account).stat().st_mode & 0o777 == 0o600
    accounts_file = private.plan.parent / "credentials" / "accounts.json"
    assert accounts_file.stat().st_mode & 0o777 == 0o600
    # no password, hash or credential content on screen or in any process's argument list
    htpasswd = private.host.exec(["cat", f"/etc/docker/{private.name}-certs/htpasswd"]).stdout
    hashes = [line.partition(b":")[2].decode() for line in htpasswd.splitlines()]
    secrets = [private.password("operator"), private.password("cluster"), *hashes,
               *(json.loads(private.credential(a).read_text())["auths"][private.address]["auth"]
                 for a in ("operator", "cluster"))]
    assert watcher.seen, "ps saw nothing"
    for text in (first.out, first.err, "\n".join(watcher.seen), private.plan.read_text(),
                 accounts_file.read_text()):
        assert not [s for s in secrets if s in text]

    # the registry publishes nothing; the front publishes the port; second deploy unchanged
    registry = json.loads(private.host.exec(["docker", "inspect", private.name]).stdout)[0]
    assert not registry["HostConfig"]["PortBindings"]
    front = json.loads(private.host.exec(["docker", "inspect", f"{private.name}-front"]).stdout)
    bindings = front[0]["HostConfig"]["PortBindings"]["443/tcp"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [(private.host.ip,
                                                                str(private.port))]
    assert request_status(private, "GET", "/v2/_catalog") == 401
    assert request_status(private, "GET", "/v2/", "operator", "wrong") == 401
    started = time.monotonic()
    assert private.cli("deploy") == 0
    repeat_seconds = time.monotonic() - started
    second = capsys.readouterr().out
    assert set(outcomes(second)) == {"unchanged"}, second
    with capsys.disabled():
        print(f"\nMEASURED deploy with the front: first {first_seconds:.1f} s, "
              f"repeat {repeat_seconds:.1f} s")

    source = f"docker-archive:{lab.images[BUSYBOX_IMAGE]}"
    target = f"docker://{private.address}/lab/busybox:1"
    operator, cluster = str(private.credential("operator")), str(private.credential("cluster"))
    pushed = skopeo(private, "copy", "--dest-cert-dir", "CERTS", "--authfile", operator,
                    source, target)
    assert pushed.returncode == 0, pushed.stderr
    assert request_status(private, "GET", "/v2/_catalog", "cluster") == 200
    pulled = skopeo(private, "inspect", "--cert-dir", "CERTS", "--authfile", cluster, target)
    assert pulled.returncode == 0, pulled.stderr
    digest = json.loads(pulled.stdout)["Digest"]
    refused = skopeo(private, "copy", "--dest-cert-dir", "CERTS", "--authfile", cluster,
                     source, f"docker://{private.address}/lab/other:1")
    assert refused.returncode != 0
    assert request_status(private, "DELETE", f"/v2/lab/busybox/manifests/{digest}",
                          "cluster") == 403
    layer = json.loads(skopeo(private, "inspect", "--raw", "--cert-dir", "CERTS", "--authfile",
                              cluster, target).stdout)["layers"][0]["digest"]
    mount = f"/v2/lab/mounted/blobs/uploads/?mount={layer}&from=lab/busybox"
    assert request_status(private, "POST", mount, "cluster") == 403
    assert request_status(private, "POST", mount) == 401  # anonymous: asked to log in
    assert request_status(private, "POST", mount, "operator") == 201  # push role: mounted
    assert request_status(private, "DELETE", f"/v2/lab/busybox/manifests/{digest}",
                          "operator") == 202
    kept = f"docker://{private.address}/lab/busybox:2"
    pushed = skopeo(private, "copy", "--dest-cert-dir", "CERTS", "--authfile", operator,
                    source, kept)
    assert pushed.returncode == 0, pushed.stderr

    old = private.password("cluster")
    assert private.cli("accounts", "rotate", "cluster") == 0, capsys.readouterr()
    rotated = capsys.readouterr().out
    assert old not in rotated  # this plan has no nodes: nothing else to update
    assert private.password("cluster") not in rotated
    assert request_status(private, "GET", "/v2/", "cluster", old) == 401
    assert request_status(private, "GET", "/v2/", "cluster") == 200
    revoked = private.password("cluster")
    assert private.cli("accounts", "revoke", "cluster") == 0, capsys.readouterr()
    assert request_status(private, "GET", "/v2/", "cluster", revoked) == 401
    assert not private.credential("cluster").exists()
    assert private.cli("accounts", "add", "ci", "--role", "push") == 0, capsys.readouterr()
    assert request_status(private, "POST", "/v2/lab/ci/blobs/uploads/", "ci") == 202
    capsys.readouterr()
    assert private.cli("accounts", "list") == 0
    listed = capsys.readouterr().out
    assert "operator" in listed and "ci" in listed and "cluster" not in listed

    # a changed registry setting recreates the registry and so its front; no data is lost
    private.write(bind_address=private.host.ip, delete_enabled=False)
    assert private.cli("deploy") == 0, capsys.readouterr()
    redeployed = capsys.readouterr().out
    assert f"changed  [{private.host.ip}] Run container {private.name}" in redeployed
    assert f"changed  [{private.host.ip}] Run front {private.name}-front" in redeployed
    still = skopeo(private, "inspect", "--cert-dir", "CERTS", "--authfile", operator, kept)
    assert still.returncode == 0, still.stderr

    assert private.cli("uninstall") == 0
    for container in (private.name, f"{private.name}-front"):
        assert private.host.exec(["docker", "inspect", container], check=False).returncode != 0
    assert private.host.exec(["docker", "network", "inspect", f"regwiz-{private.name}"],
                             check=False).returncode != 0


def test_no_auth_still_works_warns_and_bind_address_is_honoured(
    private: Private, capsys: pytest.CaptureFixture[str]
) -> None:
    private.write(auth="none", bind_address=private.host.ip)
    assert private.cli("deploy") == 0, capsys.readouterr()
    out = capsys.readouterr()
    assert out.err.count('registry.auth = "none": anyone who can reach') == 1
    assert request_status(private, "GET", "/v2/_catalog") == 200
    container = json.loads(private.host.exec(["docker", "inspect", private.name]).stdout)[0]
    bindings = container["HostConfig"]["PortBindings"]["443/tcp"]
    assert [b["HostIp"] for b in bindings] == [private.host.ip]
    assert private.cli("status", "--no-nodes") in (0, 1)
    assert capsys.readouterr().err.count("anyone who can reach") == 1
