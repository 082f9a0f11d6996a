"""Registry accounts with roles, kept next to the plan.

Two roles: ``push`` (push, pull, delete: operators and CI) and ``pull`` (pull only: the cluster's
nodes). The registry's front (``app.deploy.front``) enforces them. Each account's credential is a
Docker ``config.json`` written by ``app.credential_files`` (``credentials/NAME.json``, 0600); the
metadata (role, created, last rotated; never a secret) is ``credentials/accounts.json`` (0600).

Passwords are generated, or read from ``REGWIZ_ACCOUNT_<NAME>_PASSWORD`` when the account is
created or rotated; they are never printed here. The host's htpasswd file is rendered from the
accounts (``htpasswd_content``): an entry whose bcrypt hash still matches the saved password is
kept as it is, so a second deploy changes nothing.

Migration: the single ``registry-credentials.json`` of earlier versions (``--credentials-file``)
becomes a ``push`` account with the same name and password, so every client already logged in
with it keeps working; ``operator`` and ``cluster`` are created beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app import htpasswd as htp
from app.credential_files import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    RegistryCredential,
    credential_path,
    credentials_dir,
    read_credential,
    write_credential,
)
from app.errors import RegwizError, UsageError
from app.plan import Plan, Secrets, atomic_write

ROLES: tuple[str, ...] = ("push", "pull")
OPERATOR = "operator"  # the push account deploy creates; verify pushes with it
DEFAULT_ACCOUNTS: tuple[tuple[str, str], ...] = ((OPERATOR, "push"), ("cluster", "pull"))
ACCOUNTS_FILE = "accounts.json"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_RESERVED = {"accounts"}


class AccountError(RegwizError):
    pass


@dataclass(frozen=True)
class Account:
    """One account's metadata (no secret)."""

    name: str
    role: str
    created: str  # ISO 8601 UTC
    rotated: str = ""  # ISO 8601 UTC of the last password change ("" = never)
    origin: str = ""  # e.g. "migrated from registry-credentials.json"


def check_account_name(name: str) -> str | None:
    if not _NAME.fullmatch(name) or name in _RESERVED:
        return (f"account name {name!r}: expected 1-64 lower-case letters, digits, '_', '.' or "
                "'-', starting with a letter or digit (not 'accounts')")
    return None


def password_env_var(name: str) -> str:
    """``REGWIZ_ACCOUNT_<NAME>_PASSWORD`` (name upper-cased, '.' and '-' as '_')."""
    return "REGWIZ_ACCOUNT_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_PASSWORD"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class AccountStore:
    """The accounts of one plan: ``credentials/accounts.json`` and ``credentials/NAME.json``."""

    def __init__(self, plan: Plan, environ: Mapping[str, str] | None = None) -> None:
        from app.plan import require_managed

        # Accounts of a registry regwiz did not deploy live in that registry (robot accounts).
        require_managed(plan, "accounts")
        self.plan = plan
        self.environ = os.environ if environ is None else environ
        self.directory = credentials_dir(plan)
        self.path = self.directory / ACCOUNTS_FILE

    # -- metadata ----------------------------------------------------------------------------

    def load(self) -> list[Account]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise AccountError(f"cannot read {self.path}: {error.strerror}") from None
        try:
            data = json.loads(raw)
            accounts = [Account(**entry) for entry in data["accounts"]]
        except (ValueError, KeyError, TypeError):
            raise AccountError(f"{self.path} is not a regwiz accounts file",
                               "move it away; deploy creates operator and cluster again") from None
        return accounts

    def save(self, accounts: list[Account]) -> None:
        self.directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        self.directory.chmod(PRIVATE_DIR)
        payload = {"registry": self.plan.registry_reference,
                   "accounts": [asdict(account) for account in accounts]}
        atomic_write(self.path, (json.dumps(payload, indent=2) + "\n").encode(), PRIVATE_FILE)

    def get(self, name: str) -> Account | None:
        return next((a for a in self.load() if a.name == name), None)

    def credential(self, name: str) -> RegistryCredential | None:
        return read_credential(credential_path(self.plan, name), self.plan.registry_reference)

    def credential_file(self, name: str) -> Path:
        return credential_path(self.plan, name)

    def push_accounts(self) -> list[str]:
        return [a.name for a in self.load() if a.role == "push"]

    # -- changes (local files only; the host's htpasswd follows with a deploy step) -----------

    def _new_password(self, name: str) -> str:
        return self.environ.get(password_env_var(name)) or htp.generate_password()

    def add(self, name: str, role: str, *, password: str | None = None,
            origin: str = "") -> Account:
        if (problem := check_account_name(name)) is not None:
            raise UsageError(problem)
        if role not in ROLES:
            raise UsageError(f"role {role!r}: expected push or pull")
        accounts = self.load()
        if any(a.name == name for a in accounts):
            raise UsageError(f"account {name} exists already",
                             f"rotate its password with regwiz accounts rotate {name}")
        credential = RegistryCredential(self.plan.registry_reference, name,
                                        password or self._new_password(name))
        write_credential(self.credential_file(name), credential)
        account = Account(name, role, _now(), origin=origin)
        self.save([*accounts, account])
        return account

    def _existing(self, name: str) -> tuple[list[Account], Account]:
        """Every account, and the one called ``name`` (UsageError when there is none)."""
        accounts = self.load()
        account = next((a for a in accounts if a.name == name), None)
        if account is None:
            raise UsageError(f"no account {name}", "see regwiz accounts list")
        return accounts, account

    def rotate(self, name: str) -> Account:
        accounts, account = self._existing(name)
        old = self.credential(name)
        password = self._new_password(name)
        if old is not None and old.password == password:
            password = htp.generate_password()  # an env var still holding the old one
        write_credential(self.credential_file(name),
                         RegistryCredential(self.plan.registry_reference, name, password))
        rotated = Account(account.name, account.role, account.created, _now(), account.origin)
        self.save([rotated if a.name == name else a for a in accounts])
        return rotated

    def revoke(self, name: str) -> Account:
        accounts, account = self._existing(name)
        self.save([a for a in accounts if a.name != name])
        self.credential_file(name).unlink(missing_ok=True)
        return account

    def ensure_defaults(self, legacy: Path | None = None,
                        operator_password: str | None = None) -> list[Account]:
        """First deploy with auth: migrate ``legacy`` and create ``operator`` and ``cluster``.
        Returns the accounts created now (empty when they all existed)."""
        created: list[Account] = []
        first = not self.path.exists()  # a revoked operator or cluster stays revoked
        existing = {a.name for a in self.load()}
        if legacy is not None and first:
            old = htp.read_credentials(legacy)
            if old is not None and old.username not in existing:
                name = old.username.lower()
                if check_account_name(name) is None and name not in existing:
                    created.append(self.add(name, "push", password=old.password,
                                            origin=f"migrated from {legacy.name}"))
                    existing.add(name)
        for name, role in DEFAULT_ACCOUNTS if first else ():
            if name not in existing:
                password = None
                if name == "operator":  # the single password of earlier versions
                    password = (operator_password
                                or self.environ.get("REGWIZ_REGISTRY_PASSWORD") or None)
                created.append(self.add(name, role, password=password))
        return created

    # -- the host's file ------------------------------------------------------------------------

    def htpasswd_content(self, remote: bytes | None, *, rounds: int = htp.BCRYPT_ROUNDS) -> bytes:
        """The htpasswd file for the accounts: a host line whose hash matches the saved password
        is kept byte for byte (idempotence), others are hashed anew; lines of names that are no
        accounts are dropped (revoked accounts, hand-made entries the front knows no role of)."""
        remote_text = remote.decode("utf-8", errors="replace") if remote else ""
        current = htp.parse_htpasswd(remote_text)
        lines = []
        for account in self.load():
            credential = self.credential(account.name)
            if credential is None:
                raise AccountError(
                    f"the credential file of account {account.name} is missing: "
                    f"{self.credential_file(account.name)}",
                    f"give it a new password with regwiz accounts rotate {account.name}")
            if htp.password_matches(remote_text, account.name, credential.password):
                lines.append(f"{account.name}:{current[account.name]}")
            else:
                lines.append(htp.htpasswd_line(account.name, credential.password, rounds=rounds))
        return ("\n".join(lines) + "\n").encode() if lines else b""


def nodes_after_pull_change(plan: Plan, name: str, secrets: Secrets, host_key_policy: Any, *,
                            revoked: bool) -> tuple[str, bool]:
    """After a pull account was rotated or revoked, bring the nodes' copy of it up to date (the
    nodes hold the cluster's pull account only): one line saying how that went, and whether
    every node was reached. The CLI and the TUI both call this, once."""
    from app.node_credentials import PULL_ACCOUNT
    from app.onboard import update_node_credentials

    if name != PULL_ACCOUNT or not plan.nodes:
        return "", True
    report = update_node_credentials(plan, secrets, host_key_policy=host_key_policy,
                                     revoked=revoked)
    done = ", ".join(f"{n} {state}" for state, n in report.counts().items() if n)
    if not report.failed:
        return f"nodes updated ({done})", True
    hosts = ", ".join(result.host for result in report.failed)
    return (f"nodes updated ({done}); not reached: {hosts}: they keep the old credential "
            f"(regwiz status shows them stale) until regwiz onboard --plan "
            f"{plan.path or 'FILE'} reaches them"), False
