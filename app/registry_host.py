"""The registry host: its connection, its Docker daemon and the registry container on it.

Deploy, uninstall, verify and status all reach the host's Docker the same way, so the rule lives
here once (``docker_as_user_or_sudo``): as the SSH user first (members of the docker group need
no root), and with sudo only when that failed because the user may not use the daemon's socket
and the plan allows sudo. Any other failure (no docker CLI, dockerd down, lost connection) would
fail the same way through sudo, so it is reported as it is instead of being retried.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from app import runtimes
from app.errors import DeployError, RegwizError
from app.plan import Plan
from app.transport.base import Transport, TransportError

if TYPE_CHECKING:
    import docker

LABEL_MANAGED = "io.regwiz.managed"


def docker_as_user_or_sudo(transport: Transport, *, sudo_allowed: bool) -> docker.DockerClient:
    """The Docker client for ``transport``'s host (see the module docstring for the rule).

    Raises the TransportError of the attempt that decided: the user's when sudo is not
    worth trying, else the sudo attempt's."""
    from app.dockerapi import docker_client

    try:
        return docker_client(transport, sudo=False)
    except TransportError as error:
        if error.kind != "permission" or not sudo_allowed:
            raise
    return docker_client(transport, sudo=True)


def reach_docker(transport: Transport, *, sudo_allowed: bool) -> docker.DockerClient:
    """``docker_as_user_or_sudo`` for a check (verify, status): its failure names the daemon."""
    try:
        return docker_as_user_or_sudo(transport, sudo_allowed=sudo_allowed)
    except TransportError as error:
        raise RegwizError(
            f"cannot reach the Docker daemon on {transport.name}: {error.message}",
            "start dockerd, and add the SSH user to the docker group or allow sudo",
        ) from None


class RegistryHost:
    """One plan's registry host. ``connect`` opens the transport lazily (a dry run never
    connects); pass ``transport`` instead when the caller already holds one (it is not closed
    here then)."""

    def __init__(
        self,
        plan: Plan,
        *,
        connect: Callable[[], Transport] | None = None,
        transport: Transport | None = None,
    ) -> None:
        if connect is None and transport is None:
            raise ValueError("RegistryHost needs connect or transport")
        self.plan = plan
        self.name = plan.registry.host
        self._connect = connect
        self._owns_transport = transport is None
        self._transport = transport
        self._docker: Any = None

    # -- connection and Docker -----------------------------------------------------------------

    def open(self) -> Transport:
        """Connect (once) and prove the link carries a command."""
        if self._transport is None:
            assert self._connect is not None
            self._transport = self._connect()
        self._transport.run(["true"], timeout=30)
        return self._transport

    @property
    def transport(self) -> Transport:
        return _required(self._transport, "not connected to the registry host")

    def open_docker(self) -> Any:
        """Reach dockerd (as the user, else with sudo: ``docker_as_user_or_sudo``)."""
        found = self.transport.run(["sh", "-c", "command -v docker"], check=False)
        if not found.ok:
            raise DeployError(
                f"the docker CLI is not installed on {self.name}",
                "install Docker (e.g. apt-get install docker.io) and start it, then run again",
            )
        # docker_client negotiates the API version: a daemon that does not answer fails here.
        self._docker = docker_as_user_or_sudo(self.transport, sudo_allowed=self.plan.registry.sudo)
        return self._docker

    @property
    def docker(self) -> Any:
        return _required(self._docker, "Docker on the registry host is not connected")

    @property
    def docker_connected(self) -> bool:
        return self._docker is not None

    def close(self) -> None:
        if self._docker is not None:
            # closing a broken tunnel must not hide the run's result
            with contextlib.suppress(Exception):
                self._docker.close()
            self._docker = None
        if self._owns_transport and self._transport is not None:
            self._transport.close()
            self._transport = None

    def __enter__(self) -> RegistryHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the registry container ------------------------------------------------------------------

    def find_container(self) -> Any | None:
        """The container named in the plan, or None."""
        import docker.errors

        try:
            return self.docker.containers.get(self.plan.registry.container_name)
        except docker.errors.NotFound:
            return None

    def container_log_tail(self, lines: int = 30) -> str:
        """The container's last log lines (empty when there is no container or no Docker)."""
        if self._docker is None:
            return ""
        try:
            container = self._docker.containers.get(self.plan.registry.container_name)
            output: bytes = container.logs(tail=lines)
        except Exception:  # the log is a diagnostic extra: never mask the real failure
            return ""
        return output.decode("utf-8", errors="replace").rstrip()

    def container_state(self) -> str:
        """e.g. "running steadily", "exited (exit code 1), restarted 3 times", or
        "running, but restarted 3 times: it keeps exiting"."""
        try:
            container = self.find_container()
        except Exception:  # diagnostics only
            return ""
        if container is None:
            return "no such container"
        return describe_container_state(container.attrs)

    def remove_container(self) -> bool:
        """Remove the registry container if regwiz created it; False when there is none."""
        container = self.find_container()
        if container is None:
            return False
        if container.labels.get(LABEL_MANAGED) != "true":
            raise DeployError(
                f"container {container.name} on {self.name} was not created by regwiz: "
                "left alone",
                "remove it yourself with docker rm -f if it is really the registry",
            )
        container.remove(force=True)
        return True

    # -- files deploy places ----------------------------------------------------------------------

    def remote_path(self, name: str) -> str:
        """``name`` inside the plan's certs_dir on the host."""
        return posixpath.join(self.plan.registry.certs_dir, name)

    def docker_ca_path(self) -> str:
        """Where this host's Docker reads the registry's CA (read on every push, no restart)."""
        return runtimes.docker_ca_path(self.plan.registry_reference)


T = TypeVar("T")


def _required(value: T | None, missing: str) -> T:
    """``value``, or the step-level error saying it is not there yet (a step ran too early)."""
    if value is None:
        raise DeployError(missing)
    return value


J = TypeVar("J", bound="OnRegistryHost")


class OnRegistryHost:
    """Base of the step lists run on a ``RegistryHost`` (deploy, uninstall): closing them, or
    leaving their ``with`` block, closes the host's Docker client and owned connection."""

    host: RegistryHost

    def close(self) -> None:
        self.host.close()

    def __enter__(self: J) -> J:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_container_state(attrs: dict[str, Any]) -> str:
    """What `docker inspect` says, in words. A crash-looping container (restart=always) is
    caught "running" between two exits as often as "restarting": its restart count gives
    it away, and Docker resets ExitCode on each start, so none is shown then."""
    state = attrs.get("State") or {}
    status = str(state.get("Status", "unknown"))
    restarts = int(attrs.get("RestartCount") or 0)
    if status == "running":
        if restarts == 0:
            return "running steadily"
        return f"running, but restarted {restarts} times: it keeps exiting"
    code = state.get("ExitCode")
    exit_code = "" if code is None else f" (exit code {code})"
    return f"{status}{exit_code}, restarted {restarts} times"
