"""Issue 12 item 5, on the lab's registry host: a redeploy whose new container cannot serve
rolls back to the previous one.

A registry is deployed and holds images; then the plan names an image that exists on the host
but cannot serve (built here from the lab's busybox): one exits at once (the health check
fails), one has an entrypoint that does not exist (Docker refuses to start it). Deploy must
report the failure and the rollback, the previous container must run again under its own name
(same id), no ``*-previous`` container may be left, and the registry must answer with every
image and the same digests. The same for the front (auth = "htpasswd"): a front image that
cannot start leaves the previous front serving.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
from collections.abc import Iterator

import pytest

from app.connections import host_key_policy, open_registry_transport
from app.deploy import DeployOptions, DeployReport, deploy
from app.plan import Secrets, load_plan
from tests.deploy_helpers import push_tiny_image
from tests.faults.test_deploy_faults import Env, env  # noqa: F401 - the deploy fixture
from tests.lab.lab import BUSYBOX_IMAGE

BROKEN = {
    "exits-at-once": '["sh", "-c", "echo this image cannot serve >&2; exit 3"]',
    "no-entrypoint": '["/no/such/registry"]',
}


@pytest.fixture(params=sorted(BROKEN))
def broken_image(env: Env, request: pytest.FixtureRequest) -> Iterator[str]:  # noqa: F811
    """An image on the registry host that exists but cannot serve."""
    tag = f"rwfault/broken-{request.param}:{env.name}"
    dockerfile = f"FROM {BUSYBOX_IMAGE}\nENTRYPOINT {BROKEN[request.param]}\n".encode()
    env.host.exec(["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, timeout=120)
    yield tag
    env.host.exec(["docker", "rm", "-f", env.name, f"{env.name}-front"], check=False)
    env.host.exec(["docker", "rmi", "-f", tag], check=False)


@pytest.fixture(autouse=True)
def no_previous_left(env: Env) -> Iterator[None]:  # noqa: F811
    """Whatever a failing test leaves, no NAME-previous stays on the lab's registry host."""
    yield
    env.host.exec(["docker", "rm", "-f", f"{env.name}-previous", f"{env.name}-front-previous"],
                  check=False)


def _deploy(env: Env) -> DeployReport:  # noqa: F811
    plan = load_plan(env.plan_path)
    policy = host_key_policy(False, known_hosts=env.known_hosts)
    return deploy(plan, Secrets(), DeployOptions(health_timeout=8),
                  connect=lambda: open_registry_transport(plan, Secrets(), policy))


def _operator_auth(env: Env) -> str | None:  # noqa: F811
    credential = env.plan_path.parent / "credentials" / "operator.json"
    if not credential.exists():
        return None
    token = json.loads(credential.read_text())["auths"][env.address]["auth"]
    return f"Basic {token}"


def _get(env: Env, path: str, auth: str | None, accept: str = "*/*"  # noqa: F811
         ) -> tuple[bytes, str]:
    context = ssl.create_default_context(cafile=str(env.ca_path))
    conn = http.client.HTTPSConnection(env.host.ip, env.port, context=context, timeout=10)
    headers = {"Accept": accept, **({"Authorization": auth} if auth else {})}
    conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    assert answer.status == 200, (path, answer.status)
    return body, answer.getheader("Docker-Content-Digest") or ""


def _held_images(env: Env) -> dict[str, str]:  # noqa: F811
    """Every repository:tag the registry lists, with its manifest digest (blobs checked)."""
    auth = _operator_auth(env)
    held = {}
    for repository in json.loads(_get(env, "/v2/_catalog", auth)[0])["repositories"]:
        for tag in json.loads(_get(env, f"/v2/{repository}/tags/list", auth)[0])["tags"]:
            manifest, digest = _get(env, f"/v2/{repository}/manifests/{tag}", auth,
                                    "application/vnd.oci.image.manifest.v1+json")
            assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
            parsed = json.loads(manifest)
            for blob in [parsed["config"], *parsed["layers"]]:
                data, _ = _get(env, f"/v2/{repository}/blobs/{blob['digest']}", auth)
                assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]
            held[f"{repository}:{tag}"] = digest
    return held


def _deploy_and_push(env: Env, capsys: pytest.CaptureFixture[str]  # noqa: F811
                     ) -> dict[str, str]:
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    for index in range(3):
        push_tiny_image(f"https://{env.address}", env.ca_path, f"rollback/app{index}",
                        f"v{index}", _operator_auth(env))
    held = _held_images(env)
    assert len(held) == 3
    return held


def _container(env: Env, name: str) -> tuple[str, str] | None:  # noqa: F811
    """(id, status) of the named container on the registry host, or None."""
    found = env.host.exec(["docker", "inspect", "-f", "{{.Id}} {{.State.Status}}", name],
                          check=False)
    if found.returncode != 0:
        return None
    container_id, status = found.stdout.decode().split()
    return container_id, status


def _assert_rolled_back(report: DeployReport, name: str) -> None:
    assert not report.ok
    failed = report.failed[-1]
    assert failed.kind == "rolled-back", failed
    assert "rolled back to the previous container" in failed.message, failed.message
    assert name in failed.message


def test_redeploy_with_an_image_that_cannot_serve_rolls_back(
    env: Env, broken_image: str, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    held = _deploy_and_push(env, capsys)
    before = _container(env, env.name)
    assert before is not None and before[1] == "running"

    env.write_plan(image=broken_image)
    report = _deploy(env)
    _assert_rolled_back(report, env.name)
    assert _container(env, env.name) == before  # the same container, running again
    assert _container(env, f"{env.name}-previous") is None
    assert env.v2_status() == 200
    assert _held_images(env) == held

    env.write_plan()  # the plan fixed: the next deploy is a plain no-op on the old container
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert _container(env, env.name) == before


def test_redeploy_with_a_front_that_cannot_serve_rolls_back(
    env: Env, broken_image: str, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REGWIZ_REGISTRY_PASSWORD", raising=False)
    env.write_plan(auth="htpasswd")
    held = _deploy_and_push(env, capsys)
    front = f"{env.name}-front"
    registry, before = _container(env, env.name), _container(env, front)
    assert before is not None and before[1] == "running"

    env.write_plan(auth="htpasswd", front_image=broken_image)
    report = _deploy(env)
    _assert_rolled_back(report, front)
    assert _container(env, front) == before
    assert _container(env, env.name) == registry
    assert _container(env, f"{front}-previous") is None
    assert _held_images(env) == held
    anonymous = base64.b64encode(b"nobody:wrong").decode()
    assert _held_images_status(env, f"Basic {anonymous}") == 401


def _held_images_status(env: Env, auth: str) -> int:  # noqa: F811
    context = ssl.create_default_context(cafile=str(env.ca_path))
    conn = http.client.HTTPSConnection(env.host.ip, env.port, context=context, timeout=10)
    conn.request("GET", "/v2/_catalog", headers={"Authorization": auth})
    return conn.getresponse().status


def test_a_redeploy_stopped_before_its_health_check_rolls_back(
    env: Env, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    """Cancelled (the wizard's Stop) right after the new container started: the unverified new
    one goes, the previous one serves again."""
    held = _deploy_and_push(env, capsys)
    before = _container(env, env.name)
    env.write_plan(delete_enabled=True)  # a changed setting: a new container
    plan = load_plan(env.plan_path)
    policy = host_key_policy(False, known_hosts=env.known_hosts)
    seen: list[str] = []
    report = deploy(plan, Secrets(), DeployOptions(health_timeout=8),
                    connect=lambda: open_registry_transport(plan, Secrets(), policy),
                    on_progress=lambda result: seen.append(result.what),
                    should_stop=lambda: any(what.startswith("Run container") for what in seen))
    assert _container(env, env.name) == before
    assert report.results[-1].outcome.value == "skipped"  # the health check never ran
    assert any("stopped before the new" in note and "rolled back" in note
               for note in report.notes), report.notes  # and the report says so
    assert _container(env, f"{env.name}-previous") is None
    assert _held_images(env) == held


def test_a_leftover_previous_container_is_restored_or_removed(
    env: Env, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    """What an interrupted run (killed between the two renames) leaves: NAME-previous, stopped.
    No NAME: it is started again under its name. NAME present: the leftover goes."""
    held = _deploy_and_push(env, capsys)
    before = _container(env, env.name)
    assert before is not None
    env.host.exec(["docker", "stop", env.name])
    env.host.exec(["docker", "rename", env.name, f"{env.name}-previous"])
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert _container(env, env.name) == before
    assert _container(env, f"{env.name}-previous") is None
    assert _held_images(env) == held

    env.host.exec(["docker", "create", "--name", f"{env.name}-previous", "--label",
                   "io.regwiz.managed=true", BUSYBOX_IMAGE])
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    assert _container(env, env.name) == before
    assert _container(env, f"{env.name}-previous") is None
