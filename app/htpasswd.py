"""Registry basic-auth credentials: bcrypt htpasswd lines and the operator's 0600 credentials file.

The Distribution registry accepts only bcrypt entries. The password is random, shown once, and
kept only in a file the operator chooses (mode 0600); the registry host gets just the hash.

Credentials file format (JSON, read by ``read_credentials``)::

    {"registry": "198.18.0.2:8443", "username": "regwiz", "password": "..."}
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from app.errors import RegwizError
from app.paths import expand_user
from app.plan import atomic_write

DEFAULT_USERNAME = "regwiz"
BCRYPT_ROUNDS = 10


class CredentialsError(RegwizError):
    pass


@dataclass(frozen=True)
class Credentials:
    registry: str
    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(registry={self.registry!r}, username={self.username!r}, <hidden>)"

    @property
    def auth(self) -> str:
        """base64("NAME:PASSWORD"), the ``auth`` value of Docker's config.json."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")


def generate_password(nbytes: int = 18) -> str:
    """A random URL-safe password (18 bytes → 24 characters, ~144 bits)."""
    return secrets.token_urlsafe(nbytes)


def check_username(username: str) -> str | None:
    if not username or len(username) > 64:
        return "registry user name: expected 1 to 64 characters"
    if any(c in username for c in ":\n\r\t ") or not username.isprintable():
        return "registry user name: no spaces, colons or control characters allowed"
    return None


def htpasswd_line(username: str, password: str, *, rounds: int = BCRYPT_ROUNDS) -> str:
    """``user:$2y$...`` as Apache's ``htpasswd -B`` writes it (Go's bcrypt accepts $2y$)."""
    problem = check_username(username)
    if problem:
        raise CredentialsError(problem)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode("ascii")
    return f"{username}:$2y${hashed[4:]}"


def parse_htpasswd(content: str) -> dict[str, str]:
    """``{user: hash}`` for every well-formed line."""
    entries: dict[str, str] = {}
    for line in content.splitlines():
        user, sep, hashed = line.strip().partition(":")
        if sep and user and hashed:
            entries[user] = hashed
    return entries


def password_matches(content: str, username: str, password: str) -> bool:
    """True when the htpasswd text holds ``username`` with a bcrypt hash of ``password``."""
    hashed = parse_htpasswd(content).get(username)
    if not hashed or not hashed.startswith("$2"):
        return False
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode("ascii"))
    except ValueError:
        return False


def read_credentials(path: Path) -> Credentials | None:
    """The saved credentials, or None when the file does not exist."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CredentialsError(
            f"cannot read the credentials file {path}: {error.strerror}",
            "check the path and its permissions",
        ) from None
    try:
        data = json.loads(raw)
        credentials = Credentials(
            str(data["registry"]), str(data["username"]), str(data["password"])
        )
    except (ValueError, KeyError, TypeError):
        raise CredentialsError(
            f"{path} is not a regwiz credentials file",
            'expected JSON {"registry": ..., "username": ..., "password": ...}; '
            "move it away to have new credentials generated",
        ) from None
    if check_username(credentials.username) or not credentials.password:
        raise CredentialsError(f"{path}: invalid user name or empty password")
    return credentials


def write_credentials(path: Path, credentials: Credentials) -> None:
    """Write the credentials file with mode 0600 from the first byte (temp file + rename)."""
    payload = {
        "registry": credentials.registry,
        "username": credentials.username,
        "password": credentials.password,
    }
    atomic_write(expand_user(path), (json.dumps(payload) + "\n").encode("utf-8"), 0o600)


# --------------------------------------------------------------------------- deploy's decision


@dataclass(frozen=True)
class HtpasswdState:
    """What the registry host's htpasswd file holds after deploy, and how it got there."""

    content: bytes
    username: str
    password: str | None = field(repr=False)  # None: an existing entry kept, password unknown
    changed: bool = False  # ``content`` must be written to the host
    generated: bool = False  # the password was made up in this run: show it once


def reconcile(remote: bytes | None, saved: Credentials | None,
              given_password: str | None) -> HtpasswdState:
    """The htpasswd content deploy wants, from the host's file (``remote``), the saved
    credentials and a password given for this run (REGWIZ_REGISTRY_PASSWORD).

    Nothing changes when the host's entry already matches the known password, or when no
    password is known and the user has an entry (the password lives only with whoever saw it
    once). Otherwise the user's line is (re)written; lines of other users, added by hand, stay.
    """
    remote_text = remote.decode("utf-8", errors="replace") if remote else ""
    user = saved.username if saved else DEFAULT_USERNAME
    password = given_password or (saved.password if saved else None)
    if password is None and user in parse_htpasswd(remote_text):
        return HtpasswdState(remote or b"", user, None)
    if password is not None and password_matches(remote_text, user, password):
        return HtpasswdState(remote or b"", user, password)
    generated = password is None
    password = password or generate_password()
    others = [line for line in remote_text.splitlines()
              if line.strip() and line.partition(":")[0] != user]
    content = ("\n".join([*others, htpasswd_line(user, password)]) + "\n").encode()
    return HtpasswdState(content, user, password, changed=True, generated=generated)


def keep_credentials(target: Path | None, wanted: Credentials, saved: Credentials | None) -> None:
    """Save ``wanted`` to the operator's credentials file when one is kept and it differs."""
    if target is not None and saved != wanted:
        write_credentials(target, wanted)
