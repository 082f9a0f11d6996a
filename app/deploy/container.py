"""The registry container: its settings, the labels that make deploy idempotent, and what
the host's Docker says about it. Pure functions over the plan and Docker's data."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

from app.distribution import Distribution
from app.plan import ALL_ADDRESSES, Plan
from app.registry_host import LABEL_MANAGED

CONTAINER_CERTS_DIR = "/docker-in-certs"
CONTAINER_DATA_DIR = "/var/lib/registry"
LABEL_SETTINGS = "io.regwiz.settings-hash"
LABEL_CERT = "io.regwiz.cert-fingerprint"
LABEL_AUTH = "io.regwiz.htpasswd-sha256"
HTPASSWD_NAME = "htpasswd"
HTPASSWD_REALM = "regwiz registry"

__all__ = ["LABEL_MANAGED"]  # re-exported: the label is the registry host's to read


@dataclass(frozen=True)
class ContainerSpec:
    """Everything that defines the registry container; its hash is stored as a label."""

    image: str
    name: str
    port: int | None  # None: no published port (behind the front, on its private network)
    environment: dict[str, str]
    volumes: dict[str, dict[str, str]]
    bind_address: str = ALL_ADDRESSES
    network: str | None = None
    #: read from the image on the host (None before that, e.g. in a dry run); not hashed: it
    #: follows from the image, which the container is already compared by
    distribution: Distribution | None = None

    def settings_hash(self) -> str:
        settings: dict[str, object] = {
            "image": self.image,
            "name": self.name,
            "port": self.port,
            "environment": self.environment,
            "volumes": self.volumes,
            "restart": "always",
        }
        if self.bind_address != ALL_ADDRESSES:
            settings["bind"] = self.bind_address
        if self.network is not None:
            settings["network"] = self.network
        canonical = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def labels(self, cert_fingerprint: str, htpasswd_digest: str) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_SETTINGS: self.settings_hash(),
            LABEL_CERT: cert_fingerprint,
            LABEL_AUTH: htpasswd_digest,
        }

    def details(self) -> list[str]:
        """The ``docker run`` it amounts to, for the dry run."""
        publish = (f"-p {self.port}:443" if self.bind_address == ALL_ADDRESSES
                   else f"-p {self.bind_address}:{self.port}:443")
        if self.port is None:
            publish = f"--network {self.network} (no published port: only the front reaches it)"
        lines = [f"docker run -d --restart=always --name {self.name} {publish}"]
        lines += [f"  -v {src}:{v['bind']}:{v['mode']}" for src, v in self.volumes.items()]
        lines += [f"  -e {key}={value}" for key, value in self.environment.items()]
        lines.append(f"  {self.image}  (recreated only when settings or certificate changed)")
        version = (f"{self.distribution.label}, config {self.distribution.config_path}"
                   if self.distribution else "Distribution 2 or 3: read from the image")
        lines.append(f"  ({version}; REGISTRY_* variables override that file)")
        return lines


MINIMUM_TLS = "tls1.2"


# Distribution's read-only mode, for garbage collection: pulls go on, pushes and deletes get
# 405. The value is the YAML of the whole map: REGISTRY_..._READONLY_ENABLED=true is parsed into
# a map type Distribution 2.8 does not expect, and the registry panics.
READ_ONLY_ENV = ("REGISTRY_STORAGE_MAINTENANCE_READONLY", "enabled: true")


def container_spec(plan: Plan, *, read_only: bool = False,
                   distribution: Distribution | None = None) -> ContainerSpec:
    """The registry container for ``plan``; ``read_only`` for a garbage-collection window;
    ``distribution`` as read from the image (``app.distribution``)."""
    spec = _plain_spec(plan) if plan.registry.auth != "htpasswd" else _behind_front_spec(plan)
    if read_only:
        spec.environment[READ_ONLY_ENV[0]] = READ_ONLY_ENV[1]
    return dataclasses.replace(spec, distribution=distribution)


def _plain_spec(plan: Plan) -> ContainerSpec:
    registry = plan.registry
    environment = {
        "REGISTRY_HTTP_ADDR": "0.0.0.0:443",
        "REGISTRY_HTTP_TLS_CERTIFICATE": f"{CONTAINER_CERTS_DIR}/tls.crt",
        "REGISTRY_HTTP_TLS_KEY": f"{CONTAINER_CERTS_DIR}/tls.key",
        # Distribution 2.x still accepts TLS 1.0 and 1.1 by default; every client that pulls
        # (Docker, containerd, CRI-O, Go) speaks 1.2, so nothing older is offered (issue 12).
        "REGISTRY_HTTP_TLS_MINIMUMTLS": MINIMUM_TLS,
        "REGISTRY_STORAGE_DELETE_ENABLED": "true" if registry.delete_enabled else "false",
        # registry:3 exports traces to localhost:4318 unless told not to; 2.x ignores it.
        "OTEL_TRACES_EXPORTER": "none",
    }
    volumes = {
        registry.certs_dir: {"bind": CONTAINER_CERTS_DIR, "mode": "ro"},
        registry.data_dir: {"bind": CONTAINER_DATA_DIR, "mode": "rw"},
    }
    return ContainerSpec(registry.image, registry.container_name, registry.port, environment,
                         volumes, bind_address=registry.bind_address)


REGISTRY_INTERNAL_PORT = 5000  # behind the front, on the private network only


def network_name(plan: Plan) -> str:
    """The private Docker network of the registry and its front."""
    return f"regwiz-{plan.registry.container_name}"


def _behind_front_spec(plan: Plan) -> ContainerSpec:
    """auth = "htpasswd": plain HTTP on the private network; the front does TLS and auth."""
    registry = plan.registry
    environment = {
        "REGISTRY_HTTP_ADDR": f"0.0.0.0:{REGISTRY_INTERNAL_PORT}",
        "REGISTRY_STORAGE_DELETE_ENABLED": "true" if registry.delete_enabled else "false",
        "OTEL_TRACES_EXPORTER": "none",
    }
    volumes = {registry.data_dir: {"bind": CONTAINER_DATA_DIR, "mode": "rw"}}
    return ContainerSpec(registry.image, registry.container_name, None, environment, volumes,
                         network=network_name(plan))


def sha256_fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the first certificate's DER, as ``AB:CD:...`` (``certs.fingerprint``, what
    ``regwiz certs`` shows)."""
    from cryptography import x509

    from app.certs import fingerprint  # only a deploy that reaches the container needs it

    return fingerprint(x509.load_pem_x509_certificate(cert_pem))


def published_bindings(container: Any) -> set[tuple[str, int]]:
    """(host IP, host port) of every published port ("" host IP: every address)."""
    bindings = (container.attrs.get("HostConfig") or {}).get("PortBindings") or {}
    found = set()
    for entries in bindings.values():
        for entry in entries or []:
            text = str(entry.get("HostPort") or "")
            if text.isdigit():
                found.add((str(entry.get("HostIp") or ""), int(text)))
    return found


def published_ports(container: Any) -> set[int]:
    ports = {port for _, port in published_bindings(container)}
    return ports


def matches(container: Any, labels: dict[str, str], image_id: str) -> bool:
    """The running container already is what the plan and the files ask for."""
    current = container.labels or {}
    same_labels = all(current.get(key) == value for key, value in labels.items())
    return same_labels and container.attrs.get("Image") == image_id


def read_from_container(container: Any, path: str) -> bytes | None:
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
