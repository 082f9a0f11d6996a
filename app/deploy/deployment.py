"""The deploy steps of one plan, run on its ``RegistryHost``.

Order: local certificate check, connect (host key checked), Docker reachable, port free, disk
space, image present (``app.image_source``), certificates uploaded, data dir, optional htpasswd
(``app.htpasswd.reconcile``), container, health check. Preflight steps come first so a problem
stops the run before anything on the host changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import htpasswd as htp
from app import registry_api
from app.certs import CertFiles, certificate_problems, on_disk_differences
from app.deploy.caches import Caches
from app.deploy.container import (
    CONTAINER_CERTS_DIR,
    HTPASSWD_NAME,
    ContainerSpec,
    container_spec,
    matches,
    published_ports,
    read_from_container,
    sha256_fingerprint,
)
from app.deploy.front import (
    FRONT_CONFIG_NAME,
    FRONT_MOUNT,
    front_spec,
    render_front_config,
    uses_front,
)
from app.deploy.probes import (
    DATA_MARKER,
    parse_df_available_kib,
    parse_port_holders,
    parse_port_range,
    parse_proc_net_tcp,
    parse_reserved_ports,
)
from app.deploy.rollback import (
    Replacements,
    keep_or_set_aside,
    previous_name,
    recover_leftover,
)
from app.distribution import DISTRIBUTION_2, Distribution, from_image_config
from app.errors import DeployError, RegwizError
from app.image_pin import ImageFacts, lookup_references, moved_note, pin_detail
from app.image_source import ImageSource, describe_sources, local_docker_client, short_error
from app.plan import ALL_ADDRESSES, Plan, Secrets
from app.registry_host import (
    LABEL_MANAGED,
    OnRegistryHost,
    RegistryHost,
    describe_container_state,
)
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
    read_only: bool = False  # Distribution's read-only mode (a garbage-collection window)
    #: a successful deploy of an unpinned plan records the image it runs (``upgrade`` says no:
    #: it moves the pin itself once the new image serves)
    record_pin: bool = True


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
        self._front_config = b""
        #: accounts created by this run (names only; their passwords are in their files)
        self.created_accounts: list[str] = []
        #: old containers kept (stopped, NAME-previous) until the new ones are healthy
        self.replacements = Replacements()
        self._failed_log = ""  # the log of new containers a rollback removed
        #: the registry image this run uses (the pinned one, or what the tag names when there
        #: is no pin yet), read by the image step
        self.image: ImageFacts | None = None
        self._run_reference = plan.registry.image  # what docker run gets
        self._distribution: Distribution | None = None
        #: what the operator should know although nothing failed (e.g. the tag moved)
        self.notes: list[str] = []
        self.caches = Caches(self)

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
                 self._check_port,
                 [f"ss -tanH (listeners and connections); docker port bindings for "
                  f"{registry.port}; outside the host's range for outgoing connections"]),
            *self.caches.port_steps(),
            Step(f"Check free disk space for {registry.data_dir}", self.where,
                 "images pushed to the registry are stored there", self._check_disk,
                 [f"df -Pk {registry.data_dir} (at least {self.options.min_free_mb} MiB)"]),
            Step(f"Make image {registry.image} available", self.where,
                 "the container needs its image; air-gapped hosts get it copied",
                 self._ensure_image,
                 [pin_detail(registry.image, registry.image_digest),
                  *describe_sources(self.options.image_tar)]),
            *([Step(f"Make front image {registry.front_image} available", self.where,
                    "the front enforces the accounts' roles; air-gapped hosts get it copied",
                    self._ensure_front_image, describe_sources(self.options.image_tar))]
              if uses_front(self.plan) else []),
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
                 [f"mkdir -p {registry.data_dir} (existing content is never touched)",
                  f"{registry.data_dir}/{DATA_MARKER} (0644: marks it as registry data)"]),
        ]
        if uses_front(self.plan):
            front = front_spec(self.plan)
            steps += self.account_steps()
            steps += [
                Step(f"Create private network {front.network}", self.where,
                     "the registry is reachable only from its front", self._ensure_network,
                     [f"docker network create {front.network}"]),
                Step(f"Run container {registry.container_name}", self.where,
                     "the registry itself (no published port), restarted by Docker after "
                     "reboots", self._or_roll_back(self._ensure_container),
                     self._replace_details(self._spec().details(),
                                           registry.container_name)),
                Step(f"Run front {front.name} on {front.bind_address}:{front.port}", self.where,
                     "TLS, basic auth and the push/pull roles, in front of the registry",
                     self._or_roll_back(self._ensure_front),
                     self._replace_details(front.details(), front.name)),
            ]
        else:
            steps.append(
                Step(f"Run container {registry.container_name}", self.where,
                     "the registry itself, restarted by Docker after reboots",
                     self._or_roll_back(self._ensure_container),
                     self._replace_details(self._spec().details(),
                                           registry.container_name)))
        steps += self._verify_steps()
        steps += self.caches.steps()
        return [guarded(step) for step in steps]

    def _verify_steps(self) -> list[Step]:
        """The health check (a failure rolls back to the previous containers), then their
        removal: kept until then so a new container that cannot serve costs nothing."""
        kept = [previous_name(self.plan.registry.container_name),
                previous_name(front_spec(self.plan).name)]  # the front also when auth = "none"
        return [
            Step(f"Health check {self.plan.registry_address.api_url}", "local",
                 "proves TLS with our CA and the registry API answer",
                 self._or_roll_back(self._health_check),
                 [f"up to {self.options.health_timeout:g} s, trusting only "
                  f"{CertFiles(self.plan.cert_dir).trusted}",
                  "on failure: the new containers are removed and the previous ones started "
                  "again under their names"]),
            Step("Remove the previous containers", self.where,
                 "the new ones passed the health check", self._remove_previous,
                 [f"docker rm -f {' '.join(kept)} (if this run replaced them)"]),
        ]

    @staticmethod
    def _replace_details(details: list[str], name: str) -> list[str]:
        return [*details,
                f"a changed container is stopped and kept as {previous_name(name)} until the "
                "health check passed",
                f"a {previous_name(name)} left by an interrupted deploy is started again when "
                f"{name} is missing, else removed"]

    def account_steps(self) -> list[Step]:
        """Write the accounts' htpasswd and the front's config (unguarded; see steps())."""
        registry = self.plan.registry
        store = self._store()
        return [Step(
            "Write the accounts' htpasswd and the front's config", self.where,
            "the front accepts only these accounts, and lets only push accounts change images",
            self._write_accounts,
            [f"{registry.certs_dir}/{HTPASSWD_NAME} (0600 root, bcrypt)",
             f"{registry.certs_dir}/{FRONT_CONFIG_NAME} (0644)",
             f"accounts: {store.path} (first deploy: operator (push), cluster (pull))"])]

    def sync_steps(self) -> list[Step]:
        """After an accounts change: the host's htpasswd, and the front when its config
        changed (a new or revoked push account). A rotated password needs no restart: nginx
        reads the htpasswd file on every request."""
        registry = self.plan.registry
        front = front_spec(self.plan)
        steps = [
            Step("Read the certificate", "local", "the front's labels carry its fingerprint",
                 self._check_certificate),
            Step("Connect (host key checked)", self.where, "every later step runs over this link",
                 unchanged(self.host.open),
                 [f"ssh {registry.ssh_user}@{registry.host} -p {registry.ssh_port}"]),
            Step("Reach Docker", self.where, "the front is a Docker container",
                 unchanged(self.host.open_docker)),
            *self.account_steps(),
            Step(f"Update front {front.name}", self.where,
                 "it must know the push accounts (a new config means a new container)",
                 self._or_roll_back(self._ensure_front),
                 self._replace_details(front.details(), front.name)),
            *self._verify_steps(),
            *self.caches.sync_steps(),
        ]
        return [guarded(step) for step in steps]

    def container_log_tail(self, lines: int = 30) -> str:
        """The container's last log lines (empty when there is no container or no connection);
        after a rollback, those of the new containers it removed."""
        return self._failed_log or self.host.container_log_tail(lines)

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
        # ca.crt, or both CAs while a rotation runs: the registry host trusts what nodes do
        ca_path = CertFiles(directory).trusted
        try:
            cert_pem = (directory / "tls.crt").read_bytes()
            key_pem = (directory / "tls.key").read_bytes()
            ca_pem = ca_path.read_bytes()
        except OSError as error:
            raise DeployError(
                f"cannot read {error.filename}: {error.strerror}",
                "create the certificates first: regwiz certs --plan FILE",
            ) from None
        if b"PRIVATE KEY" in ca_pem:
            # ca.crt is copied to the registry host and every node: it must never carry a key.
            raise DeployError(f"{ca_path} contains a private key; refusing to copy it to the "
                              "registry host",
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
        registry = self.host.find_container()
        front = self._find_front()
        ours = front if front is not None and port in published_ports(front) else registry
        mine = {c.id for c in (registry, front) if c is not None}
        for container in self.docker.containers.list():
            if port in published_ports(container) and container.id not in mine:
                raise DeployError(
                    f"port {port} on {self.where} is published by container {container.name}",
                    "stop that container or choose another registry.port in the plan",
                )
        if ours is not None and port in published_ports(ours):
            self._note_ephemeral(port)
            return Outcome.UNCHANGED  # ours (even while restarting): it is replaced if needed
        self._refuse_held_port(port, "choose another registry.port in the plan")
        return Outcome.UNCHANGED

    def _refuse_held_port(self, port: int, choose_another: str) -> None:
        """Fails when a socket on the host holds ``port``; notes a port that the kernel may
        hand to an outgoing connection at any time (the next restart could then fail)."""
        holder = self._port_holder(port)
        if holder is not None:
            ephemeral = self._ephemeral_range(port)
            why = (f"; ports {ephemeral[0]}-{ephemeral[1]} are what this host gives outgoing "
                   "connections, so a port below them is safer" if ephemeral else "")
            raise DeployError(f"port {port} on {self.where} is already in use: {holder}",
                              f"stop what uses it or {choose_another}{why}")
        self._note_ephemeral(port)

    def _note_ephemeral(self, port: int) -> None:
        """A note when ``port`` lies in the host's range for outgoing connections."""
        ephemeral = self._ephemeral_range(port)
        if ephemeral is None:
            return
        note = (f"port {port} on {self.where} lies in the range this host gives outgoing "
                f"connections ({ephemeral[0]}-{ephemeral[1]}): one of them can hold it when "
                f"the container restarts; choose a port below {ephemeral[0]} or reserve it "
                "(sysctl net.ipv4.ip_local_reserved_ports)")
        if note not in self.notes:
            self.notes.append(note)

    def _port_holder(self, port: int) -> str | None:
        """Who holds ``port`` on the host: a listener, or any connection bound to it."""
        sudo = self.plan.registry.sudo
        for argv, use_sudo in ((["ss", "-tanpH"], sudo), (["ss", "-tanH"], False)):
            try:
                result = self.transport.run(argv, sudo=use_sudo, check=False, timeout=30)
            except TransportError:
                continue
            if result.ok:
                return parse_port_holders(result.stdout).get(port)
        tables = self.transport.run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], check=False,
                                    timeout=30)
        return parse_proc_net_tcp(tables.stdout).get(port)

    def _ephemeral_range(self, port: int) -> tuple[int, int] | None:
        """The host's range for outgoing connections when ``port`` lies in it and is not
        reserved; None otherwise, or when the host does not say."""
        span, reserved = self._host_port_range
        if span is None or not span[0] <= port <= span[1] or port in reserved:
            return None
        return span

    @functools.cached_property
    def _host_port_range(self) -> tuple[tuple[int, int] | None, frozenset[int]]:
        """The host's range for outgoing connections and its reserved ports, read once: the
        registry's port and every cache's are checked against them."""
        result = self.transport.run(
            ["sh", "-c", "cat /proc/sys/net/ipv4/ip_local_port_range && "
             "{ cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null; true; }"],
            check=False, timeout=30)
        lines = result.stdout.splitlines() if result.ok else []
        span = parse_port_range(lines[0]) if lines else None
        reserved = parse_reserved_ports(lines[1] if len(lines) > 1 else "") or set()
        return span, frozenset(reserved)

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

    def _ensure_plan_image(self, image: str) -> Outcome:
        """Make ``image`` available on the host, from the sources the options allow."""
        source = ImageSource(self.docker, self.where, image_tar=self.options.image_tar,
                             allow_pull=self.options.allow_pull,
                             local_docker=self.options.local_docker)
        return source.ensure(image)

    def _ensure_image(self) -> Outcome:
        """The registry image: the pinned one when the plan has a pin (a tag that moved on the
        host is noted, never followed), else what the tag names now (pinned after the run)."""
        image, pin = self.plan.registry.image, self.plan.registry.image_digest
        if pin is None:
            outcome = self._ensure_plan_image(image)
            self._use(self._tag_facts(image), image)
            return outcome
        pinned = self._find_pinned(image, pin)
        outcome = Outcome.UNCHANGED
        if pinned is None:
            outcome = self._ensure_pinned(image, pin)
            pinned = self._find_pinned(image, pin)
        assert pinned is not None  # _ensure_pinned raises when it could not bring it
        tag = self._facts(image)
        if tag is not None and tag.image_id == pinned.image_id:
            self._use(pinned, image)  # the tag still names it: containers keep showing the tag
            return outcome
        self.notes.append(moved_note(image, self.where, pin, tag.image_id if tag else None))
        self._use(pinned, pinned.run_reference(image, pin))
        return outcome

    @property
    def run_reference(self) -> str:
        """What ``docker run`` gets: the pinned image, not the tag when that moved."""
        return self._run_reference

    @property
    def config_path(self) -> str:
        """The config file this image's Distribution reads (the caches mount theirs there)."""
        return (self._distribution or DISTRIBUTION_2).config_path

    def _tag_facts(self, image: str) -> ImageFacts:
        facts = self._facts(image)
        if facts is None:
            raise DeployError(f"image {image} vanished from {self.where} during the deploy",
                              "deploy again")
        return facts

    def _use(self, facts: ImageFacts, reference: str) -> None:
        self.image = facts
        self._run_reference = reference
        self._distribution = from_image_config(facts.config)

    def _facts(self, reference: str) -> ImageFacts | None:
        import docker.errors

        try:
            return ImageFacts.from_attrs(self.docker.images.get(reference).attrs)
        except (docker.errors.ImageNotFound, docker.errors.InvalidArgument):
            return None
        except docker.errors.APIError as error:
            if error.status_code in (400, 404):  # a repo@digest Docker cannot resolve
                return None
            raise

    def _find_pinned(self, image: str, pin: str) -> ImageFacts | None:
        for reference in lookup_references(image, pin):
            facts = self._facts(reference)
            if facts is not None and facts.matches(pin):
                return facts
        return None

    def _ensure_pinned(self, image: str, pin: str) -> Outcome:
        """Bring the pinned image: a pull by digest, the operator's archive, or this machine's
        Docker — each only counts when the pinned image is then there."""
        source = ImageSource(self.docker, self.where, image_tar=self.options.image_tar,
                             allow_pull=self.options.allow_pull,
                             local_docker=self.options.local_docker)
        return source.ensure(
            lookup_references(image, pin)[0],
            present=lambda: self._find_pinned(image, pin) is not None,
            local_names=lookup_references(image, pin),
            named=f"the pinned image {pin} (registry.image_digest)",
            hint=f"load that image on the host (docker load, or --image-tar), or move the pin "
                 f"to what {image} names now: regwiz upgrade --plan FILE --image {image}")

    @property
    def pin(self) -> str | None:
        """The pin of the image this run deployed (None before the image step ran)."""
        if self.image is None:
            return None
        return self.plan.registry.image_digest or self.image.pin_for(self.plan.registry.image)

    def _ensure_front_image(self) -> Outcome:
        return self._ensure_plan_image(self.plan.registry.front_image)

    def _store(self) -> Any:
        from app.accounts import AccountStore

        return AccountStore(self.plan)

    def _write_accounts(self) -> Outcome:
        store = self._store()
        created = store.ensure_defaults(self.options.credentials_file,
                                        self.secrets.registry_password)
        self.created_accounts = [account.name for account in created]
        self._keep_legacy_file(store)
        sudo = self.plan.registry.sudo
        path = self.host.remote_path(HTPASSWD_NAME)
        content = store.htpasswd_content(self.transport.read_file(path, sudo=sudo))
        wrote = self.transport.write_file(path, content, mode=0o600, sudo=sudo)
        self._htpasswd = htp.HtpasswdState(content, "operator", None)
        self._front_config = render_front_config(self.plan, store.push_accounts())
        config = self.transport.write_file(self.host.remote_path(FRONT_CONFIG_NAME),
                                           self._front_config, mode=0o644, sudo=sudo)
        return Outcome.CHANGED if wrote or config or created else Outcome.UNCHANGED

    def _keep_legacy_file(self, store: Any) -> None:
        """``--credentials-file`` (the TUI's registry-credentials.json) that does not exist yet:
        the operator's login is written there too (0600, the old format), for the commands
        and tools that still read that file."""
        legacy = self.options.credentials_file
        if legacy is None or legacy.exists():
            return
        from app.accounts import OPERATOR

        operator = store.credential(OPERATOR)
        if operator is not None:
            htp.write_credentials(legacy, operator)

    def _ensure_network(self) -> Outcome:
        import docker.errors

        name = front_spec(self.plan).network
        try:
            self.docker.networks.get(name)
            return Outcome.UNCHANGED
        except docker.errors.NotFound:
            pass
        self.docker.networks.create(name, driver="bridge", labels={LABEL_MANAGED: "true"})
        return Outcome.CHANGED

    def _find_front(self) -> Any | None:
        import docker.errors

        try:
            return self.docker.containers.get(front_spec(self.plan).name)
        except docker.errors.NotFound:
            return None

    def _ensure_front(self) -> Outcome:
        spec = front_spec(self.plan)
        registry = self.host.find_container()
        if registry is None:
            raise DeployError(f"the registry container {self.plan.registry.container_name} is "
                              f"missing on {self.where}", "run regwiz deploy --plan FILE")
        labels = spec.labels(sha256_fingerprint(self._files.cert_pem),
                             hashlib.sha256(self._front_config).hexdigest(), registry.id)
        image_id = self.docker.images.get(spec.image).id
        self._recover_leftover(spec.name)
        existing = self._find_front()
        if existing is not None and existing.labels.get(LABEL_MANAGED) != "true":
            raise DeployError(
                f"a container named {spec.name} exists on {self.where} that regwiz did not create",
                f"remove it (docker rm -f {spec.name}) or set registry.container_name to "
                "another name")
        kept = keep_or_set_aside(existing, existing is not None
                                 and matches(existing, labels, image_id), self.replacements)
        if kept is not None:
            return kept
        front = self._run_front(spec, labels)
        expected = {f"{FRONT_MOUNT}/{HTPASSWD_NAME}": self._htpasswd.content,
                    f"{FRONT_MOUNT}/tls.crt": self._files.cert_pem,
                    "/etc/nginx/nginx.conf": self._front_config}
        for inside, content in expected.items():
            if read_from_container(front, inside) != content:
                raise DeployError(
                    f"the front container does not see {self.plan.registry.certs_dir} at "
                    f"{inside}",
                    "Docker may run in another filesystem view (rootless, snap, Docker "
                    "Desktop): choose a registry.certs_dir the daemon can bind-mount")
        return Outcome.CHANGED

    def _run_front(self, spec: Any, labels: dict[str, str]) -> Any:
        import docker.errors

        try:
            return self.docker.containers.run(
                spec.image, name=spec.name, detach=True, restart_policy={"Name": "always"},
                volumes=spec.volumes, network=spec.network,
                ports={"443/tcp": (spec.bind_address, spec.port)}, labels=labels)
        except docker.errors.APIError as error:
            detail = _short_text(error.explanation or str(error))
            if "mount" not in detail:  # e.g. an entrypoint that does not exist: not a mount
                raise
            with contextlib.suppress(docker.errors.APIError, docker.errors.NotFound):
                self.docker.containers.get(spec.name).remove(force=True)
            raise DeployError(
                f"the front container does not see {self.plan.registry.certs_dir}/"
                f"{FRONT_CONFIG_NAME} (Docker: {detail})",
                "Docker may run in another filesystem view (rootless, snap, Docker Desktop): "
                "choose a registry.certs_dir the daemon can bind-mount") from None

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
        """The data dir and its marker: what lets ``uninstall --purge`` know it is ours."""
        registry = self.plan.registry
        made = False
        if not self.transport.run(["test", "-d", registry.data_dir], check=False).ok:
            self.transport.run(["mkdir", "-p", "--", registry.data_dir], sudo=registry.sudo)
            made = True
        marker = posixpath.join(registry.data_dir, DATA_MARKER)
        text = (f"registry data of regwiz: container {registry.container_name}, registry "
                f"{self.plan.registry_reference}\n").encode()
        wrote = self.transport.write_file(marker, text, mode=0o644, sudo=registry.sudo)
        return Outcome.CHANGED if made or wrote else Outcome.UNCHANGED

    def _spec(self) -> ContainerSpec:
        return container_spec(self.plan, read_only=self.options.read_only,
                              distribution=self._distribution)

    def _ensure_container(self) -> Outcome:
        spec = self._spec()
        labels = spec.labels(
            sha256_fingerprint(self._files.cert_pem),
            hashlib.sha256(self._htpasswd.content).hexdigest(),
        )
        if uses_front(self.plan):  # TLS and htpasswd are the front's: they restart nothing here
            labels = spec.labels("behind-front", "behind-front")
        image_id = self.image.image_id if self.image else self.docker.images.get(spec.image).id
        self._recover_leftover(spec.name)
        self._recover_leftover(front_spec(self.plan).name, wanted=uses_front(self.plan))
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
        self._set_aside_for(existing)
        publish: dict[str, Any] = {}
        if spec.port is not None:
            publish["ports"] = {"443/tcp": spec.port if spec.bind_address == ALL_ADDRESSES
                                else (spec.bind_address, spec.port)}
        if spec.network is not None:
            publish["network"] = spec.network
        container = self.docker.containers.run(
            self._run_reference,  # the pinned image, not the tag when that moved
            name=spec.name,
            detach=True,
            restart_policy={"Name": "always"},
            environment=spec.environment,
            volumes=spec.volumes,
            labels=labels,
            **publish,
        )
        self.container_id = container.id
        if container.attrs.get("Image") != image_id:  # the tag moved while this run went on
            raise DeployError(f"the new container runs {container.attrs.get('Image')}, not "
                              f"{image_id}: {self._run_reference} changed during the deploy",
                              "deploy again")
        self._verify_mounts(container)
        return Outcome.CHANGED

    def _set_aside_for(self, registry: Any | None) -> None:
        """Before a new registry container: keep the old one, and the old front when it must
        go too (auth = "none" now, or it proxies to the old registry's address)."""
        if registry is not None:
            self.replacements.set_aside(registry)
        front = self._find_front()
        if front is None or front.labels.get(LABEL_MANAGED) != "true":
            return
        if not uses_front(self.plan) or registry is not None:
            self.replacements.set_aside(front)

    def _recover_leftover(self, name: str, *, wanted: bool = True) -> None:
        """A NAME-previous from an interrupted run (never one this run set aside)."""
        if not self.replacements.holds(name):
            recover_leftover(self.docker, name, wanted=wanted)

    def _or_roll_back(self, action: Callable[[], Outcome],
                      up: Callable[[], registry_api.PingResult] | None = None,
                      ) -> Callable[[], Outcome]:
        """``action``; if it fails after this run set containers aside, roll back first.
        ``up`` waits for what was rolled back (a cache's ping; default: the registry's)."""

        def run() -> Outcome:
            try:
                return action()
            except Exception as error:
                failure = deploy_error(error, self.where)
                if failure is None or not self.replacements.pending:
                    raise
                raise self._roll_back(failure, up) from None

        return run

    def _roll_back(self, failure: RegwizError,
                   up: Callable[[], registry_api.PingResult] | None = None) -> DeployError:
        """New containers out, previous ones in, and whether the registry answers again."""
        names = ", ".join(self.replacements.names())
        self._failed_log = (self.replacements.failed_logs(self.docker)
                            or "(the new container wrote no log)")
        try:
            self.replacements.roll_back(self.docker)
        except Exception as error:  # noqa: BLE001 - reported with the failure that caused it
            problem = deploy_error(error, self.where) or error
            return DeployError(
                f"{failure.message}\n    restoring the previous container failed: {problem}",
                f"on {self.where}: docker ps -a; rename {names} back from *-previous and start "
                "them", kind="rollback-failed")
        answer = (up or self._wait_until_up)()
        what = "the registry" if up is None else "the cache"
        now = (f"{what} answers again" if answer.is_up
               else f"but {what} does not answer: {answer.error}")
        first, _, rest = failure.message.partition("\n")
        restored = (f"{names} running again under {'their names' if ',' in names else 'its name'}"
                    f"; {now}")
        return DeployError(
            "\n    ".join([f"rolled back to the previous container: {first}",
                           *([rest.lstrip()] if rest else []), restored]),
            "the previous container keeps serving: fix what the message names in the plan "
            "(image, settings) and deploy again", kind="rolled-back")

    def _remove_previous(self) -> Outcome:
        return Outcome.CHANGED if self.replacements.commit() else Outcome.UNCHANGED

    def roll_back_unfinished(self) -> str | None:
        """A run stopped between a replacement and its health check rolls back too: the
        unverified new containers go, the previous ones (and the caches' files) come back.
        What was done, for the report (None: nothing was pending)."""
        if not self.replacements.pending or not self.host.docker_connected:
            return None
        names = ", ".join(self.replacements.names())
        try:
            self.caches.put_files_back()
            self.replacements.roll_back(self.docker)
        except Exception as error:  # noqa: BLE001 - reported, the run is already over
            problem = deploy_error(error, self.where) or error
            return (f"stopped before {names} passed the health check, and restoring the "
                    f"previous container failed: {problem}; on {self.where}: docker ps -a, "
                    "rename it back from *-previous and start it")
        return (f"stopped before the new {names} passed the health check: rolled back, the "
                "previous container serves again")

    def close(self) -> None:
        self.roll_back_unfinished()  # a run that ended any other way (an exception) as well
        super().close()

    def _verify_mounts(self, container: Any) -> None:
        """The registry invents a random user when htpasswd is missing: check what it sees."""
        if uses_front(self.plan):
            return  # no mounted files but the data dir; the front checks its own
        expected = {"tls.crt": self._files.cert_pem}
        for name, content in expected.items():
            seen = read_from_container(container, f"{CONTAINER_CERTS_DIR}/{name}")
            if seen != content:
                raise DeployError(
                    f"the container does not see {self.host.remote_path(name)} at "
                    f"{CONTAINER_CERTS_DIR}/{name}",
                    "Docker may run in another filesystem view (rootless, snap, Docker "
                    "Desktop): choose a registry.certs_dir the daemon can bind-mount",
                )

    def _wait_until_up(self) -> registry_api.PingResult:
        """Ping the registry's API until it answers or the health timeout passed."""
        base = registry_api.base_url(self.plan.registry.address, self.plan.registry.port)
        ca = CertFiles(self.plan.cert_dir).trusted
        deadline = time.monotonic() + self.options.health_timeout
        result = registry_api.ping(base, ca)
        while not result.is_up and time.monotonic() < deadline:
            time.sleep(0.5)
            result = registry_api.ping(base, ca)
        return result

    def _health_check(self) -> Outcome:
        base = registry_api.base_url(self.plan.registry.address, self.plan.registry.port)
        ca = CertFiles(self.plan.cert_dir).trusted
        result = self._wait_until_up()
        if not result.is_up:
            states = self._container_states()
            unsteady = [name for name, state in states if not state.startswith("running steadily")]
            hint = result.hint or "check the address, port and certificate"
            if unsteady:
                hint = (f"the container is not running steadily: read its log with "
                        f"`docker logs {unsteady[0]}` on the host")
            shown = unsteady[0] if unsteady else self.plan.registry.container_name
            raise DeployError(self._health_message(result, states, shown), hint)
        if self.plan.registry.auth == "htpasswd":
            self._check_login(base, ca)
        return Outcome.UNCHANGED

    def _container_states(self) -> list[tuple[str, str]]:
        """(name, state in words) of the registry container and, with auth, its front."""
        states = [(self.plan.registry.container_name, self.host.container_state())]
        if uses_front(self.plan):
            with contextlib.suppress(Exception):  # diagnostics only
                front = self._find_front()
                states.append((front_spec(self.plan).name, "no such container" if front is None
                               else describe_container_state(front.attrs)))
        return [(name, state) for name, state in states if state]

    def _health_message(self, result: registry_api.PingResult,
                        states: list[tuple[str, str]], shown: str) -> str:
        lines = [f"the registry did not answer within {self.options.health_timeout:g} s: "
                 f"{result.error}"]
        lines += [f"container {name}: {state}" for name, state in states]
        tail = self._log_tail_of(shown, 15)
        if tail:
            lines += [f"container log of {shown} (last lines):", *tail.splitlines()]
        return "\n    ".join(lines)

    def _log_tail_of(self, name: str, lines: int) -> str:
        if name == self.plan.registry.container_name:
            return self.host.container_log_tail(lines)
        try:
            output: bytes = self.docker.containers.get(name).logs(tail=lines)
        except Exception:  # the log is a diagnostic extra: never mask the real failure
            return ""
        return output.decode("utf-8", errors="replace").rstrip()

    def _check_login(self, base: str, ca: Path) -> None:
        """Through the front: anonymous is refused, the operator account gets in."""
        anonymous = registry_api.ping(base, ca)
        if anonymous.status != 401:
            raise DeployError(f"the front let an anonymous request through (HTTP "
                              f"{anonymous.status})", "check the front's nginx.conf")
        credential = self._store().credential("operator")
        if credential is None:
            return
        answer = registry_api.ping(
            base, ca, auth=registry_api.BasicAuth(credential.username, credential.password))
        if answer.status != 200:
            raise DeployError(
                f"the registry refused the credentials for {credential.username} "
                f"(HTTP {answer.status})",
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
        try:
            return run()
        except RegwizError:
            raise
        except Exception as error:
            failure = deploy_error(error, step.where)
            if failure is None:
                raise
            raise failure from None

    return dataclasses.replace(step, run=run_guarded)


def deploy_error(error: Exception, where: str) -> RegwizError | None:
    """``error`` as a step failure: regwiz's own as they are, Docker SDK and socket errors with
    a message; None for anything else (a bug: let it show)."""
    import docker.errors
    import requests

    if isinstance(error, RegwizError):
        return error
    if isinstance(error, docker.errors.APIError):
        detail = error.explanation or str(error)
        return DeployError(f"Docker on {where} refused: {_short_text(detail)}",
                           "fix what the message names and run again")
    if isinstance(error, (docker.errors.DockerException, requests.RequestException, OSError)):
        return DeployError(f"talking to Docker on {where} failed: {short_error(error)}",
                           "check that dockerd runs and the connection is up")
    return None


def _short_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(text.split())[:300]
