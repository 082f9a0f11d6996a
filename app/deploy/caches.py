"""The deploy steps of the pull-through caches (``app.deploy.mirrors``): caches no longer in the
plan removed (their data kept), then per mirror its config and cache directory, its container
(a changed one kept as NAME-previous until the new one is healthy, like the registry) and its
health check, then the previous caches removed."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from app import registry_api
from app.deploy.container import (
    CONTAINER_CERTS_DIR,
    HTPASSWD_NAME,
    matches,
    published_ports,
    read_from_container,
    sha256_fingerprint,
)
from app.deploy.mirrors import (
    CONFIG_NAME,
    LABEL_MIRROR_OF,
    LABEL_MIRROR_SLUG,
    REMOTE_CA_NAME,
    cache_dir,
    config_digest,
    config_dir,
    config_password,
    expected_status,
    mirror_container_name,
    mirror_labels,
    mirror_spec,
    render_config,
)
from app.deploy.rollback import PREVIOUS_SUFFIX, keep_or_set_aside, recover_leftover
from app.errors import DeployError, RegwizError
from app.plan import ALL_ADDRESSES, MirrorSettings
from app.registry_host import LABEL_MANAGED
from app.steps import Outcome, Step

if TYPE_CHECKING:
    from app.deploy.rollback import Replacements
    from app.plan import Plan, Secrets
    from app.transport.base import Transport


class _Files(Protocol):
    @property
    def cert_pem(self) -> bytes: ...

    @property
    def key_pem(self) -> bytes: ...


class _Htpasswd(Protocol):
    @property
    def content(self) -> bytes: ...


class Deploying(Protocol):
    """What the caches use of ``app.deploy.deployment.Deployment`` (named here, not imported:
    the deployment imports this module)."""

    plan: Plan
    secrets: Secrets
    where: str
    options: Any
    replacements: Replacements

    @property
    def _files(self) -> _Files: ...

    @property
    def _htpasswd(self) -> _Htpasswd: ...

    @property
    def docker(self) -> Any: ...

    @property
    def run_reference(self) -> str: ...

    @property
    def config_path(self) -> str: ...

    @property
    def transport(self) -> Transport: ...

    def _or_roll_back(self, action: Callable[[], Outcome],
                      up: Callable[[], registry_api.PingResult] | None = None,
                      ) -> Callable[[], Outcome]: ...

    @staticmethod
    def _replace_details(details: list[str], name: str) -> list[str]: ...

    def _remove_previous(self) -> Outcome: ...

    def _refuse_held_port(self, port: int, choose_another: str) -> None: ...

    def _note_ephemeral(self, port: int) -> None: ...

    def _log_tail_of(self, name: str, lines: int) -> str: ...


class Caches:
    """The caches of one deploy; ``steps()`` go after the registry's own."""

    def __init__(self, deployment: Deploying) -> None:
        self.deployment = deployment
        self.plan = deployment.plan
        self.where = deployment.where
        self._configs: dict[str, bytes] = {}  # slug -> config.yml as written (with password)
        # slug -> {path: (what it held before this run wrote it (None: absent), its mode)}
        self._replaced_files: dict[str, dict[str, tuple[bytes | None, int]]] = {}

    # -- step lists -----------------------------------------------------------------------

    def port_steps(self) -> list[Step]:
        if not self.plan.mirrors:
            return []
        ports = ", ".join(str(mirror.port) for mirror in self.plan.mirrors)
        return [Step(f"Check the caches' ports {ports} are free", self.where,
                     "another service on a cache's port would make its container fail",
                     self._check_ports,
                     [f"ss -tanH (listeners and connections); docker port bindings for "
                      f"{ports}; outside the host's range for outgoing connections"])]

    def steps(self) -> list[Step]:
        steps = [Step("Remove caches no longer in the plan", self.where,
                      "a [[mirrors]] table was removed: its cache must stop serving",
                      self._remove_stale,
                      [f"docker rm -f {self.plan.registry.container_name}-mirror-* whose "
                       "upstream the plan no longer lists (only containers regwiz created)",
                       f"their data in {self.plan.registry.data_dir}/mirrors/ is kept until "
                       "uninstall --purge"])]
        for mirror in self.plan.mirrors:
            steps += self._mirror_steps(mirror)
        if self.plan.mirrors:
            steps.append(Step("Remove the previous caches", self.where,
                              "the new caches passed their health checks",
                              self.deployment._remove_previous,
                              ["docker rm -f NAME-previous (if this run replaced a cache)"]))
        return steps

    def sync_steps(self) -> list[Step]:
        """After an accounts change: the private caches read the htpasswd file only at start,
        so each is recreated with it (its config kept as the last deploy wrote it)."""
        private = [mirror for mirror in self.plan.mirrors if mirror.private]
        steps = [step for mirror in private for step in self._mirror_steps(mirror)]
        if private:
            steps.append(Step("Remove the previous caches", self.where,
                              "the new caches passed their health checks",
                              self.deployment._remove_previous))
        return steps

    def _mirror_steps(self, mirror: MirrorSettings) -> list[Step]:
        deployment = self.deployment
        spec = mirror_spec(self.plan, mirror)
        base = registry_api.base_url(self.plan.registry.address, mirror.port)
        bind = "" if spec.bind_address == ALL_ADDRESSES else f"{spec.bind_address}:"
        wanted = expected_status(mirror)
        return [
            Step(f"Configure the cache of {mirror.upstream}", self.where,
                 "its config.yml names the upstream (and its login: the password is in no "
                 "container setting)", lambda: self._configure(mirror),
                 self._config_details(mirror)),
            Step(f"Run cache {spec.name} of {mirror.upstream} on {bind}{mirror.port}",
                 self.where, "a pull-through cache: fetches from the upstream once, then "
                 "serves from its disk; pushes are refused",
                 self._or_roll_back(mirror, lambda: self._ensure(mirror)),
                 deployment._replace_details(spec.details(), spec.name)),
            Step(f"Health check cache {base}/v2/", "local",
                 f"proves TLS with our CA and that the cache answers HTTP {wanted} ("
                 + ("accounts only" if mirror.private else "anonymous pulls") + ")",
                 self._or_roll_back(mirror, lambda: self._health_check(mirror)),
                 [f"up to {deployment.options.health_timeout:g} s, trusting only "
                  f"{self.plan.cert_dir}/ca.crt",
                  "on failure: the new cache is removed and the previous one started again"]),
        ]

    def _or_roll_back(self, mirror: MirrorSettings,
                      action: Callable[[], Outcome]) -> Callable[[], Outcome]:
        """The deployment's rollback, with the cache's files put back first: the kept cache
        mounts them by path, and Docker resolves that path again when it starts it."""

        def run() -> Outcome:
            try:
                return action()
            except Exception:
                self.put_files_back()  # of every cache the rollback will restart
                raise

        return self.deployment._or_roll_back(run, lambda: self._wait_until_up(mirror))

    def put_files_back(self) -> None:
        """The files of every cache a rollback will restart, as they were before this run."""
        for mirror in self.plan.mirrors:
            if self.deployment.replacements.holds(mirror_container_name(self.plan, mirror)):
                self._put_back(mirror)

    def _put_back(self, mirror: MirrorSettings) -> None:
        transport, sudo = self._transport(), self.plan.registry.sudo
        for path, (content, mode) in self._replaced_files.pop(mirror.slug, {}).items():
            if content is None:
                transport.run(["rm", "-f", "--", path], sudo=sudo)
            else:
                transport.write_file(path, content, mode=mode, sudo=sudo)

    def _config_details(self, mirror: MirrorSettings) -> list[str]:
        own = config_dir(self.plan, mirror.slug)
        lines = [f"{own}/{CONFIG_NAME} (0600 root): proxy.remoteurl {mirror.url}"]
        if mirror.private:
            lines.append(f"  proxy.username {mirror.username}, proxy.password from "
                         f"${mirror.password_env} (unset: the one this config.yml holds); "
                         "auth: the plan's accounts (htpasswd)")
        else:
            lines.append("  no login: anonymous pulls, pushes and deletes refused")
        if mirror.remote_ca:
            lines.append(f"{own}/{REMOTE_CA_NAME} (0644) from {mirror.remote_ca}: trusted by "
                         "this cache only (SSL_CERT_FILE)")
        lines.append(f"mkdir -p {cache_dir(self.plan, mirror)} (existing content is kept)")
        return lines

    # -- steps --------------------------------------------------------------------------------

    def _check_ports(self) -> Outcome:
        docker = self.deployment.docker
        for mirror in self.plan.mirrors:
            for container in docker.containers.list():
                if mirror.port in published_ports(container) and not self._ours(container):
                    raise DeployError(
                        f"port {mirror.port} on {self.where} is published by container "
                        f"{container.name}",
                        f"stop that container or choose another port for the mirror of "
                        f"{mirror.upstream}")
            if self._published_by_ours(mirror.port):
                # ours: replaced if needed (a stale cache is removed first)
                self.deployment._note_ephemeral(mirror.port)
                continue
            self.deployment._refuse_held_port(
                mirror.port, f"choose another port for the mirror of {mirror.upstream}")
        return Outcome.UNCHANGED

    def _ours(self, container: Any) -> bool:
        return is_cache_of(container, self.plan.registry.container_name)

    def _published_by_ours(self, port: int) -> bool:
        return any(self._ours(c) and port in published_ports(c)
                   for c in self.deployment.docker.containers.list(all=True))

    def _remove_stale(self) -> Outcome:
        """Caches of this registry whose upstream left the plan: container and config go, the
        cached blobs stay (uninstall --purge deletes them with the data directory)."""
        wanted = {mirror_container_name(self.plan, m) for m in self.plan.mirrors}
        removed = False
        for container in self.deployment.docker.containers.list(all=True):
            name = container.name.removesuffix(PREVIOUS_SUFFIX)
            if not self._ours(container) or name in wanted:
                continue
            container.remove(force=True)
            slug = (container.labels or {}).get(LABEL_MIRROR_SLUG, "")
            if slug and "/" not in slug and slug not in (".", ".."):
                self._transport().run(["rm", "-rf", "--", config_dir(self.plan, slug)],
                                      sudo=self.plan.registry.sudo)
            removed = True
        return Outcome.CHANGED if removed else Outcome.UNCHANGED

    def _configure(self, mirror: MirrorSettings) -> Outcome:
        password = self.deployment.secrets.mirror_password(mirror)
        if mirror.private and password is None:
            password = self._password_on_host(mirror)
        if mirror.private and password is None:
            raise DeployError(
                f"the mirror of {mirror.upstream} logs in as {mirror.username}, and "
                f"{mirror.password_env} is not set (and no earlier deploy wrote it on the host)",
                f"export {mirror.password_env} with the upstream password (it is never "
                "written to the plan), then deploy again", kind="mirror-password-missing")
        transport, sudo = self._transport(), self.plan.registry.sudo
        own = config_dir(self.plan, mirror.slug)
        changed = False
        for directory in (own, cache_dir(self.plan, mirror)):
            if not transport.run(["test", "-d", directory], check=False).ok:
                transport.run(["mkdir", "-p", "--", directory], sudo=sudo)
                changed = True
        config = render_config(self.plan, mirror, password)
        files = {f"{own}/{CONFIG_NAME}": (config, 0o600)}
        if mirror.remote_ca:
            files[f"{own}/{REMOTE_CA_NAME}"] = (self._remote_ca(mirror), 0o644)
        replaced = self._replaced_files.setdefault(mirror.slug, {})
        for path, (content, mode) in files.items():
            before = transport.read_file(path, sudo=sudo)
            if before != content:
                replaced[path] = (before, mode)  # put back if the new cache fails
                changed |= transport.write_file(path, content, mode=mode, sudo=sudo)
        self._configs[mirror.slug] = config
        return Outcome.CHANGED if changed else Outcome.UNCHANGED

    def _password_on_host(self, mirror: MirrorSettings) -> str | None:
        """The upstream password the last deploy wrote into the cache's config.yml: it is only
        needed again to change it (a later deploy, gc's or an accounts change, goes on)."""
        path = f"{config_dir(self.plan, mirror.slug)}/{CONFIG_NAME}"
        try:
            config = self._transport().read_file(path, sudo=self.plan.registry.sudo)
        except RegwizError:
            return None
        return config_password(config or b"")

    def _remote_ca(self, mirror: MirrorSettings) -> bytes:
        path = self.plan.local_path(mirror.remote_ca or "")
        try:
            pem = path.read_bytes()
        except OSError as error:
            raise DeployError(f"cannot read the mirror's remote_ca {path}: {error.strerror}",
                              f"fix mirrors.remote_ca of {mirror.upstream} in the plan") from None
        if b"PRIVATE KEY" in pem or b"-----BEGIN CERTIFICATE-----" not in pem:
            raise DeployError(f"{path} is not a PEM certificate (or holds a private key)",
                              f"point mirrors.remote_ca of {mirror.upstream} at the upstream's "
                              "CA certificate")
        return pem

    def _ensure(self, mirror: MirrorSettings) -> Outcome:
        deployment = self.deployment
        docker = deployment.docker
        spec = mirror_spec(self.plan, mirror, image=deployment.run_reference,
                           config_path=deployment.config_path)
        config = self._configs[mirror.slug]
        files = deployment._files
        labels = mirror_labels(
            self.plan, mirror, spec, cert_fingerprint=sha256_fingerprint(files.cert_pem),
            config=config_digest(config, files.key_pem),
            htpasswd=hashlib.sha256(deployment._htpasswd.content).hexdigest())
        image_id = docker.images.get(spec.image).id
        if not deployment.replacements.holds(spec.name):
            recover_leftover(docker, spec.name)
        existing = self._find(spec.name)
        if existing is not None and not self._ours(existing):
            raise DeployError(
                f"a container named {spec.name} exists on {self.where} that regwiz did not "
                "create", f"remove it (docker rm -f {spec.name}) or rename the registry "
                "container (registry.container_name)")
        kept = keep_or_set_aside(existing, existing is not None
                                 and matches(existing, labels, image_id), deployment.replacements)
        if kept is not None:
            return kept
        ports = {"443/tcp": spec.port if spec.bind_address == ALL_ADDRESSES
                 else (spec.bind_address, spec.port)}
        container = docker.containers.run(
            spec.image, name=spec.name, detach=True, restart_policy={"Name": "always"},
            environment=spec.environment, volumes=spec.volumes, labels=labels, ports=ports)
        self._verify_mounts(container, mirror, config)
        return Outcome.CHANGED

    def _verify_mounts(self, container: Any, mirror: MirrorSettings, config: bytes) -> None:
        """Without its config.yml the image's default would run (a plain, writable registry);
        without its htpasswd Distribution would invent a user."""
        expected = {self.deployment.config_path: config,
                    f"{CONTAINER_CERTS_DIR}/tls.crt": self.deployment._files.cert_pem}
        if mirror.private:
            expected[f"{CONTAINER_CERTS_DIR}/{HTPASSWD_NAME}"] = \
                self.deployment._htpasswd.content
        for inside, content in expected.items():
            if read_from_container(container, inside) != content:
                raise DeployError(
                    f"the cache container {container.name} does not see its file at {inside}",
                    "Docker may run in another filesystem view (rootless, snap, Docker "
                    "Desktop): choose a registry.certs_dir the daemon can bind-mount")

    def _wait_until_up(self, mirror: MirrorSettings) -> registry_api.PingResult:
        base = registry_api.base_url(self.plan.registry.address, mirror.port)
        ca = self.plan.cert_dir / "ca.crt"
        deadline = time.monotonic() + self.deployment.options.health_timeout
        result = registry_api.ping(base, ca)
        while not result.is_up and time.monotonic() < deadline:
            time.sleep(0.5)
            result = registry_api.ping(base, ca)
        return result

    def _health_check(self, mirror: MirrorSettings) -> Outcome:
        result = self._wait_until_up(mirror)
        name = mirror_container_name(self.plan, mirror)
        wanted = expected_status(mirror)
        if result.status == wanted and result.is_up:
            if mirror.private:
                self._check_login(mirror)
            return Outcome.UNCHANGED
        state = self._state(name)
        if not result.is_up:
            message = (f"the cache of {mirror.upstream} did not answer within "
                       f"{self.deployment.options.health_timeout:g} s: {result.error}"
                       f"\n    container {name}: {state}")
            tail = self.deployment._log_tail_of(name, 15)
            if tail:
                message += f"\n    container log of {name} (last lines):\n    " + \
                    "\n    ".join(tail.splitlines())
            raise DeployError(message, f"read its log with `docker logs {name}` on the host")
        raise DeployError(
            f"the cache of {mirror.upstream} answered HTTP {result.status}, not {wanted} ("
            + ("it must refuse anonymous clients" if mirror.private
               else "it must serve anonymous pulls") + ")",
            f"check {config_dir(self.plan, mirror.slug)}/{CONFIG_NAME} on the host")

    def _check_login(self, mirror: MirrorSettings) -> None:
        """A private cache lets the plan's accounts in (the operator's login, as the registry's
        own health check does)."""
        from app.accounts import OPERATOR, AccountStore

        credential = AccountStore(self.plan).credential(OPERATOR)
        if credential is None:
            return
        base = registry_api.base_url(self.plan.registry.address, mirror.port)
        answer = registry_api.ping(base, self.plan.cert_dir / "ca.crt", auth=registry_api.BasicAuth(
            credential.username, credential.password))
        if answer.status != 200:
            raise DeployError(
                f"the cache of {mirror.upstream} refused the account {credential.username} "
                f"(HTTP {answer.status})", "check its htpasswd mount; deploy again")

    # -- helpers ------------------------------------------------------------------------------

    def _state(self, name: str) -> str:
        from app.registry_host import describe_container_state

        container = self._find(name)
        return "no such container" if container is None else describe_container_state(
            container.attrs)

    def _find(self, name: str) -> Any | None:
        import docker.errors

        try:
            return self.deployment.docker.containers.get(name)
        except docker.errors.NotFound:
            return None

    def _transport(self) -> Any:
        return self.deployment.transport


def is_cache_of(container: Any, registry_container: str) -> bool:
    """A cache (or a kept NAME-previous) regwiz created for this registry container."""
    labels = container.labels or {}
    return (labels.get(LABEL_MANAGED) == "true"
            and labels.get(LABEL_MIRROR_OF) == registry_container)
