"""Pull-through caches (issue 14): one Distribution container in proxy mode per ``[[mirrors]]``
table, on the registry host next to the registry. Pure functions over the plan.

Distribution proxies one upstream per instance and refuses pushes in that mode; deletes stay
disabled. Each cache serves the plan's own certificate (nodes reach it at the registry's address
on the mirror's port) and keeps its blobs in ``{data_dir}/mirrors/{slug}``, beside the
registry's ``docker/`` tree, so the registry (and its garbage collection) never sees them.

Auth: a cache of a public upstream (no ``username``) serves pulls anonymously: containerd hands
the kubelet's pull credential only to the image's own registry host, never to a mirror host,
so a cache that asked for a login would be unusable from containerd. A private cache (a login
at the upstream) holds what only that login may fetch: it requires the plan's accounts (the
same htpasswd file as the front, any account may pull), never anonymous.

The whole configuration is one ``config.yml`` (0600, root: the upstream password is in it and
nowhere else: not in the container's environment, command line, labels or the dry run),
mounted read-only over the image's default config.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath

from app.deploy.container import (
    CONTAINER_CERTS_DIR,
    CONTAINER_DATA_DIR,
    HTPASSWD_NAME,
    HTPASSWD_REALM,
    MINIMUM_TLS,
    ContainerSpec,
)
from app.plan import ALL_ADDRESSES, MirrorSettings, Plan

MIRRORS_DIR = "mirrors"  # under data_dir (the caches) and certs_dir (their configuration)
CONFIG_NAME = "config.yml"
REMOTE_CA_NAME = "remote-ca.crt"
CONTAINER_CONFIG = "/etc/docker/registry/config.yml"  # registry:2, registry:3, the lab's image
CONTAINER_REMOTE_CA = "/etc/regwiz/remote-ca.crt"
LABEL_MIRROR_OF = "io.regwiz.mirror-of"  # the registry container a cache belongs to
LABEL_MIRROR_SLUG = "io.regwiz.mirror-slug"
LABEL_CONFIG = "io.regwiz.mirror-config"  # keyed digest of config.yml (it holds a password)
PASSWORD_PLACEHOLDER = "(from {env})"  # noqa: S105 - what the dry run shows instead


def mirror_container_name(plan: Plan, mirror: MirrorSettings) -> str:
    return f"{plan.registry.container_name}-mirror-{mirror.slug}"


def cache_dir(plan: Plan, mirror: MirrorSettings) -> str:
    """Where the cache keeps its blobs on the registry host."""
    return posixpath.join(plan.registry.data_dir, MIRRORS_DIR, mirror.slug)


def config_dir(plan: Plan, slug: str) -> str:
    """Where its config.yml (and the upstream's CA) go on the registry host."""
    return posixpath.join(plan.registry.certs_dir, MIRRORS_DIR, slug)


def render_config(plan: Plan, mirror: MirrorSettings, password: str | None) -> bytes:
    """Distribution's config.yml for the cache (YAML; every scalar JSON-quoted, which YAML
    reads as the same string). ``password`` None writes the placeholder (dry run, digest)."""
    q = json.dumps
    lines = [
        "version: 0.1",
        "log:",
        "  fields:",
        f"    service: {q('regwiz-mirror-' + mirror.slug)}",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {q(CONTAINER_DATA_DIR)}",
        "  delete:",
        "    enabled: false",  # a cache is refilled from the upstream, never edited
        "http:",
        "  addr: \"0.0.0.0:443\"",
        "  tls:",
        f"    certificate: {q(CONTAINER_CERTS_DIR + '/tls.crt')}",
        f"    key: {q(CONTAINER_CERTS_DIR + '/tls.key')}",
        f"    minimumtls: {q(MINIMUM_TLS)}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
        "proxy:",
        f"  remoteurl: {q(mirror.url)}",
    ]
    if mirror.username is not None:
        shown = password if password is not None else PASSWORD_PLACEHOLDER.format(
            env=mirror.password_env)
        lines += [f"  username: {q(mirror.username)}", f"  password: {q(shown)}",
                  "auth:", "  htpasswd:", f"    realm: {q(HTPASSWD_REALM)}",
                  f"    path: {q(CONTAINER_CERTS_DIR + '/' + HTPASSWD_NAME)}"]
    return ("\n".join(lines) + "\n").encode()


def config_password(config: bytes) -> str | None:
    """The ``proxy.password`` ``render_config`` wrote, or None."""
    for line in config.decode("utf-8", errors="replace").splitlines():
        if line.startswith("  password: "):
            try:
                value = json.loads(line.removeprefix("  password: "))
            except ValueError:
                return None
            return value if isinstance(value, str) else None
    return None


def config_digest(config: bytes, key: bytes) -> str:
    """The config's digest for the label, keyed (with the server key, which never leaves this
    machine and the host's root-only file): a weak password cannot be guessed from it."""
    return hmac.new(key, config, hashlib.sha256).hexdigest()


def mirror_spec(plan: Plan, mirror: MirrorSettings) -> ContainerSpec:
    """The cache's container: published like the registry (bind_address:port -> 443)."""
    registry = plan.registry
    certs = registry.certs_dir
    own = config_dir(plan, mirror.slug)
    volumes = {
        posixpath.join(certs, "tls.crt"): {"bind": f"{CONTAINER_CERTS_DIR}/tls.crt", "mode": "ro"},
        posixpath.join(certs, "tls.key"): {"bind": f"{CONTAINER_CERTS_DIR}/tls.key", "mode": "ro"},
        posixpath.join(own, CONFIG_NAME): {"bind": CONTAINER_CONFIG, "mode": "ro"},
        cache_dir(plan, mirror): {"bind": CONTAINER_DATA_DIR, "mode": "rw"},
    }
    environment = {"OTEL_TRACES_EXPORTER": "none"}  # registry:3 exports traces otherwise
    if mirror.private:
        volumes[posixpath.join(certs, HTPASSWD_NAME)] = {
            "bind": f"{CONTAINER_CERTS_DIR}/{HTPASSWD_NAME}", "mode": "ro"}
    if mirror.remote_ca:
        volumes[posixpath.join(own, REMOTE_CA_NAME)] = {"bind": CONTAINER_REMOTE_CA,
                                                        "mode": "ro"}
        # Go adds SSL_CERT_FILE to the system roots it still reads from /etc/ssl/certs: the
        # upstream's CA is trusted by this cache only, the public roots stay.
        environment["SSL_CERT_FILE"] = CONTAINER_REMOTE_CA
    return ContainerSpec(registry.image, mirror_container_name(plan, mirror), mirror.port,
                         environment, volumes, bind_address=registry.bind_address)


def mirror_labels(plan: Plan, mirror: MirrorSettings, spec: ContainerSpec, *,
                  cert_fingerprint: str, config: str, htpasswd: str) -> dict[str, str]:
    return {**spec.labels(cert_fingerprint, htpasswd if mirror.private else "anonymous"),
            LABEL_MIRROR_OF: plan.registry.container_name, LABEL_MIRROR_SLUG: mirror.slug,
            LABEL_CONFIG: config}


def expected_status(mirror: MirrorSettings) -> int:
    """``GET /v2/`` of a healthy cache: 200 (anonymous pulls) or 401 (accounts only)."""
    return 401 if mirror.private else 200


def mirror_notes(plan: Plan) -> list[str]:
    """What each cache lets whom do, in plain words (deploy output, the plan's warnings)."""
    notes = []
    for mirror in plan.mirrors:
        where = f"{plan.registry.address}:{mirror.port}"
        if plan.registry.bind_address != ALL_ADDRESSES:
            where = f"{plan.registry.bind_address}:{mirror.port}"
        if mirror.private:
            notes.append(f"mirror {mirror.upstream}: the cache on {where} fetches with the "
                         f"login {mirror.username} and serves only the plan's accounts "
                         "(any account may pull; pushes and deletes are refused)")
        else:
            notes.append(f"mirror {mirror.upstream}: the cache on {where} serves pulls to "
                         "anyone who reaches it, without an account (containerd never sends "
                         "a login to a mirror); pushes and deletes are refused")
    return notes
