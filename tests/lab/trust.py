"""Trust on the lab: undo onboarding on the core nodes, so a test starts from the lab's
original state, and check a registry's TLS against one CA alone."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from app.runtimes import OS_DEBIAN, os_trust_store
from tests.lab.lab import CONTAINERD_CONFIG_BASE, Lab, LabHost

CORE_NODES = ("docker", "containerd", "bare", "plain")


def reset_node_trust(lab: Lab, registry: str) -> None:
    """Remove every CA regwiz may have placed for ``registry`` on the core nodes, and give the
    bare node back its containerd config without ``config_path`` (restarting containerd only
    when that config had changed)."""
    for name in CORE_NODES:
        lab[name].exec(["rm", "-rf", *(f"/etc/{tool}/certs.d/{registry}"
                                       for tool in ("docker", "containerd", "containers"))],
                       check=False)
    _restore_containerd_config(lab["bare"])
    _remove_os_anchor(lab["plain"], registry)


def _restore_containerd_config(host: LabHost) -> None:
    config = host.host_path("/etc/containerd/config.toml")
    # imports drop-ins and another hosts dir a CRI test may have left (tests/lab/test_cri_lab.py)
    names = ("/etc/containerd/conf.d", "/etc/containerd/certs-elsewhere.d",
             "/etc/containerd/.lab-config-file", "/etc/containerd/lab-real.toml")
    if any(host.host_path(name).exists() for name in names):
        host.exec(["rm", "-rf", *names])
        config.write_text("")  # forces the restart below
    if config.read_text() != CONTAINERD_CONFIG_BASE:
        config.write_text(CONTAINERD_CONFIG_BASE)
        host.stop_daemon("containerd")
        host.start_daemon("containerd")
    for backup in host.host_path("/etc/containerd").glob("config.toml.regwiz-backup-*"):
        backup.unlink()


def _remove_os_anchor(host: LabHost, registry: str) -> None:
    anchor = os_trust_store(OS_DEBIAN, registry).anchor_path
    if host.host_path(anchor).exists():
        host.exec(["rm", "-f", anchor])
        # rebuild the bundle so the CA is really gone, not just its source file (slow: only
        # when there was something to remove)
        host.exec(["update-ca-certificates", "--fresh"], check=False, timeout=120)


def https_status(url: str, ca_pem: bytes, login: tuple[str, str] | None = None, *,
                 method: str = "GET", timeout: float = 10) -> int:
    """The HTTP status of ``method url`` from this machine, trusting only ``ca_pem``, with
    ``login`` as basic auth; network and TLS failures raise (OSError)."""
    import base64

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca_pem.decode())
    request = urllib.request.Request(url, method=method)
    if login:
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def registry_answers(address: str, ca_pem: bytes) -> bool:
    """``GET https://ADDRESS/v2/`` answers 200, with ``ca_pem`` the only CA trusted."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        with urllib.request.urlopen(f"https://{address}/v2/", context=context, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
