"""Pull-through caches (issue 14) on the lab: what the caches proxy is ``tests.lab.upstream``, a
plain TLS registry with its own CA on the registry host (one anonymous, one behind a login).

The module deploys one registry (with accounts) and two caches once; the tests then read
what it serves, in file order: the last two change it (a mirror removed, then uninstall)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import registry_api
from app.accounts import AccountStore
from app.cli import main
from app.connections import host_key_policy, open_registry_transport
from app.deploy import Deployment, DeployOptions
from app.plan import Secrets, load_plan
from app.steps import Outcome, run_steps
from tests.deploy_helpers import push_tiny_image
from tests.lab.lab import Lab, LabHost
from tests.lab.plans import registry_plan_text
from tests.lab.upstream import IMAGES, Upstream, upstream

NAME = "rw-mirrors"
PORT, PUBLIC_PORT, PRIVATE_PORT = 8610, 8611, 8612
UPSTREAM_PORT, PRIVATE_UPSTREAM_PORT = 8613, 8614
PUBLIC, PRIVATE = "hub.lab", "private.lab"  # the upstreams' names in image references
DATA_DIR, CERTS_DIR = f"/registry-image/{NAME}", f"/etc/docker/{NAME}-certs"
PASSWORD_ENV = "REGWIZ_MIRROR_PRIVATE_LAB_PASSWORD"  # noqa: S105 - a variable's name


@dataclass
class Mirrored:
    lab: Lab
    host: LabHost
    plan_path: Path
    known_hosts: Path
    public: Upstream
    private: Upstream

    def cli(self, command: str, *extra: str) -> int:
        return main([command, "--plan", str(self.plan_path), "--known-hosts",
                     str(self.known_hosts), *extra])

    def certs(self) -> int:
        return main(["certs", "--plan", str(self.plan_path)])

    def url(self, port: int) -> str:
        return f"https://{self.host.ip}:{port}"

    @property
    def ca(self) -> Path:
        return self.plan_path.parent / "certs" / "ca.crt"

    def operator(self) -> registry_api.BasicAuth:
        credential = AccountStore(load_plan(self.plan_path)).credential("operator")
        assert credential is not None
        return registry_api.BasicAuth(credential.username, credential.password)

    def inspect(self, name: str) -> dict[str, object] | None:
        found = self.host.exec(["docker", "inspect", name], check=False)
        return json.loads(found.stdout)[0] if found.returncode == 0 else None

    def write_plan(self, *, mirrors: bool = True, private: bool = True) -> None:
        text = registry_plan_text(
            self.host, certificate={"common_name": "registry.lab.internal"}, port=PORT,
            container_name=NAME, data_dir=DATA_DIR, certs_dir=CERTS_DIR, auth="htpasswd",
            delete_enabled=True)  # for regwiz gc
        if mirrors:
            ca = self.public.write_ca(self.plan_path.parent / "public-ca.crt")
            text += mirror_table(PUBLIC, PUBLIC_PORT, self.public.url, ca)
        if mirrors and private:
            assert self.private.login is not None
            ca = self.private.write_ca(self.plan_path.parent / "private-ca.crt")
            text += mirror_table(PRIVATE, PRIVATE_PORT, self.private.url, ca,
                                 self.private.login[0])
        self.plan_path.write_text(text)


def mirror_table(upstream: str, port: int, url: str, ca: Path,
                 username: str | None = None) -> str:
    lines = ["", "[[mirrors]]", f'upstream = "{upstream}"', f"port = {port}",
             f'remote_url = "{url}"', f'remote_ca = "{ca}"']
    lines += [f'username = "{username}"'] if username else []
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def mirrored(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirrored]:
    folder = tmp_path_factory.mktemp("mirrors")
    known_hosts = folder / "known_hosts"
    shutil.copy(lab.known_hosts, known_hosts)
    saved = os.environ.get(PASSWORD_ENV)
    with upstream(lab, UPSTREAM_PORT, "lab-upstream-hub") as public, \
            upstream(lab, PRIVATE_UPSTREAM_PORT, "lab-upstream-private", login=True) as private:
        assert private.login is not None
        os.environ[PASSWORD_ENV] = private.login[1]
        setup = Mirrored(lab, lab["registry"], folder / "plan.toml", known_hosts, public,
                         private)
        setup.write_plan()
        try:
            assert setup.certs() == 0
            assert setup.cli("deploy") == 0
            yield setup
        finally:
            setup.cli("uninstall", "--purge", "--yes")
            if saved is None:
                os.environ.pop(PASSWORD_ENV, None)
            else:
                os.environ[PASSWORD_ENV] = saved


def test_the_lab_upstream_serves_two_images_and_stops_and_starts(lab: Lab) -> None:
    with upstream(lab, 8594, "lab-upstream-smoke") as up:
        digests = {target: up.digest(*target.split(":")) for target in IMAGES}
        assert all(d and d.startswith("sha256:") for d in digests.values())
        assert len(set(digests.values())) == len(IMAGES)
        up.stop()
        assert not up.answers()
        up.start()
        assert up.digest("library/busybox", "latest") == digests["library/busybox:latest"]


def test_the_lab_upstream_with_a_login_wants_a_token(lab: Lab) -> None:
    with upstream(lab, 8595, "lab-upstream-smoke-login", login=True) as up:
        answer = registry_api.request(up.url, up.ca_pem, "GET", "/v2/lab/second/tags/list")
        assert answer.status == 401
        assert (answer.header("www-authenticate") or "").startswith("Bearer realm=")
        assert up.digest("lab/second", "1.0")


def pull(base: str, ca: Path, repository: str, tag: str,
         auth: registry_api.BasicAuth | None = None) -> str:
    """A pull over HTTPS: the manifest, then every blob it names (checked against its
    digest); the manifest's digest."""
    manifest = registry_api.get_manifest(base, ca, repository, tag, auth=auth)
    data = manifest.data()
    blobs = [data["config"], *data["layers"]]  # type: ignore[list-item]
    for blob in blobs:
        registry_api.get_blob(base, ca, repository, blob["digest"], auth=auth,
                              limit=64 << 20)
    return manifest.digest


def test_a_public_cache_serves_the_upstreams_images_anonymously(mirrored: Mirrored) -> None:
    base = mirrored.url(PUBLIC_PORT)
    assert registry_api.ping(base, mirrored.ca).status == 200
    for target in IMAGES:
        repository, tag = target.split(":")
        assert pull(base, mirrored.ca, repository, tag) == mirrored.public.digest(repository, tag)


def test_a_cache_keeps_serving_while_the_upstream_is_down(mirrored: Mirrored) -> None:
    base = mirrored.url(PUBLIC_PORT)
    digest = pull(base, mirrored.ca, "library/busybox", "latest")  # cached (again)
    mirrored.public.stop()
    try:
        assert pull(base, mirrored.ca, "library/busybox", "latest") == digest
        assert registry_api.get_manifest(base, mirrored.ca, "library/busybox", digest).digest \
            == digest
    finally:
        mirrored.public.start()


def test_a_cache_refuses_pushes_and_deletes(mirrored: Mirrored) -> None:
    for port, auth in ((PUBLIC_PORT, None), (PRIVATE_PORT, mirrored.operator())):
        answer = registry_api.request(mirrored.url(port), mirrored.ca, "POST",
                                      "/v2/library/busybox/blobs/uploads/", auth=auth)
        assert answer.status == 405, (port, answer.status)  # proxy mode: never a push
    digest = pull(mirrored.url(PUBLIC_PORT), mirrored.ca, "library/busybox", "latest")
    answer = registry_api.request(mirrored.url(PUBLIC_PORT), mirrored.ca, "DELETE",
                                  f"/v2/library/busybox/manifests/{digest}")
    assert answer.status == 405, answer.status


def test_a_private_cache_needs_an_account(mirrored: Mirrored) -> None:
    base = mirrored.url(PRIVATE_PORT)
    assert registry_api.ping(base, mirrored.ca).status == 401
    with pytest.raises(registry_api.RegistryAPIError) as refused:
        registry_api.get_manifest(base, mirrored.ca, "lab/second", "1.0")
    assert refused.value.status == 401
    assert pull(base, mirrored.ca, "lab/second", "1.0", mirrored.operator()) == \
        mirrored.private.digest("lab/second", "1.0")


def test_the_upstream_password_is_not_in_the_cache_container(mirrored: Mirrored) -> None:
    assert mirrored.private.login is not None
    inspected = mirrored.inspect(f"{NAME}-mirror-private-lab")
    assert inspected is not None
    assert mirrored.private.login[1] not in json.dumps(inspected)
    config = f"{CERTS_DIR}/mirrors/private-lab/config.yml"
    mode = mirrored.host.exec(["stat", "-c", "%a %U", config]).stdout.decode().split()
    assert mode == ["600", "root"]
    logs = mirrored.host.exec(["docker", "logs", f"{NAME}-mirror-private-lab"])
    assert mirrored.private.login[1].encode() not in logs.stdout + logs.stderr


def test_deploy_again_changes_nothing(mirrored: Mirrored) -> None:
    plan = load_plan(mirrored.plan_path)
    secrets = Secrets.from_env()
    ids = {name: (mirrored.inspect(name) or {}).get("Id")
           for name in (f"{NAME}-mirror-hub-lab", f"{NAME}-mirror-private-lab")}
    policy = host_key_policy(False, known_hosts=mirrored.known_hosts)
    transport = open_registry_transport(plan, secrets, policy)
    with Deployment(plan, secrets, DeployOptions(), transport=transport) as deployment:
        results = run_steps(deployment.steps())
    changed = [r.what for r in results if r.outcome is not Outcome.UNCHANGED]
    assert changed == []
    assert ids == {name: (mirrored.inspect(name) or {}).get("Id") for name in ids}


def test_status_lists_the_caches(mirrored: Mirrored, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    mirrored.cli("status", "--json")
    report = json.loads(capsys.readouterr().out)
    caches = {cache["upstream"]: cache for cache in report["mirrors"]}
    assert set(caches) == {PUBLIC, PRIVATE}
    assert caches[PUBLIC]["running"] is True and caches[PUBLIC]["healthy"] is True
    assert caches[PUBLIC]["address"] == f"{mirrored.host.ip}:{PUBLIC_PORT}"
    assert caches[PUBLIC]["used_bytes"] > 0  # it holds what the tests above pulled


def test_a_new_account_can_pull_from_the_private_cache(mirrored: Mirrored) -> None:
    """The cache reads the htpasswd only at start: the accounts change recreates it, with the
    config the deploy wrote (the upstream password is not needed again)."""
    saved = os.environ.pop(PASSWORD_ENV)
    try:
        assert mirrored.cli("accounts", "add", "ci-puller", "--role", "pull") == 0
    finally:
        os.environ[PASSWORD_ENV] = saved
    credential = AccountStore(load_plan(mirrored.plan_path)).credential("ci-puller")
    assert credential is not None
    auth = registry_api.BasicAuth(credential.username, credential.password)
    assert pull(mirrored.url(PRIVATE_PORT), mirrored.ca, "lab/second", "1.0", auth) == \
        mirrored.private.digest("lab/second", "1.0")


def test_a_cache_that_fails_is_rolled_back(mirrored: Mirrored,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A changed private cache that cannot start (its upstream gone: the proxy asks it for
    its token realm at start) is removed, and the one that served comes back."""
    name = f"{NAME}-mirror-private-lab"
    before = (mirrored.inspect(name) or {}).get("Id")
    text = mirrored.plan_path.read_text()
    mirrored.plan_path.write_text(text.replace(mirrored.private.url,
                                               f"https://{mirrored.host.ip}:8619"))
    try:
        capsys.readouterr()
        assert mirrored.cli("deploy", "--health-timeout", "8") == 1
        out = capsys.readouterr().out
        assert "rolled back to the previous container" in out
        assert (mirrored.inspect(name) or {}).get("Id") == before
        assert mirrored.inspect(f"{name}-previous") is None
        assert "the cache answers again" in out, out
        assert registry_api.ping(mirrored.url(PRIVATE_PORT), mirrored.ca).status == 401
    finally:
        mirrored.plan_path.write_text(text)


def test_gc_of_the_registry_leaves_the_caches_alone(mirrored: Mirrored) -> None:
    """gc redeploys the registry read-only and back and collects its own tree only: the caches
    keep their containers and every byte, and need no upstream password for it."""
    push_tiny_image(mirrored.url(PORT), mirrored.ca, "team/app", "1",
                    mirrored.operator().header())  # the collector needs a repository
    base = mirrored.url(PUBLIC_PORT)
    digest = pull(base, mirrored.ca, "library/busybox", "latest")
    caches = (f"{NAME}-mirror-hub-lab", f"{NAME}-mirror-private-lab")
    ids = {name: (mirrored.inspect(name) or {}).get("Id") for name in caches}

    def cached_bytes() -> str:
        return mirrored.host.exec(["du", "-sb", f"{DATA_DIR}/mirrors"]).stdout.decode()

    before = cached_bytes()
    saved = os.environ.pop(PASSWORD_ENV)
    try:
        assert mirrored.cli("gc") == 0
    finally:
        os.environ[PASSWORD_ENV] = saved
    assert {name: (mirrored.inspect(name) or {}).get("Id") for name in caches} == ids
    assert cached_bytes() == before
    mirrored.public.stop()
    try:
        assert pull(base, mirrored.ca, "library/busybox", "latest") == digest
    finally:
        mirrored.public.start()


def test_a_stopped_cache_makes_status_unhealthy(mirrored: Mirrored,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    name = f"{NAME}-mirror-hub-lab"
    mirrored.host.exec(["docker", "stop", "-t", "2", name])
    try:
        capsys.readouterr()
        assert mirrored.cli("status", "--no-nodes") == 1
        out = capsys.readouterr().out
        assert f"{PUBLIC} at {mirrored.host.ip}:{PUBLIC_PORT}: NOT RUNNING (exited)" in out
        assert "overall       needs attention" in out
    finally:
        mirrored.host.exec(["docker", "start", name])


def test_removing_a_mirror_removes_its_cache_but_keeps_its_data(mirrored: Mirrored) -> None:
    mirrored.write_plan(private=False)
    try:
        assert mirrored.cli("deploy") == 0
        assert mirrored.inspect(f"{NAME}-mirror-private-lab") is None
        assert mirrored.inspect(f"{NAME}-mirror-hub-lab") is not None
        assert mirrored.host.exec(["test", "-d", f"{DATA_DIR}/mirrors/private-lab"],
                                  check=False).returncode == 0
        assert mirrored.host.exec(["test", "-e", f"{CERTS_DIR}/mirrors/private-lab"],
                                  check=False).returncode != 0  # its login went with it
    finally:
        mirrored.write_plan()


def test_uninstall_removes_the_caches_and_purge_their_data(mirrored: Mirrored) -> None:
    assert mirrored.cli("deploy") == 0  # both caches again
    assert mirrored.cli("uninstall", "--purge", "--yes") == 0
    for name in (f"{NAME}-mirror-hub-lab", f"{NAME}-mirror-private-lab", NAME):
        assert mirrored.inspect(name) is None
    assert mirrored.host.exec(["test", "-e", DATA_DIR], check=False).returncode != 0
