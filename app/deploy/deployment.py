"""The deploy steps of one plan, run on its ``RegistryHost``.

Order: local certificate check, connect (host key checked), Docker reachable, port free, disk
space, image present (``app.image_source``), certificates uploaded, data dir, optional htpasswd
(``app.htpasswd.reconcile``), container, health check. Preflight steps come first so a problem
stops the run before anything on the host changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import htpasswd as htp
from app import registry_api
from app.certs import certificate_problems, on_disk_differences
from app.deploy.container import (
    CONTAINER_CERTS_DIR,
    HTPASSWD_NAME,
    container_spec,
    matches,
    published_ports,
    read_from_container,
    sha256_fingerprint,
)
from app.deploy.probes import parse_df_available_kib, parse_listening_ports, parse_proc_net_tcp
from app.errors import DeployError, RegwizError
from app.image_source import ImageSource, describe_sources, local_docker_client, short_error
from app.plan import Plan, Secrets
from app.registry_host import LABEL_MANAGED, OnRegistryHost, RegistryHost
from app.steps import Outcome, Step
from app.transport.base import Transport, TransportError

if TYPE_CHECKING:
    import docker

DEFAULT_HEALTH_TIMEOUT = 30.0


@dataclass
class DeployOptions:
    """Knobs from the CLI or the TUI. ``local_docker`` gives the operator's Docker (air gap)."""

    image_tar: Path | None = None
    credentials_file: Path | None = None
    local_docker: Callable[[], docker.DockerClient] | None = field(
        default_factory=lambda: local_docker_client
    )
    allow_pull: bool = True
    health_timeout: float = DEFAULT_HEALTH_TIMEOUT
    min_free_mb: int = 512


@dataclass
class _Files:
    """What the local certificate check read, for the upload and container steps."""

    cert_pem: bytes = b""
    key_pem: bytes = b""
    ca_pem: bytes = b""


class Deployment(OnRegistryHost):
    """The deploy of one plan. ``steps()`` for run_steps/dry-run; read results afterwards
    (``deploy()`` in this package does both and returns a ``DeployReport``).

    ``connect`` opens the transport (so a dry run never connects); pass ``transport`` instead
    when the caller already holds one.
    """

    def __init__(
        self,
        plan: Plan,
        secrets: Secrets,
        options: DeployOptions | None = None,
        *,
        connect: Callable[[], Transport] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.plan = plan
        self.secrets = secrets
        self.options = options or DeployOptions()
        self.host = RegistryHost(plan, connect=connect, transport=transport)  # needs one of them
        self.where = plan.registry.host
        self.container_id: str | None = None
        #: set when a password was generated in this run: show it once, it is not kept elsewhere
        self.new_credentials: htp.Credentials | None = None
        self._files = _Files()
        self._htpasswd = htp.HtpasswdState(b"", htp.DEFAULT_USERNAME, None)

    # -- public ---------------------------------------------------------------------------

    def steps(self) -> list[Step]:
        registry = self.plan.registry
        files = self.plan.cert_dir
        host = self.host
        steps = [
            Step(f"Check the certificate covers {registry.address}", "local",
                 "Docker and containerd refuse a registry whose certificate lacks its address",
                 self._check_certificate, [f"files: {files}/tls.crt, tls.key, ca.crt"]),
            Step("Connect (host key checked)", self.where,
                 "every later step runs over this verified connection", unchanged(host.open),
                 [f"ssh {registry.ssh_user}@{registry.host} -p {registry.ssh_port}"
                  if registry.host != "local" else "this machine, no SSH"]),
            Step("Check Docker is installed and reachable", self.where,
                 "the registry runs as a Docker container", unchanged(host.open_docker),
                 ["docker system dial-stdio over the SSH link (sudo if needed)"]),
            Step(f"Check port {registry.port} is free", self.where,
                 "another service on the published port would make the container fail",
                 self._check_port, [f"ss -ltnH; docker port bindings for {registry.port}"]),
            Step(f"Check free disk space for {registry.data_dir}", self.where,
                 "images pushed to the registry are stored there", self._check_disk,
                 [f"df -Pk {registry.data_dir} (at least {self.options.min_free_mb} MiB)"]),
            Step(f"Make image {registry.image} available", self.where,
                 "the container needs its image; air-gapped hosts get it copied",
                 self._ensure_image, describe_sources(self.options.image_tar)),
            Step(f"Upload tls.crt and tls.key to {registry.certs_dir}", self.where,
                 "the registry serves this certificate; the CA key stays on this machine",
                 self._upload_certificates,
                 [f"{registry.certs_dir}/tls.crt (0644)",
                  f"{registry.certs_dir}/tls.key (0600 root)"]),
            Step("Trust the CA in this host's Docker", self.where,
                 "images are usually built and pushed on the registry host itself",
                 self._trust_ca_locally, [f"{host.docker_ca_path()} (0644, no restart)"]),
            Step(f"Create data directory {registry.data_dir}", self.where,
                 "pushed images survive container re-creation", self._ensure_data_dir,
                 [f"mkdir -p {registry.data_dir} (existing content is never touched)"]),
        ]
        if registry.auth == "htpasswd":
            steps.append(Step(
                "Set up htpasswd credentials", self.where,
                "the registry accepts only users in this bcrypt file", self._ensure_htpasswd,
                [f"{registry.certs_dir}/{HTPASSWD_NAME} (0600 root)",
                 f"credentials file: {self.options.credentials_file or 'not kept (shown once)'}"]))
        steps += [
            Step(f"Run container {registry.container_name}", self.where,
                 "the registry itself, restarted by Docker after reboots", self._ensure_container,
                 container_spec(self.plan).details()),
            Step(f"Health check {self.plan.registry_address.api_url}", "local",
                 "proves TLS with our CA and the registry API answer", self._health_check,
                 [f"up to {self.options.health_timeout:g} s, trusting only {files}/ca.crt"]),
        ]
        return [guarded(step) for step in steps]

    def container_log_tail(self, lines: int = 30) -> str:
        """The container's last log lines (empty when there is no container or no connection)."""
        return self.host.container_log_tail(lines)

    def container_state(self) -> str:
        return self.host.container_state()

    def docker_ca_path(self) -> str:
        return self.host.docker_ca_path()

    @property
    def transport(self) -> Transport:
        return self.host.transport

    @property
    def docker(self) -> Any:
        return self.host.docker

    # -- steps ------------------------------------------------------------------------------

    def _check_certificate(self) -> Outcome:
        directory = self.plan.cert_dir
        try:
            cert_pem = (directory / "tls.crt").read_bytes()
            key_pem = (directory / "tls.key").read_bytes()
            ca_pem = (directory / "ca.crt").read_bytes()
        except OSError as error:
            raise DeployError(
                f"cannot read {error.filename}: {error.strerror}",
                "create the certificates first: regwiz certs --plan FILE",
            ) from None
        if b"PRIVATE KEY" in ca_pem:
            # ca.crt is copied to the registry host and every node: it must never carry a key.
            raise DeployError(f"{directory / 'ca.crt'} contains a private key; refusing to copy "
                              "it to the registry host",
                              "keep ca.crt certificate-only (the key belongs in ca.key)")
        problems = certificate_problems(cert_pem, key_pem, ca_pem, self.plan.registry.address)
        if problems:
            raise DeployError(
                "; ".join(problems),
                "fix certificate.subject_alt_names / registry.address, then run "
                "regwiz certs --renew --plan FILE",
            )
        if drift := on_disk_differences(self.plan):
            # Serving it would ship a certificate the plan no longer describes, as healthy.
            raise DeployError(
                f"the server certificate in {directory} differs from the plan: "
                + "; ".join(drift),
                "reissue it with regwiz certs --plan FILE (the wizard's Generate), then deploy "
                "again",
            )
        self._files = _Files(cert_pem, key_pem, ca_pem)
        return Outcome.UNCHANGED

    def _check_port(self) -> Outcome:
        port = self.plan.registry.port
        ours = self.host.find_container()
        for container in self.docker.containers.list():
            if port in published_ports(container) and (ours is None or container.id != ours.id):
                raise DeployError(
                    f"port {port} on {self.where} is published by container {container.name}",
                    "stop that container or choose another registry.port in the plan",
                )
        if ours is not None and port in published_ports(ours):
            return Outcome.UNCHANGED  # ours (even while restarting): it is replaced if needed
        holder = self._listener_on(port)
        if holder is not None:
            raise DeployError(
                f"port {port} on {self.where} is already in use: {holder}",
                "stop the service using it or choose another registry.port in the plan",
            )
        return Outcome.UNCHANGED

    def _listener_on(self, port: int) -> str | None:
        sudo = self.plan.registry.sudo
        for argv, use_sudo in ((["ss", "-ltnpH"], sudo), (["ss", "-ltnH"], False)):
            try:
                result = self.transport.run(argv, sudo=use_sudo, check=False, timeout=30)
            except TransportError:
                continue
            if result.ok:
                return parse_listening_ports(result.stdout).get(port)
        tables = self.transport.run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], check=False)
        return f"a listening socket on :{port}" if port in parse_proc_net_tcp(tables.stdout) \
            else None

    def _check_disk(self) -> Outcome:
        script = 'p=$1; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done; df -Pk -- "$p"'
        result = self.transport.run(["sh", "-c", script, "sh", self.plan.registry.data_dir])
        available = parse_df_available_kib(result.stdout)
        if available is None:
            raise DeployError(f"cannot read free space from df on {self.where}")
        if available < self.options.min_free_mb * 1024:
            raise DeployError(
                f"only {available // 1024} MiB free for {self.plan.registry.data_dir} on "
                f"{self.where} (need {self.options.min_free_mb} MiB)",
                "free disk space or point registry.data_dir at a larger filesystem",
            )
        return Outcome.UNCHANGED

    def _ensure_image(self) -> Outcome:
        source = ImageSource(self.docker, self.where, image_tar=self.options.image_tar,
                             allow_pull=self.options.allow_pull,
                             local_docker=self.options.local_docker)
        return source.ensure(self.plan.registry.image)

    def _upload_certificates(self) -> Outcome:
        sudo = self.plan.registry.sudo
        crt = self.transport.write_file(self.host.remote_path("tls.crt"), self._files.cert_pem,
                                        mode=0o644, sudo=sudo)
        key = self.transport.write_file(self.host.remote_path("tls.key"), self._files.key_pem,
                                        mode=0o600, sudo=sudo)
        return Outcome.CHANGED if crt or key else Outcome.UNCHANGED

    def _trust_ca_locally(self) -> Outcome:
        changed = self.transport.write_file(self.host.docker_ca_path(), self._files.ca_pem,
                                            mode=0o644, sudo=self.plan.registry.sudo)
        return Outcome.CHANGED if changed else Outcome.UNCHANGED

    def _ensure_data_dir(self) -> Outcome:
        data_dir = self.plan.registry.data_dir
        if self.transport.run(["test", "-d", data_dir], check=False).ok:
            return Outcome.UNCHANGED
        self.transport.run(["mkdir", "-p", "--", data_dir], sudo=self.plan.registry.sudo)
        return Outcome.CHANGED

    def _ensure_htpasswd(self) -> Outcome:
        path = self.host.remote_path(HTPASSWD_NAME)
        sudo = self.plan.registry.sudo
        kept = self.options.credentials_file
        saved = htp.read_credentials(kept) if kept else None
        state = htp.reconcile(self.transport.read_file(path, sudo=sudo), saved,
                              self.secrets.registry_password)
        if state.changed:
            self.transport.write_file(path, state.content, mode=0o600, sudo=sudo)
        if state.password is not None:
            credentials = htp.Credentials(self.plan.registry_reference, state.username,
                                          state.password)
            htp.keep_credentials(kept, credentials, saved)
            if state.generated:
                self.new_credentials = credentials
        self._htpasswd = state
        return Outcome.CHANGED if state.changed else Outcome.UNCHANGED

    def _ensure_container(self) -> Outcome:
        spec = container_spec(self.plan)
        labels = spec.labels(
            sha256_fingerprint(self._files.cert_pem),
            hashlib.sha256(self._htpasswd.content).hexdigest(),
        )
        image_id = self.docker.images.get(spec.image).id
        existing = self.host.find_container()
        if existing is not None and existing.labels.get(LABEL_MANAGED) != "true":
            raise DeployError(
                f"a container named {spec.name} exists on {self.where} that regwiz did not create",
                f"remove it (docker rm -f {spec.name}) or set registry.container_name to "
                "another name",
            )
        if existing is not None and matches(existing, labels, image_id):
            self.container_id = existing.id
            if existing.status == "running":
                return Outcome.UNCHANGED
            existing.start()
            self._verify_mounts(existing)
            return Outcome.CHANGED
        if existing is not None:
            existing.remove(force=True)  # the data volume is a host dir: nothing is lost
        container = self.docker.containers.run(
            spec.image,
            name=spec.name,
            detach=True,
            restart_policy={"Name": "always"},
            environment=spec.environment,
            volumes=spec.volumes,
            ports={"443/tcp": spec.port},
            labels=labels,
        )
        self.container_id = container.id
        self._verify_mounts(container)
        return Outcome.CHANGED

    def _verify_mounts(self, container: Any) -> None:
        """The registry invents a random user when htpasswd is missing: check what it sees."""
        expected = {}
        if self.plan.registry.auth == "htpasswd":  # first: its absence is the silent failure
            expected[HTPASSWD_NAME] = self._htpasswd.content
        expected["tls.crt"] = self._files.cert_pem
        for name, content in expected.items():
            seen = read_from_container(container, f"{CONTAINER_CERTS_DIR}/{name}")
            if seen != content:
                raise DeployError(
                    f"the container does not see {self.host.remote_path(name)} at "
                    f"{CONTAINER_CERTS_DIR}/{name}",
                    "Docker may run in another filesystem view (rootless, snap, Docker "
                    "Desktop): choose a registry.certs_dir the daemon can bind-mount",
                )

    def _health_check(self) -> Outcome:
        base = registry_api.base_url(self.plan.registry.address, self.plan.registry.port)
        ca = self.plan.cert_dir / "ca.crt"
        deadline = time.monotonic() + self.options.health_timeout
        result = registry_api.ping(base, ca)
        while not result.is_up and time.monotonic() < deadline:
            time.sleep(0.5)
            result = registry_api.ping(base, ca)
        if not result.is_up:
            state = self.host.container_state()
            hint = result.hint or "check the address, port and certificate"
            if state and not state.startswith("running steadily"):
                hint = (f"the container is not running steadily: read its log with "
                        f"`docker logs {self.plan.registry.container_name}` on the host")
            raise DeployError(self._health_message(result, state), hint)
        if self.plan.registry.auth == "htpasswd":
            self._check_login(base, ca)
        return Outcome.UNCHANGED

    def _health_message(self, result: registry_api.PingResult, state: str) -> str:
        lines = [f"the registry did not answer within {self.options.health_timeout:g} s: "
                 f"{result.error}"]
        if state:
            lines.append(f"container {self.plan.registry.container_name}: {state}")
        tail = self.container_log_tail(15)
        if tail:
            lines += ["container log (last lines):", *tail.splitlines()]
        return "\n    ".join(lines)

    def _check_login(self, base: str, ca: Path) -> None:
        user, password = self._htpasswd.username, self._htpasswd.password
        if password is None:
            return
        answer = registry_api.ping(base, ca, auth=registry_api.BasicAuth(user, password))
        if answer.status != 200:
            raise DeployError(
                f"the registry refused the credentials for {user} (HTTP {answer.status})",
                "check the htpasswd mount; deploy again to rewrite it",
            )


def unchanged(action: Callable[[], object]) -> Callable[[], Outcome]:
    """A step that only checks or connects: it changes nothing on the host."""

    def run() -> Outcome:
        action()
        return Outcome.UNCHANGED

    return run


def guarded(step: Step) -> Step:
    """Docker SDK and socket errors become step failures with a message, never a traceback."""
    run = step.run

    def run_guarded() -> Outcome:
        import docker.errors
        import requests

        try:
            return run()
        except RegwizError:
            raise
        except docker.errors.APIError as error:
            detail = error.explanation or str(error)
            raise DeployError(f"Docker on {step.where} refused: {_short_text(detail)}",
                              "fix what the message names and run again") from None
        except (docker.errors.DockerException, requests.RequestException, OSError) as error:
            raise DeployError(f"talking to Docker on {step.where} failed: {short_error(error)}",
                              "check that dockerd runs and the connection is up") from None

    return dataclasses.replace(step, run=run_guarded)


def _short_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(text.split())[:300]
