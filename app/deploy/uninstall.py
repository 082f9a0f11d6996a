"""Remove what deploy placed on the registry host: the container, its pull-through caches, the
certificates, the CA file for the host's Docker, and the data directory (the caches' blobs
with it) only on ``--purge``."""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from app.deploy.caches import is_cache_of
from app.deploy.container import HTPASSWD_NAME
from app.deploy.deployment import guarded, unchanged
from app.deploy.front import FRONT_CONFIG_NAME, front_name, network_name
from app.deploy.mirrors import MIRRORS_DIR
from app.deploy.probes import (
    DATA_MARKER,
    LIST_DATA_DIR,
    foreign_entries,
    unsafe_purge_reason,
)
from app.errors import DeployError
from app.plan import Plan
from app.registry_host import LABEL_MANAGED, OnRegistryHost, RegistryHost
from app.steps import Outcome, Step
from app.transport.base import Transport
from app.validate import normalize_remote_path


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
            *self._purge_steps()[:1],
            Step(f"Remove front {front_name(self.plan)}", self.where,
                 "stops serving the registry's port", self._remove_front,
                 [f"docker rm -f {front_name(self.plan)} (only if regwiz created it)"]),
            Step(f"Remove container {registry.container_name}", self.where,
                 "stops serving the registry", self._remove_container,
                 [f"docker rm -f {registry.container_name} (only if regwiz created it)"]),
            Step("Remove the pull-through caches", self.where,
                 "they serve on the registry host's ports with its certificate",
                 self._remove_caches,
                 [f"docker rm -f {registry.container_name}-mirror-* (only those regwiz "
                  "created for this registry)",
                  f"rm -rf {posixpath.join(registry.certs_dir, MIRRORS_DIR)} (their configs); "
                  f"cached blobs stay in {posixpath.join(registry.data_dir, MIRRORS_DIR)} "
                  "unless --purge"]),
            Step(f"Remove network {network_name(self.plan)}", self.where,
                 "the private network of the registry and its front", self._remove_network,
                 [f"docker network rm {network_name(self.plan)} (only if regwiz created it)"]),
            Step(f"Remove certificates from {registry.certs_dir}", self.where,
                 "the TLS key should not stay on a host that no longer serves it",
                 self._remove_files,
                 [f"rm -f {' '.join(self._placed_files())}; rmdir if empty"]),
            *self._purge_steps()[1:],
        ]
        return [guarded(step) for step in steps]

    def _purge_steps(self) -> list[Step]:
        """With --purge: the check (before anything is removed) and the deletion (last)."""
        data_dir = self.plan.registry.data_dir
        if not self.purge:
            return []
        return [
            Step(f"Check {data_dir} is a registry data directory", self.where,
                 "--purge deletes it: refused before anything is removed if it is not",
                 self._check_purge, [f"ls -A -p {data_dir}: only docker/registry/v2 and "
                                     f"{DATA_MARKER}; never a system directory"]),
            Step(f"Delete data directory {data_dir}", self.where,
                 "--purge: every pushed image is deleted", self._purge_data,
                 [f"rm -rf --one-file-system {data_dir} (checked again first)"]),
        ]

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

    def _remove_caches(self) -> Outcome:
        registry = self.plan.registry
        caches = [c for c in self.host.docker.containers.list(all=True)
                  if is_cache_of(c, registry.container_name)]
        for cache in caches:
            cache.remove(force=True)
        configs = posixpath.join(registry.certs_dir, MIRRORS_DIR)
        present = self.host.transport.run(["test", "-d", configs], sudo=registry.sudo,
                                          check=False).ok
        if present:
            self.host.transport.run(["rm", "-rf", "--", configs], sudo=registry.sudo)
        return Outcome.CHANGED if caches or present else Outcome.UNCHANGED

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

    def _check_purge(self) -> Outcome:
        self._purge_target()
        return Outcome.UNCHANGED

    def _purge_data(self) -> Outcome:
        target = self._purge_target()
        if target is None:
            return Outcome.UNCHANGED
        self.host.transport.run(["rm", "-rf", "--one-file-system", "--", target],
                                sudo=self.plan.registry.sudo, timeout=600)
        return Outcome.CHANGED

    def _purge_target(self) -> str | None:
        """The data dir, normalized, when it is a registry data directory; None when it does
        not exist; else the refusal, saying what was found (one listing on the host)."""
        data_dir = self.plan.registry.data_dir
        if reason := unsafe_purge_reason(data_dir):
            raise self._refusal(data_dir, reason)
        target = normalize_remote_path(data_dir)  # "/x/" would make rm follow a link
        listed = self.host.transport.run(["sh", "-c", LIST_DATA_DIR, "sh", target],
                                         sudo=self.plan.registry.sudo, check=False, timeout=60)
        if listed.exit_status == 3:
            return None
        if listed.exit_status == 4:
            raise self._refusal(data_dir, "it is a symbolic link")
        if not listed.ok:
            raise DeployError(f"cannot list {data_dir} on {self.where}: "
                              f"{listed.stderr.strip() or listed.exit_status}",
                              "check the path and the sudo rights, then run again")
        if foreign := foreign_entries(listed.stdout):
            shown = ", ".join(foreign[:8]) + (f", … ({len(foreign) - 8} more)"
                                              if len(foreign) > 8 else "")
            raise self._refusal(data_dir, f"it holds {shown} — not a registry data directory")
        return target

    def _refusal(self, data_dir: str, reason: str) -> DeployError:
        return DeployError(
            f"refusing to purge {data_dir} on {self.where}: {reason}",
            "nothing in it was deleted; check registry.data_dir in the plan (a registry data "
            f"directory holds only docker/registry/v2 and {DATA_MARKER}), or delete the "
            "registry's data by hand", kind="purge-refused")
