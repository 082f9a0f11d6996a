"""Deploy the registry container on the registry host, as idempotent steps.

Order: local certificate check, connect (host key checked), Docker reachable, port free, disk
space, image present (pull, ``--image-tar``, or copied from the operator's Docker when the host
is air-gapped), certificates uploaded, data dir, optional htpasswd, container, health check.
Preflight steps come first so a problem stops the run before anything on the host changes.

Idempotence: the container carries labels with a hash of its settings, the certificate's
fingerprint and the htpasswd digest. Same plan + same files → nothing restarted, same container
id. Anything different → the container is recreated; ``data_dir`` is never touched.

The CA private key never leaves this machine: only tls.crt, tls.key and htpasswd are uploaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import posixpath
import string
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from app import htpasswd as htp
from app import registry_api, runtimes
from app.errors import RegwizError
from app.plan import Plan, Secrets
from app.steps import Outcome, Step
from app.transport.base import Transport, TransportError

if TYPE_CHECKING:
    import docker

CONTAINER_CERTS_DIR = "/docker-in-certs"
CONTAINER_DATA_DIR = "/var/lib/registry"
LABEL_MANAGED = "io.regwiz.managed"
LABEL_SETTINGS = "io.regwiz.settings-hash"
LABEL_CERT = "io.regwiz.cert-fingerprint"
LABEL_AUTH = "io.regwiz.htpasswd-sha256"
HTPASSWD_NAME = "htpasswd"
HTPASSWD_REALM = "regwiz registry"
DEFAULT_HEALTH_TIMEOUT = 30.0


class DeployError(RegwizError):
    pass


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


def local_docker_client() -> docker.DockerClient:
    """This machine's Docker (DOCKER_HOST or the default socket), the source for air-gapped
    copies. Raises when there is none; deploy then reports that as one reason among others."""
    import docker

    return docker.from_env(timeout=120)


# ------------------------------------------------------------------------------ pure helpers


@dataclass(frozen=True)
class ContainerSpec:
    """Everything that defines the registry container; its hash is stored as a label."""

    image: str
    name: str
    port: int
    environment: dict[str, str]
    volumes: dict[str, dict[str, str]]

    def settings_hash(self) -> str:
        canonical = json.dumps(
            {
                "image": self.image,
                "name": self.name,
                "port": self.port,
                "environment": self.environment,
                "volumes": self.volumes,
                "restart": "always",
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def labels(self, cert_fingerprint: str, htpasswd_digest: str) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_SETTINGS: self.settings_hash(),
            LABEL_CERT: cert_fingerprint,
            LABEL_AUTH: htpasswd_digest,
        }


def container_spec(plan: Plan) -> ContainerSpec:
    registry = plan.registry
    environment = {
        "REGISTRY_HTTP_ADDR": "0.0.0.0:443",
        "REGISTRY_HTTP_TLS_CERTIFICATE": f"{CONTAINER_CERTS_DIR}/tls.crt",
        "REGISTRY_HTTP_TLS_KEY": f"{CONTAINER_CERTS_DIR}/tls.key",
        "REGISTRY_STORAGE_DELETE_ENABLED": "true" if registry.delete_enabled else "false",
        # registry:3 exports traces to localhost:4318 unless told not to; 2.x ignores it.
        "OTEL_TRACES_EXPORTER": "none",
    }
    if registry.auth == "htpasswd":
        environment |= {
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": HTPASSWD_REALM,
            "REGISTRY_AUTH_HTPASSWD_PATH": f"{CONTAINER_CERTS_DIR}/{HTPASSWD_NAME}",
        }
    volumes = {
        registry.certs_dir: {"bind": CONTAINER_CERTS_DIR, "mode": "ro"},
        registry.data_dir: {"bind": CONTAINER_DATA_DIR, "mode": "rw"},
    }
    return ContainerSpec(registry.image, registry.container_name, registry.port, environment,
                         volumes)


def sha256_fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the first certificate's DER, as ``AB:CD:...`` (what ``certs`` shows)."""
    from app.certs import fingerprint  # only a deploy that reaches the container needs it

    return fingerprint(x509.load_pem_x509_certificate(cert_pem))


def certificate_problems(cert_pem: bytes, key_pem: bytes, ca_pem: bytes, address: str,
                         now: datetime.datetime | None = None) -> list[str]:
    """Why this cert/key cannot serve ``address`` (empty when it can)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as error:
        return [f"tls.crt or ca.crt is not a PEM certificate ({error})"]
    problems = []
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if cert.not_valid_after_utc <= now:
        problems.append(f"tls.crt expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if address_problem := _san_problem(cert, address):
        problems.append(address_problem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception) as error:  # InvalidSignature has no common base
        problems.append(f"tls.crt is not signed by ca.crt ({type(error).__name__})")
    if not _key_matches(cert, key_pem):
        problems.append("tls.key does not belong to tls.crt")
    return problems


def _san_problem(cert: x509.Certificate, address: str) -> str | None:
    import ipaddress

    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "tls.crt has no subjectAltName: Docker and containerd will reject it"
    try:
        wanted_ip = ipaddress.ip_address(address)
    except ValueError:
        names = [n.lower() for n in sans.get_values_for_type(x509.DNSName)]
        wildcard = "*." + address.lower().split(".", 1)[-1]
        if address.lower() in names or ("." in address and wildcard in names):
            return None
        return f"tls.crt does not cover {address} (DNS names: {', '.join(names) or 'none'})"
    if wanted_ip in sans.get_values_for_type(x509.IPAddress):
        return None
    return f"tls.crt has no IP SAN {address}"


def _key_matches(cert: x509.Certificate, key_pem: bytes) -> bool:
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    return bool(
        key.public_key().public_bytes(encoding, public)
        == cert.public_key().public_bytes(encoding, public)
    )


def parse_listening_ports(ss_output: str) -> dict[int, str]:
    """``{port: description}`` from ``ss -ltnH`` (with or without ``-p``) output."""
    found: dict[int, str] = {}
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local = fields[3]
        port_text = local.rsplit(":", 1)[-1]
        if port_text.isdigit():
            process = " ".join(fields[5:]) if len(fields) > 5 else ""
            found.setdefault(int(port_text), f"{local} {process}".strip())
    return found


def parse_proc_net_tcp(text: str) -> set[int]:
    """Listening ports from /proc/net/tcp{,6} (state 0A), for hosts without ``ss``."""
    ports = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        port_hex = fields[1].rsplit(":", 1)[-1] if len(fields) > 3 else ""
        if fields[3:4] == ["0A"] and port_hex and all(c in string.hexdigits for c in port_hex):
            ports.add(int(port_hex, 16))
    return ports


def parse_df_available_kib(df_output: str) -> int | None:
    lines = [line for line in df_output.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    return int(fields[3]) if len(fields) >= 4 and fields[3].isdigit() else None


def unsafe_purge_reason(path: str) -> str | None:
    """Refuse to ``rm -rf`` a path that is not clearly a dedicated data directory."""
    normalized = posixpath.normpath(path)
    if not normalized.startswith("/") or ".." in path.split("/"):
        return "it is not an absolute path without '..'"
    top_level = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt",
                 "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
                 "/var/lib", "/var/lib/docker", "/mnt", "/media"}
    if normalized in top_level:
        return "it is a system directory"
    return None


# ------------------------------------------------------------------------------ the deployment


@dataclass
class _State:
    """What the steps learn and hand on to later steps."""

    transport: Transport | None = None
    docker: Any = None
    cert_pem: bytes = b""
    key_pem: bytes = b""
    ca_pem: bytes = b""
    htpasswd_content: bytes = b""
    registry_password: str | None = None
    registry_user: str = htp.DEFAULT_USERNAME


class Deployment:
    """The deploy of one plan. ``steps()`` for run_steps/dry-run; read results afterwards.

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
        if connect is None and transport is None:
            raise ValueError("Deployment needs connect or transport")
        self.plan = plan
        self.secrets = secrets
        self.options = options or DeployOptions()
        self._connect = connect
        self._owns_transport = transport is None
        self._state = _State(transport=transport)
        self.container_id: str | None = None
        #: set when a password was generated in this run: show it once, it is not kept elsewhere
        self.new_credentials: htp.Credentials | None = None
        self.where = plan.registry.host

    # -- public ---------------------------------------------------------------------------

    def steps(self) -> list[Step]:
        registry = self.plan.registry
        files = self.plan.cert_dir
        steps = [
            Step(f"Check the certificate covers {registry.address}", "local",
                 "Docker and containerd refuse a registry whose certificate lacks its address",
                 self._check_certificate, [f"files: {files}/tls.crt, tls.key, ca.crt"]),
            Step("Connect (host key checked)", self.where,
                 "every later step runs over this verified connection", self._open_connection,
                 [f"ssh {registry.ssh_user}@{registry.host} -p {registry.ssh_port}"
                  if registry.host != "local" else "this machine, no SSH"]),
            Step("Check Docker is installed and reachable", self.where,
                 "the registry runs as a Docker container", self._check_docker,
                 ["docker system dial-stdio over the SSH link (sudo if needed)"]),
            Step(f"Check port {registry.port} is free", self.where,
                 "another service on the published port would make the container fail",
                 self._check_port, [f"ss -ltnH; docker port bindings for {registry.port}"]),
            Step(f"Check free disk space for {registry.data_dir}", self.where,
                 "images pushed to the registry are stored there", self._check_disk,
                 [f"df -Pk {registry.data_dir} (at least {self.options.min_free_mb} MiB)"]),
            Step(f"Make image {registry.image} available", self.where,
                 "the container needs its image; air-gapped hosts get it copied",
                 self._ensure_image, self._image_details()),
            Step(f"Upload tls.crt and tls.key to {registry.certs_dir}", self.where,
                 "the registry serves this certificate; the CA key stays on this machine",
                 self._upload_certificates,
                 [f"{registry.certs_dir}/tls.crt (0644)",
                  f"{registry.certs_dir}/tls.key (0600 root)"]),
            Step("Trust the CA in this host's Docker", self.where,
                 "images are usually built and pushed on the registry host itself",
                 self._trust_ca_locally, [f"{self.docker_ca_path()} (0644, no restart)"]),
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
                 self._container_details()),
            Step(f"Health check https://{self.plan.registry_reference}/v2/", "local",
                 "proves TLS with our CA and the registry API answer", self._health_check,
                 [f"up to {self.options.health_timeout:g} s, trusting only {files}/ca.crt"]),
        ]
        return [guarded(step) for step in steps]

    def container_log_tail(self, lines: int = 30) -> str:
        """The container's last log lines (empty when there is no container or no connection)."""
        client = self._state.docker
        if client is None:
            return ""
        try:
            container = client.containers.get(self.plan.registry.container_name)
            output: bytes = container.logs(tail=lines)
        except Exception:  # the log is a diagnostic extra: never mask the real failure
            return ""
        return output.decode("utf-8", errors="replace").rstrip()

    def close(self) -> None:
        if self._state.docker is not None:
            # closing a broken tunnel must not hide the run's result
            with contextlib.suppress(Exception):
                self._state.docker.close()
            self._state.docker = None
        if self._owns_transport and self._state.transport is not None:
            self._state.transport.close()
            self._state.transport = None

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- details for dry-run ----------------------------------------------------------------

    def _image_details(self) -> list[str]:
        source = "docker pull on the host"
        if self.options.image_tar:
            source = f"docker load from {self.options.image_tar}"
        return [f"if missing: {source}; else copy from this machine's Docker (docker save/load)"]

    def _container_details(self) -> list[str]:
        spec = container_spec(self.plan)
        lines = [f"docker run -d --restart=always --name {spec.name} -p {spec.port}:443"]
        lines += [f"  -v {src}:{v['bind']}:{v['mode']}" for src, v in spec.volumes.items()]
        lines += [f"  -e {key}={value}" for key, value in spec.environment.items()]
        lines.append(f"  {spec.image}  (recreated only when settings or certificate changed)")
        return lines

    # -- helpers ----------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        if self._state.transport is None:
            raise DeployError("not connected to the registry host")
        return self._state.transport

    @property
    def docker(self) -> Any:
        if self._state.docker is None:
            raise DeployError("Docker on the registry host is not connected")
        return self._state.docker

    def _remote_path(self, name: str) -> str:
        return posixpath.join(self.plan.registry.certs_dir, name)

    def _find_container(self) -> Any | None:
        import docker.errors

        try:
            return self.docker.containers.get(self.plan.registry.container_name)
        except docker.errors.NotFound:
            return None

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
        problems = certificate_problems(cert_pem, key_pem, ca_pem, self.plan.registry.address)
        if problems:
            raise DeployError(
                "; ".join(problems),
                "fix certificate.subject_alt_names / registry.address, then run "
                "regwiz certs --renew --plan FILE",
            )
        self._state.cert_pem, self._state.key_pem = cert_pem, key_pem
        self._state.ca_pem = ca_pem
        return Outcome.UNCHANGED

    def _open_connection(self) -> Outcome:
        if self._state.transport is None:
            assert self._connect is not None
            self._state.transport = self._connect()
        self.transport.run(["true"], timeout=30)
        return Outcome.UNCHANGED

    def _check_docker(self) -> Outcome:
        from app.dockerapi import docker_client

        found = self.transport.run(["sh", "-c", "command -v docker"], check=False)
        if not found.ok:
            raise DeployError(
                f"the docker CLI is not installed on {self.where}",
                "install Docker (e.g. apt-get install docker.io) and start it, then run again",
            )
        # docker_client negotiates the API version: a daemon that does not answer fails here.
        try:
            client = docker_client(self.transport, sudo=False)
        except TransportError as error:
            # Not in the docker group: the same daemon through sudo, when the plan allows it.
            if error.kind != "permission" or not self.plan.registry.sudo:
                raise
            client = docker_client(self.transport, sudo=True)
        self._state.docker = client
        return Outcome.UNCHANGED

    def _check_port(self) -> Outcome:
        port = self.plan.registry.port
        ours = self._find_container()
        for container in self.docker.containers.list():
            if port in _published_ports(container) and (ours is None or container.id != ours.id):
                raise DeployError(
                    f"port {port} on {self.where} is published by container {container.name}",
                    "stop that container or choose another registry.port in the plan",
                )
        if ours is not None and port in _published_ports(ours):
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
        import docker.errors

        image = self.plan.registry.image
        try:
            self.docker.images.get(image)
            return Outcome.UNCHANGED
        except docker.errors.ImageNotFound:
            pass
        reasons: list[str] = []
        for source in (self._load_from_tar, self._pull_on_host, self._copy_from_local):
            reason = source(image)
            if reason is None:
                return Outcome.CHANGED
            reasons.append(reason)
        raise DeployError(
            f"image {image} is not on {self.where} and could not be brought there: "
            + "; ".join(r for r in reasons if r),
            f"on a machine that has it run `docker save {image} -o registry.tar`, then deploy "
            "with --image-tar registry.tar",
        )

    def _load_from_tar(self, image: str) -> str | None:
        tar = self.options.image_tar
        if tar is None:
            return ""
        try:
            with open(tar, "rb") as stream:
                loaded = self.docker.images.load(stream)
        except OSError as error:
            return f"cannot read {tar}: {error.strerror}"
        except Exception as error:  # docker APIError and tunnel errors alike
            return f"docker load of {tar} failed: {_short(error)}"
        names = sorted({tag for item in loaded for tag in (item.tags or [])}) or ["no tag"]
        return self._present_after(image, f"{tar} holds {', '.join(names)}, not {image}")

    def _pull_on_host(self, image: str) -> str | None:
        if not self.options.allow_pull:
            return ""
        try:
            self.docker.images.pull(image)
        except Exception as error:  # no route, no DNS, auth: all mean "pull not possible"
            return f"pull failed ({_short(error)})"
        return self._present_after(image, "pull finished but the image is missing")

    def _copy_from_local(self, image: str) -> str | None:
        if self.options.local_docker is None:
            return ""
        try:
            local = self.options.local_docker()
        except Exception as error:  # no local Docker is a normal situation
            return f"no Docker on this machine ({_short(error)})"
        try:
            local.images.get(image)  # ImageNotFound → "not on this machine either"
            # Export by the plan's reference (not tags[0]), so the archive carries that name.
            saved = local.api.get_image(image)
            self.docker.images.load(saved)  # a generator: streamed, chunked
        except Exception as error:  # ImageNotFound locally, transfer errors
            return f"copy from this machine's Docker failed ({_short(error)})"
        finally:
            local.close()
        return self._present_after(image, "copied, but the image is still missing")

    def _present_after(self, image: str, problem: str) -> str | None:
        import docker.errors

        try:
            self.docker.images.get(image)
        except docker.errors.ImageNotFound:
            return problem
        return None

    def _upload_certificates(self) -> Outcome:
        sudo = self.plan.registry.sudo
        crt = self.transport.write_file(self._remote_path("tls.crt"), self._state.cert_pem,
                                        mode=0o644, sudo=sudo)
        key = self.transport.write_file(self._remote_path("tls.key"), self._state.key_pem,
                                        mode=0o600, sudo=sudo)
        return Outcome.CHANGED if crt or key else Outcome.UNCHANGED

    def docker_ca_path(self) -> str:
        """Where this host's Docker reads the registry's CA (read on every push, no restart)."""
        return runtimes.docker_ca_path(self.plan.registry_reference)

    def _trust_ca_locally(self) -> Outcome:
        changed = self.transport.write_file(self.docker_ca_path(), self._state.ca_pem,
                                            mode=0o644, sudo=self.plan.registry.sudo)
        return Outcome.CHANGED if changed else Outcome.UNCHANGED

    def _ensure_data_dir(self) -> Outcome:
        data_dir = self.plan.registry.data_dir
        sudo = self.plan.registry.sudo
        if self.transport.run(["test", "-d", data_dir], check=False).ok:
            return Outcome.UNCHANGED
        self.transport.run(["mkdir", "-p", "--", data_dir], sudo=sudo)
        return Outcome.CHANGED

    def _ensure_htpasswd(self) -> Outcome:
        path = self._remote_path(HTPASSWD_NAME)
        remote = self.transport.read_file(path, sudo=self.plan.registry.sudo)
        remote_text = remote.decode("utf-8", errors="replace") if remote else ""
        saved = htp.read_credentials(self.options.credentials_file) \
            if self.options.credentials_file else None
        user = saved.username if saved else htp.DEFAULT_USERNAME
        password = self.secrets.registry_password or (saved.password if saved else None)
        if password is None and user in htp.parse_htpasswd(remote_text):
            # The password lives only with whoever saw it once; keep the existing entry.
            return self._keep_htpasswd(remote or b"", user, None)
        if password is not None and htp.password_matches(remote_text, user, password):
            self._save_credentials(user, password, saved)
            return self._keep_htpasswd(remote or b"", user, password)
        generated = password is None
        password = password or htp.generate_password()
        others = [line for line in remote_text.splitlines()
                  if line.strip() and line.partition(":")[0] != user]  # users added by hand stay
        content = ("\n".join([*others, htp.htpasswd_line(user, password)]) + "\n").encode()
        self.transport.write_file(path, content, mode=0o600, sudo=self.plan.registry.sudo)
        self._save_credentials(user, password, saved)
        if generated:
            self.new_credentials = htp.Credentials(self.plan.registry_reference, user, password)
        self._keep_htpasswd(content, user, password)
        return Outcome.CHANGED

    def _keep_htpasswd(self, content: bytes, user: str, password: str | None) -> Outcome:
        self._state.htpasswd_content = content
        self._state.registry_user, self._state.registry_password = user, password
        return Outcome.UNCHANGED

    def _save_credentials(self, user: str, password: str, saved: htp.Credentials | None) -> None:
        target = self.options.credentials_file
        wanted = htp.Credentials(self.plan.registry_reference, user, password)
        if target is not None and saved != wanted:
            htp.write_credentials(target, wanted)

    def _ensure_container(self) -> Outcome:
        spec = container_spec(self.plan)
        labels = spec.labels(
            sha256_fingerprint(self._state.cert_pem),
            hashlib.sha256(self._state.htpasswd_content).hexdigest(),
        )
        image_id = self.docker.images.get(spec.image).id
        existing = self._find_container()
        if existing is not None and existing.labels.get(LABEL_MANAGED) != "true":
            raise DeployError(
                f"a container named {spec.name} exists on {self.where} that regwiz did not create",
                f"remove it (docker rm -f {spec.name}) or set registry.container_name to "
                "another name",
            )
        if existing is not None and _matches(existing, labels, image_id):
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
            expected[HTPASSWD_NAME] = self._state.htpasswd_content
        expected["tls.crt"] = self._state.cert_pem
        for name, content in expected.items():
            seen = _read_from_container(container, f"{CONTAINER_CERTS_DIR}/{name}")
            if seen != content:
                raise DeployError(
                    f"the container does not see {self._remote_path(name)} at "
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
            state = self.container_state()
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

    def container_state(self) -> str:
        """e.g. "running steadily", "exited (exit code 1), restarted 3 times", or
        "running, but restarted 3 times: it keeps exiting"."""
        try:
            container = self._find_container()
        except Exception:  # diagnostics only
            return ""
        if container is None:
            return "no such container"
        return describe_container_state(container.attrs)

    def _check_login(self, base: str, ca: Path) -> None:
        if self._state.registry_password is None:
            return
        auth = registry_api.BasicAuth(self._state.registry_user, self._state.registry_password)
        answer = registry_api.ping(base, ca, auth=auth)
        if answer.status != 200:
            raise DeployError(
                f"the registry refused the credentials for {self._state.registry_user} "
                f"(HTTP {answer.status})",
                "check the htpasswd mount; deploy again to rewrite it",
            )


# ------------------------------------------------------------------------------ small helpers


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
            raise DeployError(f"talking to Docker on {step.where} failed: {_short(error)}",
                              "check that dockerd runs and the connection is up") from None

    return dataclasses.replace(step, run=run_guarded)


def _short_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(text.split())[:300]


def _short(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    text = str(text).strip().splitlines()[0] if str(text).strip() else type(error).__name__
    return text[:300]


def _published_ports(container: Any) -> set[int]:
    bindings = (container.attrs.get("HostConfig") or {}).get("PortBindings") or {}
    ports = set()
    for entries in bindings.values():
        for entry in entries or []:
            text = str(entry.get("HostPort") or "")
            if text.isdigit():
                ports.add(int(text))
    return ports


def _matches(container: Any, labels: dict[str, str], image_id: str) -> bool:
    current = container.labels or {}
    same_labels = all(current.get(key) == value for key, value in labels.items())
    return same_labels and container.attrs.get("Image") == image_id


def _read_from_container(container: Any, path: str) -> bytes | None:
    """A file's bytes via the archive API (works in images without a shell)."""
    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    archive = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=archive) as tar:
        member = tar.next()
        extracted = tar.extractfile(member) if member else None
        return extracted.read() if extracted else None


# ------------------------------------------------------------------------------ uninstall


class Uninstall:
    """Remove the registry container and the files deploy placed; the data dir only on purge."""

    def __init__(
        self,
        plan: Plan,
        *,
        purge: bool = False,
        connect: Callable[[], Transport] | None = None,
        transport: Transport | None = None,
    ) -> None:
        if connect is None and transport is None:
            raise ValueError("Uninstall needs connect or transport")
        self.plan = plan
        self.purge = purge
        self._deployment = Deployment(plan, Secrets(), connect=connect, transport=transport)
        self.where = plan.registry.host

    def steps(self) -> list[Step]:
        registry = self.plan.registry
        deployment = self._deployment
        steps = [
            Step("Connect (host key checked)", self.where, "every step runs over this link",
                 deployment._open_connection),
            Step("Reach Docker", self.where, "the container is removed through Docker",
                 deployment._check_docker),
            Step(f"Remove container {registry.container_name}", self.where,
                 "stops serving the registry", self._remove_container,
                 [f"docker rm -f {registry.container_name} (only if regwiz created it)"]),
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

    def close(self) -> None:
        self._deployment.close()

    def __enter__(self) -> Uninstall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _placed_files(self) -> list[str]:
        """What deploy put on the host: certificate, key, htpasswd, the CA for its Docker."""
        deployment = self._deployment
        names = ("tls.crt", "tls.key", HTPASSWD_NAME)
        return [*map(deployment._remote_path, names), deployment.docker_ca_path()]

    def _remove_container(self) -> Outcome:
        deployment = self._deployment
        container = deployment._find_container()
        if container is None:
            return Outcome.UNCHANGED
        if container.labels.get(LABEL_MANAGED) != "true":
            raise DeployError(
                f"container {container.name} on {self.where} was not created by regwiz: "
                "left alone",
                "remove it yourself with docker rm -f if it is really the registry",
            )
        container.remove(force=True)
        return Outcome.CHANGED

    def _remove_files(self) -> Outcome:
        registry = self.plan.registry
        transport = self._deployment.transport
        sudo = registry.sudo
        present = [path for path in self._placed_files()
                   if transport.run(["test", "-e", path], sudo=sudo, check=False).ok]
        if present:
            transport.run(["rm", "-f", "--", *present], sudo=sudo)
        for directory in (registry.certs_dir,
                          posixpath.dirname(self._deployment.docker_ca_path())):
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
        transport = self._deployment.transport
        if not transport.run(["test", "-e", data_dir], check=False).ok:
            return Outcome.UNCHANGED
        transport.run(["rm", "-rf", "--one-file-system", "--", data_dir],
                      sudo=self.plan.registry.sudo, timeout=600)
        return Outcome.CHANGED
