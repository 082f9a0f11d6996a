"""Helpers for the deploy tests: a throwaway CA, and a real Distribution registry on 127.0.0.1.

The registry is Debian's ``docker-registry`` binary (Distribution 2.8) serving TLS with a
certificate made here, so registry_api is exercised against the real server, not a fake.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.polling import wait_until

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


@dataclass
class Pki:
    ca_pem: bytes
    ca_key_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.crt").write_bytes(self.ca_pem)
        (directory / "ca.key").write_bytes(self.ca_key_pem)
        (directory / "tls.crt").write_bytes(self.cert_pem)
        (directory / "tls.key").write_bytes(self.key_pem)
        (directory / "ca.key").chmod(0o600)
        (directory / "tls.key").chmod(0o600)
        return directory


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(sans: list[str], *, expired: bool = False, cn: str = "regwiz test CA") -> Pki:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    not_after = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=30)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Pki(
        ca.public_bytes(serialization.Encoding.PEM),
        _pem_key(ca_key),
        leaf.public_bytes(serialization.Encoding.PEM),
        _pem_key(key),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalRegistry:
    base: str
    ca_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def local_registry(
    workdir: Path,
    pki: Pki,
    *,
    htpasswd: str | None = None,
    delete_enabled: bool = False,
) -> Iterator[LocalRegistry]:
    """Run the real registry binary with TLS on 127.0.0.1 until the block ends."""
    certs = pki.write(workdir / "certs")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}",
        "REGISTRY_HTTP_TLS_CERTIFICATE": str(certs / "tls.crt"),
        "REGISTRY_HTTP_TLS_KEY": str(certs / "tls.key"),
        "REGISTRY_HTTP_SECRET": "test-secret",
        "REGISTRY_STORAGE_DELETE_ENABLED": "true" if delete_enabled else "false",
        "REGISTRY_LOG_LEVEL": "warn",
    }
    if htpasswd is not None:
        (workdir / "htpasswd").write_text(htpasswd)
        env |= {
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": "regwiz",
            "REGISTRY_AUTH_HTPASSWD_PATH": str(workdir / "htpasswd"),
        }
    config = workdir / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        "http:\n  addr: 127.0.0.1:5000\n"
    )
    log_path = workdir / "registry.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)], env=env, stdout=log, stderr=log
        )
    try:
        _wait_listening(port, process, log_path)
        yield LocalRegistry(f"https://127.0.0.1:{port}", certs / "ca.crt", process, log_path)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"registry exited: {log_path.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, "the registry listens")


def push_tiny_image(
    base: str, ca_path: Path, repository: str, tag: str, auth_header: str | None = None
) -> str:
    """Push a one-layer OCI image with raw API calls; return the manifest digest."""
    host, port = base.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca_path))
    headers = {"Authorization": auth_header} if auth_header else {}

    def call(method: str, path: str, body: bytes = b"", extra: dict[str, str] | None = None):
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        connection.request(method, path, body=body, headers={**headers, **(extra or {})})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        return answer

    def upload(blob: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        started = call("POST", f"/v2/{repository}/blobs/uploads/")
        assert started.status == 202, started.status
        location = started.getheader("Location") or ""
        location = location.split(host + ":" + port, 1)[-1]
        joiner = "&" if "?" in location else "?"
        done = call(
            "PUT",
            f"{location}{joiner}digest={digest}",
            blob,
            {"Content-Type": "application/octet-stream"},
        )
        assert done.status == 201, done.status
        return digest

    layer = os.urandom(64)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": upload(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": upload(layer), "size": len(layer)}],
    }).encode()
    answer = call(
        "PUT",
        f"/v2/{repository}/manifests/{tag}",
        manifest,
        {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert answer.status == 201, answer.status
    return "sha256:" + hashlib.sha256(manifest).hexdigest()
