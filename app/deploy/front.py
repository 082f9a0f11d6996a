"""The registry's front: an nginx that terminates TLS, checks basic auth against the accounts'
htpasswd file and lets only ``push`` accounts change the registry (everything but GET/HEAD).

With ``registry.auth = "htpasswd"`` the registry container publishes no port: it listens on
plain HTTP on a private Docker network (``regwiz-<container_name>``) that only the front shares,
and the front publishes ``bind_address:port`` -> 443. Pure functions over the plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from app.deploy.container import (
    LABEL_CERT,
    LABEL_SETTINGS,
    REGISTRY_INTERNAL_PORT,
    network_name,
)
from app.plan import Plan
from app.registry_host import LABEL_MANAGED

FRONT_CONFIG_NAME = "nginx.conf"
FRONT_MOUNT = "/etc/regwiz"
LABEL_FRONT_CONFIG = "io.regwiz.front-config-sha256"
LABEL_UPSTREAM = "io.regwiz.registry-container"


def uses_front(plan: Plan) -> bool:
    return plan.registry.auth == "htpasswd"


def front_name(plan: Plan) -> str:
    return f"{plan.registry.container_name}-front"


def render_front_config(plan: Plan, push_accounts: list[str]) -> bytes:
    """nginx.conf from ``assets/front-nginx.conf`` for these push accounts."""
    from assets import asset

    template = asset("front-nginx.conf").read_text(encoding="utf-8")
    upstream = f"{plan.registry.container_name}:{REGISTRY_INTERNAL_PORT}"
    accounts = "\n".join(f'        "{name}" 1;' for name in sorted(push_accounts))
    text = template.replace("@UPSTREAM@", upstream).replace("@PUSH_ACCOUNTS@", accounts)
    return text.encode("utf-8")


@dataclass(frozen=True)
class FrontSpec:
    image: str
    name: str
    network: str
    bind_address: str
    port: int
    volumes: dict[str, dict[str, str]]

    def settings_hash(self) -> str:
        canonical = json.dumps({"image": self.image, "name": self.name, "network": self.network,
                                "bind": self.bind_address, "port": self.port,
                                "volumes": self.volumes, "restart": "always"}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def labels(self, cert_fingerprint: str, config_digest: str, upstream_id: str
               ) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_SETTINGS: self.settings_hash(),
                LABEL_CERT: cert_fingerprint, LABEL_FRONT_CONFIG: config_digest,
                LABEL_UPSTREAM: upstream_id}

    def details(self) -> list[str]:
        lines = [f"docker network create {self.network} (private: registry + front only)",
                 f"docker run -d --restart=always --name {self.name} --network {self.network} "
                 f"-p {self.bind_address}:{self.port}:443"]
        lines += [f"  -v {src}:{v['bind']}:{v['mode']}" for src, v in self.volumes.items()]
        lines.append(f"  {self.image}  (TLS, basic auth, GET/HEAD for every account, the rest "
                     "for push accounts)")
        return lines


def front_spec(plan: Plan) -> FrontSpec:
    registry = plan.registry
    certs = registry.certs_dir.rstrip("/") or "/"
    volumes = {
        # the folder, not the files: a rotated htpasswd (renamed into place) is seen at once
        certs: {"bind": FRONT_MOUNT, "mode": "ro"},
        f"{certs}/{FRONT_CONFIG_NAME}": {"bind": "/etc/nginx/nginx.conf", "mode": "ro"},
    }
    return FrontSpec(registry.front_image, front_name(plan), network_name(plan),
                     registry.bind_address, registry.port, volumes)

