"""Acceptance tests for the lab itself: every host is reachable over real SSH with its
documented user and key, host keys are checked, and real TLS trust works per runtime."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.lab.lab import BUSYBOX_IMAGE, Lab, LabHost
from tests.lab.ssh_helpers import ssh_connect, ssh_run
from tests.lab.trust import registry_answers
from tests.polling import poll_until

CORE = ("registry", "docker", "containerd", "bare", "plain")


@pytest.mark.parametrize("name", CORE)
def test_ssh_with_documented_user_and_key(lab: Lab, name: str) -> None:
    host = lab[name]
    client = ssh_connect(host)
    try:
        status, out = ssh_run(client, "id -un")
    finally:
        client.close()
    assert (status, out.strip()) == (0, host.ssh_user)


# --------------------------------------------------------------------------- TLS trust per runtime

REGISTRY_PORT = 8443
CERTS_DIR = "/etc/docker/lab-foundation-certs"  # private to the registry host
SEED_REF = "lab/busybox:seed"


@dataclass
class Deployment:
    ca_pem: bytes
    address: str  # "IP:8443", as image references spell it


def make_ca_and_server_cert(ip: str) -> tuple[bytes, bytes, bytes]:
    """(CA cert PEM, server cert PEM, server key PEM) with `ip` as the server's IP SAN."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regwiz lab test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pem = serialization.Encoding.PEM
    return ca_cert.public_bytes(pem), cert.public_bytes(pem), key_pem


def write_private(host: LabHost, path: str, data: bytes, mode: int = 0o644) -> Path:
    """Writes a file that only `host` sees (path must be under one of its private dirs)."""
    target = host.host_path(path)
    assert target != Path(path), f"{path} is not private to lab hosts"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(mode)
    return target


@pytest.fixture(scope="module")
def deployment(lab: Lab) -> Iterator[Deployment]:
    """registry:2 on the registry host with the seed's options, plus one seeded image."""
    registry = lab["registry"]
    address = f"{registry.ip}:{REGISTRY_PORT}"
    ca_pem, cert_pem, key_pem = make_ca_and_server_cert(registry.ip)
    write_private(registry, f"{CERTS_DIR}/tls.crt", cert_pem)
    write_private(registry, f"{CERTS_DIR}/tls.key", key_pem, 0o600)
    client = ssh_connect(registry)
    try:
        status, out = ssh_run(client, " ".join([
            "docker run -d --restart=always --name registry",
            f"-v {CERTS_DIR}:/docker-in-certs:ro -v /registry-image:/var/lib/registry",
            "-e REGISTRY_HTTP_ADDR=0.0.0.0:443",
            "-e REGISTRY_HTTP_TLS_CERTIFICATE=/docker-in-certs/tls.crt",
            "-e REGISTRY_HTTP_TLS_KEY=/docker-in-certs/tls.key",
            f"-p {REGISTRY_PORT}:443 registry:2",
        ]))
        assert status == 0, out
        assert poll_until(lambda: registry_answers(address, ca_pem), timeout=60), \
            registry.exec(["docker", "logs", "registry"], check=False).stderr.decode()[-2000:]
        # Seed through 127.0.0.1, which Docker treats as insecure: no CA needed on this host.
        local = f"127.0.0.1:{REGISTRY_PORT}/{SEED_REF}"
        registry.exec(["docker", "tag", BUSYBOX_IMAGE, local])
        registry.exec(["docker", "push", local], timeout=120)
        registry.exec(["docker", "rmi", local])
        yield Deployment(ca_pem=ca_pem, address=address)
    finally:
        client.close()
        registry.exec(["docker", "rm", "-f", "registry"], check=False)
        registry.exec(["sh", "-c", "rm -rf /registry-image/* " + CERTS_DIR], check=False)


def test_docker_push_fails_without_ca_and_works_with_certs_d(
    lab: Lab, deployment: Deployment
) -> None:
    node = lab["docker"]
    ref = f"{deployment.address}/lab/busybox:from-docker-node"
    ca_path = f"/etc/docker/certs.d/{deployment.address}/ca.crt"
    node.exec(["docker", "tag", BUSYBOX_IMAGE, ref])
    try:
        untrusted = node.exec(["docker", "push", ref], check=False, timeout=120)
        assert untrusted.returncode != 0
        assert b"x509" in untrusted.stderr + untrusted.stdout

        write_private(node, ca_path, deployment.ca_pem)
        assert not lab["registry"].host_path(ca_path).exists()  # that node only
        assert not Path(ca_path).exists()
        node.exec(["docker", "push", ref], timeout=120)
        node.exec(["docker", "rmi", ref])
        node.exec(["docker", "pull", ref], timeout=120)
        listed = node.exec(["docker", "image", "inspect", "--format", "{{.Id}}", ref])
        assert listed.stdout.strip().startswith(b"sha256:")
    finally:
        node.exec(["docker", "rmi", "-f", ref], check=False)
        node.exec(["rm", "-rf", f"/etc/docker/certs.d/{deployment.address}"], check=False)


def test_containerd_pulls_with_hosts_dir_once_ca_is_placed(
    lab: Lab, deployment: Deployment
) -> None:
    node = lab["containerd"]
    assert node.sudo_password is not None
    ref = f"{deployment.address}/{SEED_REF}"
    reg_dir = f"/etc/containerd/certs.d/{deployment.address}"
    pull = f"sudo -S -p '' ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d {ref}"
    password = f"{node.sudo_password}\n".encode()
    client = ssh_connect(node)
    try:
        status, out = ssh_run(client, pull, stdin=password)
        assert status != 0
        assert "x509" in out

        write_private(node, f"{reg_dir}/ca.crt", deployment.ca_pem)
        write_private(node, f"{reg_dir}/hosts.toml", (
            f'server = "https://{deployment.address}"\n\n'
            f'[host."https://{deployment.address}"]\n'
            '  capabilities = ["pull", "resolve", "push"]\n'
            f'  ca = "{reg_dir}/ca.crt"\n'
        ).encode())
        status, out = ssh_run(client, pull, stdin=password)
        assert status == 0, out
        listed = node.exec(["ctr", "-n", "k8s.io", "images", "ls", "-q"]).stdout.decode()
        assert ref in listed.split()
    finally:
        client.close()
        node.exec(["ctr", "-n", "k8s.io", "images", "rm", ref], check=False)
        node.exec(["rm", "-rf", reg_dir], check=False)


def test_plain_node_trusts_registry_through_os_store_only(
    lab: Lab, deployment: Deployment
) -> None:
    node = lab["plain"]
    curl = f"curl -sS -o /dev/null -w '%{{http_code}}' https://{deployment.address}/v2/"
    anchor = "/usr/local/share/ca-certificates/regwiz-lab-foundation.crt"
    bundle_before = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    client = ssh_connect(node)
    try:
        status, out = ssh_run(client, curl)
        assert status == 60, out  # curl: peer certificate cannot be authenticated

        write_private(node, anchor, deployment.ca_pem)
        status, out = ssh_run(client, "sudo -n update-ca-certificates")
        assert status == 0, out
        status, out = ssh_run(client, curl)
        assert (status, out) == (0, "200")
        # the machine's own store is untouched: the trust store mounts are private
        assert Path("/etc/ssl/certs/ca-certificates.crt").read_bytes() == bundle_before
        assert deployment.ca_pem.strip() not in bundle_before
    finally:
        node.exec(["rm", "-f", anchor], check=False)
        node.exec(["update-ca-certificates"], check=False, timeout=300)
        client.close()
