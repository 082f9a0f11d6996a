"""Kubernetes snippets that use the private registry: a pod spec and an imagePullSecret.

The YAML is written by hand (no PyYAML): every scalar is a JSON string, which is valid YAML and
needs no escaping rules of its own.
"""

from __future__ import annotations

import base64
import json
import re

from app.errors import UsageError

DEFAULT_IMAGE = "busybox:latest"
DEFAULT_SECRET_NAME = "regwiz-registry"  # noqa: S105 - a Secret object name, not a password
# Distribution's reference grammar: lowercase path components, optional :tag or @digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    rf"^(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_image_name(name: str) -> str | None:
    """An error message for an invalid ``repository[:tag][@digest]``, or None."""
    if not name or len(name) > 255:
        return "image: expected 1 to 255 characters, e.g. team/app:1.0"
    if "://" in name or name.startswith("/"):
        return f"image {name!r}: give only the repository path and tag, e.g. team/app:1.0"
    if _IMAGE_RE.match(name):
        return None
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first):
        return (
            f"image {name!r}: give the path inside the registry without a registry host; "
            "regwiz adds the plan's address and port"
        )
    return (
        f"image {name!r}: expected lowercase path components ([a-z0-9] separated by . _ -), "
        "an optional :tag and an optional @sha256:digest"
    )


def check_k8s_name(name: str) -> str | None:
    if not _DNS_LABEL_RE.match(name):
        return (
            f"name {name!r}: expected a DNS label (lowercase letters, digits and '-', "
            "at most 63 characters, starting and ending with a letter or digit)"
        )
    return None


def image_reference(registry_reference: str, image: str) -> str:
    """``<address>:<port>/<image>``; a missing tag means ``latest``."""
    problem = check_image_name(image)
    if problem:
        raise UsageError(problem, "e.g. --image team/app:1.0")
    match = _IMAGE_RE.match(image)
    assert match is not None
    if not match.group("tag") and not match.group("digest"):
        image = f"{image}:latest"
    return f"{registry_reference}/{image}"


def pod_name_for(image: str) -> str:
    """A pod name from the image's last path component (``team/my_app:1`` → ``my-app``)."""
    last = image.split("@", 1)[0].split(":", 1)[0].rsplit("/", 1)[-1]
    name = re.sub(r"[^a-z0-9-]+", "-", last.lower()).strip("-")[:63].strip("-")
    return name or "app"


def _q(value: str) -> str:
    return json.dumps(value)


def pod_manifest(
    reference: str, *, name: str | None = None, pull_secret: str | None = None
) -> str:
    """A minimal Pod that pulls ``reference`` (with ``imagePullSecrets`` when given)."""
    name = name or pod_name_for(reference.split("/", 1)[-1])
    problem = check_k8s_name(name)
    if problem:
        raise UsageError(problem)
    lines = [
        "apiVersion: v1",
        "kind: Pod",
        "metadata:",
        f"  name: {_q(name)}",
        "spec:",
        "  containers:",
        f"    - name: {_q(name)}",
        f"      image: {_q(reference)}",
        "      imagePullPolicy: Always",
    ]
    if pull_secret:
        lines += ["  imagePullSecrets:", f"    - name: {_q(pull_secret)}"]
    return "\n".join(lines) + "\n"


def dockerconfigjson(registry_reference: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` document kubelet reads for registry credentials."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    auths = {
        registry_reference: {"username": username, "password": password, "auth": token},
    }
    return json.dumps({"auths": auths}, separators=(",", ":"))


def pull_secret_manifest(
    registry_reference: str,
    username: str,
    password: str,
    *,
    name: str = DEFAULT_SECRET_NAME,
    namespace: str | None = None,
) -> str:
    """A ``kubernetes.io/dockerconfigjson`` Secret for the registry's htpasswd credentials."""
    for value in (name, *([namespace] if namespace else [])):
        problem = check_k8s_name(value)
        if problem:
            raise UsageError(problem)
    encoded = base64.b64encode(
        dockerconfigjson(registry_reference, username, password).encode()
    ).decode("ascii")
    lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: {_q(name)}"]
    if namespace:
        lines.append(f"  namespace: {_q(namespace)}")
    lines += [
        "type: kubernetes.io/dockerconfigjson",
        "data:",
        f"  .dockerconfigjson: {_q(encoded)}",
    ]
    return "\n".join(lines) + "\n"
