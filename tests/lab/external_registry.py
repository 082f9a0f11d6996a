"""A registry regwiz did not deploy, for lab tests (issue 16): a plain Distribution registry on
the lab's registry host with its own CA (its tls.crt holds the server certificate and the root, as
Harbor's installer serves them), its own htpasswd and a robot-style pull login whose name holds a
``$``; started with ``docker run`` directly, never by regwiz, and holding one pushed image."""

from __future__ import annotations

import base64
import json
import secrets as random_secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.deploy_helpers import Pki, make_pki
from tests.lab.lab import BUSYBOX_IMAGE, Lab
from tests.lab.tls_registry import push_images, run_tls_registry
from tests.lab.trust import https_status, reset_node_trust
from tests.polling import poll_until

ROBOT = "robot$cluster-pull"  # Harbor names robot accounts like this
PUSHER = "admin"
IMAGE = "library/busybox:latest"
CREDENTIAL_FILES = ("/var/lib/kubelet/config.json", "/root/.docker/config.json")
TOUCHED_NODES = ("docker", "containerd", "bare")


@dataclass
class ExternalRegistry:
    ip: str
    port: int
    pki: Pki
    robot_password: str

    @property
    def reference(self) -> str:
        return f"{self.ip}:{self.port}"

    def answers(self) -> bool:
        try:
            return https_status(f"https://{self.reference}/v2/", self.pki.ca_pem) == 401
        except OSError:
            return False

    def write_robot_file(self, path: Path) -> Path:
        """The robot's login as the Docker config.json `docker login` would write."""
        login = base64.b64encode(f"{ROBOT}:{self.robot_password}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.reference: {"auth": login}}}))
        path.chmod(0o600)
        return path


@contextmanager
def external_registry(lab: Lab, port: int, name: str) -> Iterator[ExternalRegistry]:
    """Run it as container ``name`` on ``port`` of the registry host until the block ends; then
    remove it and whatever onboarding placed for it on the core nodes."""
    host = lab["registry"]
    files = f"/registry-image/{name}"  # private to the registry host
    registry = ExternalRegistry(host.ip, port, make_pki([host.ip], cn="Harbor-like private CA"),
                                random_secrets.token_urlsafe(18))
    pusher_password = random_secrets.token_urlsafe(18)
    host.exec(["docker", "rm", "-f", name], check=False)
    try:
        run_tls_registry(host, name, port, files, registry.pki,
                         {ROBOT: registry.robot_password, PUSHER: pusher_password})
        assert poll_until(registry.answers, timeout=60)
        push_images(host, registry.reference, registry.pki.ca_pem, files,
                    {IMAGE: BUSYBOX_IMAGE}, (PUSHER, pusher_password))
        yield registry
    finally:
        host.exec(["docker", "rm", "-f", name], check=False)
        host.exec(["rm", "-rf", files], check=False)
        reset_node_trust(lab, registry.reference)
        _remove_our_entries(lab, registry.reference)


def _remove_our_entries(lab: Lab, reference: str) -> None:
    """Take this registry's login out of the node credential files other tests share."""
    for name in TOUCHED_NODES:
        for path in CREDENTIAL_FILES:
            file = lab[name].host_path(path)
            if not file.is_file():
                continue
            data = json.loads(file.read_text() or "{}")
            if data.get("auths", {}).pop(reference, None) is not None:
                file.write_text(json.dumps(data, indent=2) + "\n")
