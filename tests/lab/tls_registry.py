"""A plain Distribution registry with its own CA, started on a lab host with ``docker run``
(never by regwiz), and images pushed into it with that host's Docker: the pieces shared by
``external_registry`` (a registry regwiz did not deploy) and ``upstream`` (what a pull-through
cache proxies)."""

from __future__ import annotations

from app.htpasswd import htpasswd_line
from tests.deploy_helpers import Pki
from tests.lab.lab import REGISTRY_IMAGE, LabHost


def run_tls_registry(host: LabHost, name: str, port: int, files: str, pki: Pki,
                     logins: dict[str, str] | None = None, *,
                     environment: dict[str, str] | None = None,
                     keep_data: bool = False) -> None:
    """``docker run`` container ``name`` on ``port``: TLS with ``pki`` (tls.crt holds the server
    certificate and the root, as Harbor serves them), htpasswd auth when ``logins`` are given,
    else anonymous (or what ``environment`` adds, e.g. token auth). Its files go to ``files``, a
    directory private to ``host`` (``files``/data holds its images with ``keep_data``, so a
    successor started with other settings serves them too)."""
    host.exec(["docker", "rm", "-f", name], check=False)
    host.exec(["mkdir", "-p", files])
    host.host_path(f"{files}/tls.crt").write_bytes(pki.cert_pem + pki.ca_pem)
    host.host_path(f"{files}/tls.key").write_bytes(pki.key_pem)
    auth: list[str] = []
    if logins:
        host.host_path(f"{files}/htpasswd").write_text(
            "".join(htpasswd_line(user, password, rounds=4) + "\n"
                    for user, password in logins.items()))
        auth = ["-e", "REGISTRY_AUTH=htpasswd", "-e", "REGISTRY_AUTH_HTPASSWD_REALM=lab",
                "-e", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd"]
    extra = [arg for key, value in (environment or {}).items()
             for arg in ("-e", f"{key}={value}")]
    if keep_data:
        host.exec(["mkdir", "-p", f"{files}/data"])
        extra += ["-v", f"{files}/data:/var/lib/registry"]
    host.exec(["docker", "run", "-d", "--name", name, "-p", f"{port}:5000",
               "-v", f"{files}:/auth:ro",
               "-e", "REGISTRY_HTTP_TLS_CERTIFICATE=/auth/tls.crt",
               "-e", "REGISTRY_HTTP_TLS_KEY=/auth/tls.key", *auth, *extra, REGISTRY_IMAGE])


def push_images(host: LabHost, reference: str, ca_pem: bytes, files: str,
                images: dict[str, str], login: tuple[str, str] | None = None) -> None:
    """Push ``images`` ({target "repo:tag": local image}) to ``reference`` with ``host``'s
    Docker, trusting ``ca_pem`` only for this run (its certs.d folder is removed afterwards)
    and with a throwaway client config (/root/.docker is a node credential file other tests
    read)."""
    certs = host.host_path(f"/etc/docker/certs.d/{reference}")
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "ca.crt").write_bytes(ca_pem)
    config = f"{files}/pusher"
    targets = [f"{reference}/{target}" for target in images]
    try:
        if login:
            host.exec(["docker", "--config", config, "login", "-u", login[0],
                       "--password-stdin", reference], input=login[1].encode())
        for target, source in zip(targets, images.values(), strict=True):
            host.exec(["docker", "tag", source, target])
            host.exec(["docker", "--config", config, "push", target], timeout=120)
    finally:
        for target in targets:
            host.exec(["docker", "rmi", target], check=False)
        host.exec(["rm", "-rf", config, f"/etc/docker/certs.d/{reference}"], check=False)
