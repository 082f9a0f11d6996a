"""The registry host's Docker client rule, written once for deploy, uninstall, verify and status:
as the user first; with sudo only when the user may not use the daemon socket and sudo is
allowed. Any other failure is reported as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import app.dockerapi
from app.errors import RegwizError
from app.registry_host import docker_as_user_or_sudo, reach_docker
from app.transport.base import TransportError
from app.transport.local import LocalTransport


class FakeDocker:
    """Stands in for app.dockerapi.docker_client: one scripted answer per sudo value."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[bool] = []

    def __call__(self, transport: object, *, sudo: bool) -> Any:
        self.calls.append(sudo)
        answer = self.answers["sudo" if sudo else "user"]
        if isinstance(answer, Exception):
            raise answer
        return answer


def denied() -> TransportError:
    return TransportError("h: the user may not use the Docker daemon socket", kind="permission")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(**answers: Any) -> FakeDocker:
        docker = FakeDocker(**answers)
        monkeypatch.setattr(app.dockerapi, "docker_client", docker)
        return docker
    return install


def test_the_user_s_own_access_comes_first(fake: Any) -> None:
    docker = fake(user="client-as-user", sudo="client-with-sudo")
    assert docker_as_user_or_sudo(LocalTransport(), sudo_allowed=True) == "client-as-user"
    assert docker.calls == [False]


def test_permission_denied_is_retried_with_sudo_when_allowed(fake: Any) -> None:
    docker = fake(user=denied(), sudo="client-with-sudo")
    assert docker_as_user_or_sudo(LocalTransport(), sudo_allowed=True) == "client-with-sudo"
    assert docker.calls == [False, True]


def test_permission_denied_without_sudo_is_reported(fake: Any) -> None:
    docker = fake(user=denied(), sudo="never")
    with pytest.raises(TransportError) as caught:
        docker_as_user_or_sudo(LocalTransport(), sudo_allowed=False)
    assert caught.value.kind == "permission" and docker.calls == [False]


@pytest.mark.parametrize("kind", ["command", "unreachable", "timeout"])
def test_other_failures_are_not_retried_with_sudo(fake: Any, kind: str) -> None:
    docker = fake(user=TransportError("dockerd is not running on h", kind=kind), sudo="never")
    with pytest.raises(TransportError) as caught:
        docker_as_user_or_sudo(LocalTransport(), sudo_allowed=True)
    assert caught.value.message == "dockerd is not running on h" and docker.calls == [False]


def test_a_failing_sudo_attempt_is_the_one_reported(fake: Any) -> None:
    sudo_error = TransportError("sudo on h needs a password and none was given",
                                kind="sudo-password-missing")
    fake(user=denied(), sudo=sudo_error)
    with pytest.raises(TransportError) as caught:
        docker_as_user_or_sudo(LocalTransport(), sudo_allowed=True)
    assert caught.value is sudo_error


def test_checks_name_the_daemon_when_docker_is_unreachable(fake: Any) -> None:
    fake(user=TransportError("dockerd is not running on local", kind="command"), sudo="never")
    with pytest.raises(RegwizError) as caught:
        reach_docker(LocalTransport(), sudo_allowed=True)
    assert caught.value.message == ("cannot reach the Docker daemon on local: dockerd is not "
                                    "running on local")
    assert caught.value.hint


def test_verify_and_status_use_the_same_rule(fake: Any) -> None:
    from app.verify import registry_docker_client

    docker = fake(user=denied(), sudo="client-with-sudo")
    assert registry_docker_client(LocalTransport(), True) == "client-with-sudo"
    assert docker.calls == [False, True]


def test_a_local_socket_the_user_may_not_open_is_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket_path = tmp_path / "docker.sock"
    socket_path.touch(mode=0o000)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    # As root every file is accessible: answer as the kernel would for an ordinary user.
    monkeypatch.setattr(app.dockerapi.os, "access", lambda path, mode: False)
    with pytest.raises(TransportError) as caught:
        app.dockerapi.docker_client(LocalTransport(), sudo=False)
    assert caught.value.kind == "permission"
