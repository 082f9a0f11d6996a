"""Registry account credentials as files next to the plan, in Docker's ``config.json`` format.

``credentials/NAME.json`` (mode 0600, folder 0700) holds
``{"auths": {"HOST:PORT": {"auth": base64("NAME:PASSWORD")}}}``: the format ``docker --config
DIR``, ``skopeo --authfile``, ``podman --authfile`` and a Kubernetes ``.dockerconfigjson`` secret
read as they are. Accounts (their roles and dates) are managed by ``app.accounts``; this module
only names the files and reads and writes one credential, so deploy, onboarding, verify and
status agree on where a credential lives and how it is spelled. Never print what it reads.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from app.errors import RegwizError
from app.htpasswd import Credentials
from app.plan import Plan, atomic_write

CREDENTIALS_DIR = "credentials"
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class CredentialFileError(RegwizError):
    pass


# One account's login for one registry (``registry`` as image references spell it).
RegistryCredential = Credentials


def credentials_dir(plan: Plan) -> Path:
    """``credentials/`` next to the plan file (or in the working directory for an unsaved plan)."""
    base = plan.path.parent if plan.path is not None else Path.cwd()
    return base / CREDENTIALS_DIR


def credential_path(plan: Plan, account: str) -> Path:
    return credentials_dir(plan) / f"{account}.json"


def docker_config_json(credential: RegistryCredential) -> bytes:
    """The file's whole content: one registry, one account."""
    data = {"auths": {credential.registry: {"auth": credential.auth}}}
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def parse_docker_config(data: bytes, registry: str, *, source: str) -> RegistryCredential | None:
    """The credential for ``registry`` in a Docker config.json; None when it has none."""
    try:
        document = json.loads(data)
        entry = document.get("auths", {}).get(registry)
    except (ValueError, AttributeError):
        raise CredentialFileError(f"{source} is not a Docker config.json",
                                  'expected {"auths": {"HOST:PORT": {"auth": "..."}}}') from None
    if entry is None:
        return None
    try:
        username, password = _login_of(entry)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CredentialFileError(f"{source}: the entry for {registry} has no valid auth value",
                                  "write it again with regwiz accounts rotate NAME") from None
    if not username or not password:
        raise CredentialFileError(f"{source}: the entry for {registry} has an empty name or "
                                  "password")
    return RegistryCredential(registry, username, password)


def _login_of(entry: dict[str, str]) -> tuple[str, str]:
    """(user, password) of an auths entry: ``auth`` as docker writes it, or ``username`` and
    ``password`` as some tools do."""
    if "auth" not in entry and isinstance(entry.get("username"), str):
        if not isinstance(entry.get("password"), str):
            raise TypeError("password")
        return entry["username"], entry["password"]
    username, _, password = base64.b64decode(entry["auth"], validate=True).decode(
        "utf-8").partition(":")
    return username, password


def read_credential(path: Path, registry: str) -> RegistryCredential | None:
    """The credential saved in ``path`` for ``registry``; None when the file does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CredentialFileError(f"cannot read {path}: {error.strerror}",
                                  "check the file's owner and permissions") from None
    return parse_docker_config(data, registry, source=str(path))


def write_credential(path: Path, credential: RegistryCredential) -> None:
    """Save one credential, 0600 from the first byte, in a 0700 folder (atomic replace)."""
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.parent.chmod(PRIVATE_DIR)
    atomic_write(path, docker_config_json(credential), PRIVATE_FILE)
