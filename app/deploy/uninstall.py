"""Remove what deploy placed on the registry host: the container, the certificates, the CA
file for the host's Docker, and the data directory only on ``--purge``."""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from app.deploy.container import HTPASSWD_NAME
from app.deploy.deployment import guarded, unchanged
from app.deploy.front import FRONT_CONFIG_NAME, front_name, network_name
from app.deploy.probes import unsafe_purge_reason
from app.errors import DeployError
from app.plan import Plan
from app.registry_host import LABEL_MANAGED, OnRegistryHost, RegistryHost
from app.steps import Outcome, Step
from app.transport.base import Transport


class Uninstall(OnRegistryHost):
    """Remove the registry container and the files deploy placed; the data dir only on purge."""

    def __init__(
        self,
        plan: Plan,
        *,
        purge: bool = False,
        connect: Callable[[], Transport] | None = None,
        transport: Transport | None = None,
    ) -> None:
        from app.plan import require_managed

        require_managed(plan, "uninstall")
        self.plan = plan
        self.purge = purge
        self.host = RegistryHost(plan, connect=connect, transport=transport)  # needs one of them
        self.where = plan.registry.host

    def steps(self) -> list[Step]:
        registry = self.plan.registry
        steps = [
            Step("Connect (host key checked)", self.where, "every step runs over this link",
                 unchanged(self.host.open)),
            Step("Reach Docker", self.where, "the container is removed through Docker",
                 unchanged(self.host.open_docker)),
            Step(f"Remove front {front_name(self.plan)}", self.where,
                 "stops serving the registry's port", self._remove_front,
                 [f"docker rm -f {front_name(self.plan)} (only if regwiz created it)"]),
            Step(f"Remove container {registry.container_name}", self.where,
                 "stops serving the registry", self._remove_container,
                 [f"docker rm -f {registry.container_name} (only if regwiz created it)"]),
            Step(f"Remove network {network_name(self.plan)}", self.where,
                 "the private network of the registry and its front", self._remove_network,
                 [f"docker network rm {network_name(self.plan)} (only if regwiz created it)"]),
            Step(f"Remove certificates from {registry.certs_dir}", self.where,
                 "the TLS key should not stay on a host that no longer serves it",
                 self._remove_files,
                 [f"rm -f {' '.join(self._placed_files())}; rmdir if empty"]),
        ]
        if self.purge:
            steps.append(Step(f"Delete data directory {registry.data_dir}", self.where,
                              "--purge: every pushed image is deleted", self._purge_data,
                              [f"rm -rf --one-file-system {registry.data_dir}"]))
        return [guarded(step) for step in steps]

    def _placed_files(self) -> list[str]:
        """What deploy put on the host: certificate, key, htpasswd, the CA for its Docker."""
        names = ("tls.crt", "tls.key", HTPASSWD_NAME, FRONT_CONFIG_NAME)
        return [*map(self.host.remote_path, names), self.host.docker_ca_path()]

    def _remove_front(self) -> Outcome:
        import docker.errors

        try:
            front = self.host.docker.containers.get(front_name(self.plan))
        except docker.errors.NotFound:
            return Outcome.UNCHANGED
        if front.labels.get(LABEL_MANAGED) != "true":
            raise DeployError(f"container {front.name} on {self.where} was not created by "
                              "regwiz: left alone", "remove it yourself with docker rm -f")
        front.remove(force=True)
        return Outcome.CHANGED

    def _remove_network(self) -> Outcome:
        import docker.errors

        try:
            network = self.host.docker.networks.get(network_name(self.plan))
        except docker.errors.NotFound:
            return Outcome.UNCHANGED
        if (network.attrs.get("Labels") or {}).get(LABEL_MANAGED) != "true":
            return Outcome.UNCHANGED
        network.remove()
        return Outcome.CHANGED

    def _remove_container(self) -> Outcome:
        return Outcome.CHANGED if self.host.remove_container() else Outcome.UNCHANGED

    def _remove_files(self) -> Outcome:
        registry = self.plan.registry
        transport = self.host.transport
        sudo = registry.sudo
        present = [path for path in self._placed_files()
                   if transport.run(["test", "-e", path], sudo=sudo, check=False).ok]
        if present:
            transport.run(["rm", "-f", "--", *present], sudo=sudo)
        for directory in (registry.certs_dir, posixpath.dirname(self.host.docker_ca_path())):
            if transport.run(["test", "-d", directory], check=False).ok:
                transport.run(["rmdir", "--ignore-fail-on-non-empty", "--", directory],
                              sudo=sudo)
        return Outcome.CHANGED if present else Outcome.UNCHANGED

    def _purge_data(self) -> Outcome:
        data_dir = self.plan.registry.data_dir
        reason = unsafe_purge_reason(data_dir)
        if reason:
            raise DeployError(f"refusing to delete {data_dir}: {reason}",
                              "delete the registry data by hand")
        transport = self.host.transport
        if not transport.run(["test", "-e", data_dir], check=False).ok:
            return Outcome.UNCHANGED
        transport.run(["rm", "-rf", "--one-file-system", "--", data_dir],
                      sudo=self.plan.registry.sudo, timeout=600)
        return Outcome.CHANGED
