"""The images a kubeadm control plane of one Kubernetes release pulls, from data regwiz ships
(``assets/kubeadm-images.json``: what ``kubeadm config images list --kubernetes-version VERSION``
prints for each release), so an air-gapped registry can be filled before the cluster exists."""

from __future__ import annotations

import json
from typing import Any

from app.errors import UsageError


def kubeadm_images(version: str) -> list[str]:
    """Every image of ``version`` ("v1.29.2" or "1.29.2"), kube-* first."""
    data = _data()
    wanted = version if version.startswith("v") else f"v{version}"
    extras = data["versions"].get(wanted)
    if extras is None:
        known = list(data["versions"])
        raise UsageError(f"no image list for Kubernetes {wanted} in regwiz's data "
                         f"(it has {known[-1]} to {known[0]})",
                         "on a machine with kubeadm: kubeadm config images list "
                         f"--kubernetes-version {wanted} > images.txt, then --from images.txt")
    registry = data["registry"]
    images = [f"{registry}/{name}:{wanted}" for name in data["control_plane"]]
    return images + [f"{registry}/{name}:{tag}" for name, tag in extras.items()]


def kubeadm_source() -> str:
    return str(_data()["source"])


def _data() -> dict[str, Any]:
    from assets import asset

    data: dict[str, Any] = json.loads(asset("kubeadm-images.json").read_text())
    return data
