"""A registry's pull credential on a node: the files that hold it and how they are merged.

The pull credential travels to nodes only inside file content (``Transport.write_file`` streams
it on stdin), never on a command line, in a step's dry-run lines, a log or a results file. What
may be shown is its fingerprint (``credential_fingerprint``): a short SHA-256 of the ``auth``
value, enough to tell whether a node holds the current credential.

Two formats hold it:

- Docker's ``config.json`` (``{"auths": {"REG": {"auth": base64("user:password")}}}``): the
  kubelet's ``/var/lib/kubelet/config.json`` (every node, whatever its runtime: the kubelet
  hands the matching credential to the CRI runtime on every pull) and root's
  ``~/.docker/config.json`` on Docker nodes (``docker pull`` as root);
- k3s/RKE2 ``registries.yaml``: ``configs."REG".auth.username``/``password``.

Merging keeps everything else (other registries, ``credsStore``, unknown keys); removal takes
out only an entry for our registry whose user is the pull account's, so an operator's own
login to the same registry is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from app.runtimes.base import (
    CredentialLocation,
    NodeCredential,
    NodeSetupError,
    credential_fingerprint,
)

KUBELET_CONFIG = "/var/lib/kubelet/config.json"
ROOT_DOCKER_CONFIG = "/root/.docker/config.json"

FORMAT_DOCKER_CONFIG = "docker-config"
FORMAT_REGISTRIES_YAML = "registries-yaml"

__all__ = [
    "FORMAT_DOCKER_CONFIG",
    "FORMAT_REGISTRIES_YAML",
    "KUBELET_CONFIG",
    "ROOT_DOCKER_CONFIG",
    "CredentialLocation",
    "NodeCredential",
    "credential_fingerprint",
    "docker_config_auth",
    "installed_auth",
    "keyring_matches",
    "kubelet_login",
    "merge_docker_config",
    "merge_registries_auth",
    "registries_yaml_auth",
]


def _decode_auth(auth: str) -> tuple[str, str]:
    try:
        user, _, password = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return "", ""
    return user, password


# --------------------------------------------------------------------------- Docker config.json


def _load_json(existing: bytes | None, path: str) -> dict[str, Any]:
    if not existing or not existing.strip():
        return {}
    try:
        data = json.loads(existing)
    except ValueError:
        raise NodeSetupError(f"{path} is not valid JSON",
                             "fix the file by hand, then run regwiz onboard again") from None
    if not isinstance(data, dict):
        raise NodeSetupError(f"{path} does not hold a JSON object",
                             "fix the file by hand, then run regwiz onboard again")
    return data


def merge_docker_config(existing: bytes | None, credential: NodeCredential,
                        path: str) -> bytes | None:
    """The file with our registry's entry set (or removed); None when nothing would change.

    Compared as parsed JSON, so a file already holding the entry is never rewritten.
    """
    data = _load_json(existing, path)
    merged = json.loads(json.dumps(data))  # deep copy of plain data
    auths = merged.get("auths")
    if auths is None:
        auths = {}
    if not isinstance(auths, dict):
        raise NodeSetupError(f"{path}: auths is not an object",
                             "fix the file by hand, then run regwiz onboard again")
    if credential.remove:
        entry = auths.get(credential.registry)
        if isinstance(entry, dict) and _entry_user(entry) == credential.username:
            del auths[credential.registry]
    else:
        auths[credential.registry] = {"auth": credential.auth}
    if auths or "auths" in merged:
        merged["auths"] = auths
    if merged == data:
        return None
    return (json.dumps(merged, indent=2) + "\n").encode("utf-8")


def _entry_user(entry: dict[str, Any]) -> str:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        return _decode_auth(auth)[0]
    user = entry.get("username")
    return user if isinstance(user, str) else ""


def docker_config_auth(raw: bytes | None, registry: str) -> str | None:
    """The ``auth`` value a Docker config.json holds for ``registry`` (None: no entry)."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    auths = data.get("auths") if isinstance(data, dict) else None
    entry = auths.get(registry) if isinstance(auths, dict) else None
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        return auth
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(password, str):
        return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return None


# --------------------------------------------------------------------------- registries.yaml


def merge_registries_auth(existing: str | None, credential: NodeCredential) -> str | None:
    """registries.yaml with ``configs."REG".auth`` set (or removed); None when unchanged."""
    import yaml

    try:
        data = yaml.safe_load(existing) if existing else None
    except yaml.YAMLError:
        raise NodeSetupError("registries.yaml is not valid YAML",
                             "fix the file by hand, then run regwiz onboard again") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise NodeSetupError("registries.yaml does not hold a mapping at the top level",
                             "fix the file by hand, then run regwiz onboard again")
    merged = yaml.safe_load(yaml.safe_dump(data)) or {}
    configs = merged.get("configs")
    if configs is None:
        if credential.remove:
            return None
        configs = merged["configs"] = {}
    if not isinstance(configs, dict):
        raise NodeSetupError("registries.yaml: configs is not a mapping",
                             "fix the file by hand, then run regwiz onboard again")
    if credential.remove:
        entry = configs.get(credential.registry)
        if isinstance(entry, dict):
            auth = entry.get("auth")
            if isinstance(auth, dict) and auth.get("username") == credential.username:
                del entry["auth"]
    else:
        entry = configs.setdefault(credential.registry, {})
        if not isinstance(entry, dict):
            raise NodeSetupError(f"registries.yaml: configs.{credential.registry} is not a "
                                 "mapping", "fix the file by hand, then run regwiz onboard again")
        entry["auth"] = {"username": credential.username, "password": credential.password}
    if merged == data:
        return None
    return "# Managed in part by regwiz (other entries are kept).\n" + yaml.safe_dump(
        merged, default_flow_style=False, sort_keys=False
    )


def registries_yaml_auth(raw: bytes | None, registry: str) -> str | None:
    """The ``auth`` value (base64 user:password) registries.yaml holds for ``registry``."""
    import yaml

    try:
        data = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        return None
    configs = data.get("configs") if isinstance(data, dict) else None
    entry = configs.get(registry) if isinstance(configs, dict) else None
    auth = entry.get("auth") if isinstance(entry, dict) else None
    if not isinstance(auth, dict):
        return None
    if isinstance(auth.get("auth"), str):
        return str(auth["auth"])
    user, password = auth.get("username"), auth.get("password")
    if isinstance(user, str) and isinstance(password, str):
        return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return None


def installed_auth(location: CredentialLocation, raw: bytes | None,
                   registry: str) -> str | None:
    """The auth value the file at ``location`` holds for ``registry`` (None: none there)."""
    if location.format == FORMAT_REGISTRIES_YAML:
        return registries_yaml_auth(raw, registry)
    return docker_config_auth(raw, registry)


# --------------------------------------------------------------------------- the kubelet's keyring


def _split_registry_key(key: str) -> tuple[list[str], str, str]:
    """(host labels, port, path) of a config.json key: "https://h:5000/p", "h:5000", "*.h"."""
    from urllib.parse import urlsplit

    parts = urlsplit(key if "://" in key else f"https://{key}")
    host, _, port = parts.netloc.rpartition(":") if parts.netloc.count(":") == 1 else (
        parts.netloc, "", "")
    return host.lower().split("."), port, parts.path.rstrip("/")


def keyring_matches(key: str, image: str) -> bool:
    """Does the config.json key ``key`` cover the image reference ``image``? As the kubelet's
    keyring decides: the same number of host labels, each matching (``*`` globs allowed), the
    same port, and the key's path a prefix of the image's repository path."""
    from fnmatch import fnmatchcase

    key_labels, key_port, key_path = _split_registry_key(key)
    image_labels, image_port, image_path = _split_registry_key(image.split("@")[0])
    if len(key_labels) != len(image_labels) or key_port != image_port:
        return False
    if not all(fnmatchcase(label, glob) for glob, label in zip(key_labels, image_labels,
                                                               strict=True)):
        return False
    return not key_path or image_path == key_path or image_path.startswith(key_path + "/")


def kubelet_login(raw: bytes | None, image: str) -> tuple[str, str] | None:
    """(user, password) the kubelet would pass to the runtime for ``image`` from its
    Docker-format config.json, the most specific matching key first; None: no match."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return None
    for key in sorted(auths, key=len, reverse=True):
        if isinstance(key, str) and keyring_matches(key, image):
            auth = docker_config_auth(json.dumps({"auths": {key: auths[key]}}).encode(), key)
            user, password = _decode_auth(auth) if auth else ("", "")
            if user:
                return user, password
    return None
