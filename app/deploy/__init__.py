"""Deploy the registry container on the registry host, as idempotent steps.

- ``deployment``: the ``Deployment`` steps (certificate check, connect, Docker, port, disk,
  image, uploads, data dir, htpasswd, container, health check);
- ``report``: ``deploy()``, which runs them and returns a ``DeployReport``;
- ``uninstall``: the ``Uninstall`` steps;
- ``container``: the container's spec and labels; ``probes``: parsers of the host's tools;
- ``rollback``: old containers kept until their successors are healthy, restored if not.

The connection and the Docker daemon belong to ``app.registry_host``, the image to
``app.image_source``, the htpasswd file to ``app.htpasswd``, the certificate checks to
``app.certs``.

Idempotence: the container carries labels with a hash of its settings, the certificate's
fingerprint and the htpasswd digest. Same plan + same files → nothing restarted, same container
id. Anything different → the container is recreated; ``data_dir`` is never touched. The old
container is kept (stopped, ``NAME-previous``) until the new one passed the health check, and
restored if it did not (``rollback``).

The CA private key never leaves this machine: only tls.crt, tls.key and htpasswd are uploaded.
"""

from __future__ import annotations

from app.certs import certificate_problems
from app.deploy.container import (
    CONTAINER_CERTS_DIR,
    CONTAINER_DATA_DIR,
    HTPASSWD_NAME,
    HTPASSWD_REALM,
    LABEL_AUTH,
    LABEL_CERT,
    LABEL_MANAGED,
    LABEL_SETTINGS,
    ContainerSpec,
    container_spec,
    sha256_fingerprint,
)
from app.deploy.deployment import DEFAULT_HEALTH_TIMEOUT, Deployment, DeployOptions, guarded
from app.deploy.probes import (
    parse_df_available_kib,
    parse_port_holders,
    parse_proc_net_tcp,
    unsafe_purge_reason,
)
from app.deploy.report import DeployReport, deploy
from app.deploy.uninstall import Uninstall
from app.errors import DeployError
from app.image_source import local_docker_client
from app.registry_host import describe_container_state

__all__ = [
    "CONTAINER_CERTS_DIR", "CONTAINER_DATA_DIR", "DEFAULT_HEALTH_TIMEOUT", "HTPASSWD_NAME",
    "HTPASSWD_REALM", "LABEL_AUTH", "LABEL_CERT", "LABEL_MANAGED", "LABEL_SETTINGS",
    "ContainerSpec", "DeployError", "DeployOptions", "DeployReport", "Deployment", "Uninstall",
    "certificate_problems", "container_spec", "deploy", "describe_container_state", "guarded",
    "local_docker_client", "parse_df_available_kib", "parse_port_holders",
    "parse_proc_net_tcp", "sha256_fingerprint", "unsafe_purge_reason",
]
