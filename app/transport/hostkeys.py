"""Host-key checking like OpenSSH's, against the user's known_hosts file.

A key the file lists for the host is accepted. A key of the same type that differs from the
listed one is always refused (``host-key-changed``, both fingerprints named). A key of a type
the file does not list for a host it lists other keys for is OpenSSH's "keys of different type
are already known" case: it may be an attacker who cannot present the known key, so it is
refused even under ``accept_new`` (``host-key-changed``, the known fingerprints named) and only
``confirm_other_type`` (the TUI's warning modal) can accept it. A key of a host the file does
not list at all is decided by the policy: refused by default, saved when ``accept_new`` (like
``StrictHostKeyChecking=accept-new``), or asked through ``confirm`` (the TUI answers it from a
modal). Nothing here ever accepts a key silently.

known_hosts lines understood: plain, comma-separated, ``[host]:port``, hashed (``|1|salt|hash``),
wildcards (``*``, ``?``) and negation (``!``); ``@revoked`` keys are refused, ``@cert-authority``
lines are ignored (certificates are not supported).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from app.transport.base import TransportError
from app.user_waits import UserWaits

#: confirm(host, key_type, fingerprint) -> True to trust the key. Called from a worker thread.
ConfirmCallback = Callable[[str, str, str], bool]
#: confirm_other_type(host, key_type, fingerprint, known) -> True to trust a key of a new type;
#: ``known``: the host's keys already in known_hosts, as "TYPE SHA256:...".
OtherTypeConfirmCallback = Callable[[str, str, str, tuple[str, ...]], bool]

KNOWN = "known"
UNKNOWN = "unknown"
CHANGED = "changed"
OTHER_TYPE = "other-type"  # the host is known, but only by keys of other types
REVOKED = "revoked"

# Serialises appends to known_hosts and confirm prompts across concurrent connections.
_FILE_LOCK = threading.Lock()


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def fingerprint_of_blob(blob: bytes) -> str:
    """OpenSSH's format: ``SHA256:`` + unpadded base64 of the key blob's SHA-256."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def host_pattern(host: str, port: int) -> str:
    """The name OpenSSH writes and looks up: ``host`` on port 22, ``[host]:port`` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def key_family(key_type: str) -> str:
    """RSA keys are negotiated as rsa-sha2-*, but stored and compared as ssh-rsa."""
    return "ssh-rsa" if key_type in ("rsa-sha2-256", "rsa-sha2-512") else key_type


@dataclass(frozen=True)
class KnownHostEntry:
    marker: str  # "", "@revoked" or "@cert-authority"
    patterns: tuple[str, ...]
    key_type: str
    blob: bytes
    line_number: int

    def matches(self, name: str) -> bool:
        positive = False
        for pattern in self.patterns:
            if pattern.startswith("|1|"):
                positive = positive or _hashed_match(pattern, name)
            elif pattern.startswith("!"):
                if wildcard_match(pattern[1:], name):
                    return False
            elif wildcard_match(pattern, name):
                positive = True
        return positive


def wildcard_match(pattern: str, name: str) -> bool:
    """OpenSSH patterns: only ``*`` and ``?`` are special (``[`` is literal, as in [host]:port)."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def _hashed_match(pattern: str, name: str) -> bool:
    try:
        _, _, salt_b64, hash_b64 = pattern.split("|", 3)
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
    except (ValueError, binascii.Error):
        return False
    actual = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(actual, expected)


def parse_known_hosts(text: str) -> list[KnownHostEntry]:
    """Parse known_hosts text; malformed lines are skipped like OpenSSH does."""
    entries: list[KnownHostEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = _parse_line(raw, number)
        if entry is not None:
            entries.append(entry)
    return entries


def _parse_line(raw: str, number: int) -> KnownHostEntry | None:
    fields = raw.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = ""
    if fields[0].startswith("@"):
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except (ValueError, binascii.Error):
        return None
    return KnownHostEntry(marker, tuple(fields[0].split(",")), fields[1], blob, number)


@dataclass(frozen=True)
class HostKeyVerdict:
    status: str  # KNOWN, UNKNOWN, CHANGED, OTHER_TYPE or REVOKED
    # CHANGED: fingerprints of the same type; OTHER_TYPE: every known key as "TYPE SHA256:..."
    known_fingerprints: tuple[str, ...] = ()
    known_types: tuple[str, ...] = ()


def judge(entries: list[KnownHostEntry], name: str, key_type: str, blob: bytes) -> HostKeyVerdict:
    """Compare a presented key with the entries for ``name`` (as ``host_pattern`` gives it)."""
    relevant = [e for e in entries if e.marker != "@cert-authority" and e.matches(name)]
    if any(e.marker == "@revoked" and e.blob == blob for e in relevant):
        return HostKeyVerdict(REVOKED)
    plain = [e for e in relevant if not e.marker]
    known_types = tuple(dict.fromkeys(key_family(e.key_type) for e in plain))
    if any(e.blob == blob for e in plain):
        return HostKeyVerdict(KNOWN, known_types=known_types)
    same_type = [e for e in plain if key_family(e.key_type) == key_family(key_type)]
    if same_type:
        fingerprints = tuple(fingerprint_of_blob(e.blob) for e in same_type)
        return HostKeyVerdict(CHANGED, fingerprints, known_types)
    if plain:
        known = tuple(dict.fromkeys(
            f"{key_family(e.key_type)} {fingerprint_of_blob(e.blob)}" for e in plain))
        return HostKeyVerdict(OTHER_TYPE, known, known_types)
    return HostKeyVerdict(UNKNOWN, known_types=known_types)


@dataclass
class HostKeyPolicy:
    """Decides whether a server's host key is trusted.

    ``known_hosts``: the file to check and extend (default ``~/.ssh/known_hosts``).
    ``accept_new``: save unknown keys without asking (headless ``--accept-new-host-keys``).
    ``confirm``: asked about unknown keys when ``accept_new`` is off; blocks until answered.
    ``confirm_other_type``: asked, with the known fingerprints, about a key of a type not yet
    known for a known host; without it such a key is refused (also under ``accept_new``).
    ``waits``: where the time spent on these questions is counted (also the time a connection
    waits for another one's question), so a node's time can leave it out.
    """

    known_hosts: Path | None = None
    accept_new: bool = False
    confirm: ConfirmCallback | None = None
    confirm_other_type: OtherTypeConfirmCallback | None = None
    waits: UserWaits = field(default_factory=UserWaits)
    _prompt_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def path(self) -> Path:
        return Path(self.known_hosts) if self.known_hosts else default_known_hosts()

    def entries(self) -> list[KnownHostEntry]:
        try:
            return parse_known_hosts(self.path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise TransportError(
                f"cannot read known_hosts file {self.path}: {error.strerror}",
                "check the file's permissions or pass another known_hosts path",
                kind="host-key-unknown",
            ) from error

    def known_key_types(self, host: str, port: int) -> tuple[str, ...]:
        """Key types listed for the host, so a connection can prefer them (as ssh does)."""
        name = host_pattern(host, port)
        return judge(self.entries(), name, "", b"").known_types

    def verdict(self, host: str, port: int, key_type: str, blob: bytes) -> HostKeyVerdict:
        return judge(self.entries(), host_pattern(host, port), key_type, blob)

    def verify(self, host: str, port: int, key_type: str, blob: bytes) -> None:
        """Return when the key is trusted (known or newly accepted); else raise TransportError."""
        verdict = self.verdict(host, port, key_type, blob)
        if verdict.status == KNOWN:
            return
        fingerprint = fingerprint_of_blob(blob)
        label = host_pattern(host, port)
        if verdict.status == REVOKED:
            raise TransportError(
                f"the host key of {label} ({key_type} {fingerprint}) is marked @revoked in "
                f"{self.path}",
                "do not connect; ask the host's administrator for its current key",
                kind="host-key-changed",
            )
        if verdict.status == CHANGED:
            raise changed_key_error(label, key_type, verdict.known_fingerprints, fingerprint,
                                    self.path)
        if verdict.status == OTHER_TYPE:
            self._decide_other_type(host, port, key_type, blob, verdict.known_fingerprints)
            return
        self._decide_unknown(host, port, key_type, blob, fingerprint)

    def _decide_other_type(self, host: str, port: int, key_type: str, blob: bytes,
                           known: tuple[str, ...]) -> None:
        """Like OpenSSH's warning: the host is known by other keys. Only an explicit yes to a
        prompt showing those keys accepts this one; never ``accept_new``."""
        label = host_pattern(host, port)
        fingerprint = fingerprint_of_blob(blob)
        with self._asking(self.confirm_other_type is not None), self._prompt_lock:
            if self.verdict(host, port, key_type, blob).status == KNOWN:
                return
            if self.confirm_other_type is None or not self.confirm_other_type(
                    label, key_type, fingerprint, known):
                raise other_type_error(label, key_type, fingerprint, known, self.path,
                                       asked=self.confirm_other_type is not None)
            self.remember(host, port, key_type, blob)

    def _decide_unknown(
        self, host: str, port: int, key_type: str, blob: bytes, fingerprint: str
    ) -> None:
        label = host_pattern(host, port)
        with self._asking(not self.accept_new and self.confirm is not None), self._prompt_lock:
            # Another connection to the same host may have accepted it while we waited.
            if self.verdict(host, port, key_type, blob).status == KNOWN:
                return
            if self.accept_new:
                accepted = True
            elif self.confirm is not None:
                accepted = bool(self.confirm(label, key_type, fingerprint))
            else:
                raise TransportError(
                    f"the host key of {label} is not known: {key_type} {fingerprint}",
                    "compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` "
                    "on the host, then confirm it in the wizard or pass --accept-new-host-keys "
                    "(or connect once with ssh)",
                    kind="host-key-unknown",
                )
            if not accepted:
                raise TransportError(
                    f"the host key of {label} ({key_type} {fingerprint}) was not accepted",
                    "accept the key only after checking its fingerprint on the host",
                    kind="host-key-unknown",
                )
            self.remember(host, port, key_type, blob)

    def _asking(self, interactive: bool) -> AbstractContextManager[None]:
        """Around a decision that may wait for the user (its question, or another thread's
        holding the prompt lock): counted in ``waits``."""
        return self.waits.waiting() if interactive else contextlib.nullcontext()

    def remember(self, host: str, port: int, key_type: str, blob: bytes) -> None:
        """Append the key to known_hosts (creating ~/.ssh 0700 and the file 0600 if needed)."""
        line = f"{host_pattern(host, port)} {key_family(key_type)} "
        line += base64.b64encode(blob).decode("ascii") + "\n"
        path = self.path
        with _FILE_LOCK:
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                needs_newline = path.exists() and not path.read_bytes().endswith(b"\n") \
                    and path.stat().st_size > 0
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as handle:
                    handle.write(("\n" if needs_newline else "") + line)
            except OSError as error:
                raise TransportError(
                    f"cannot save the host key of {host_pattern(host, port)} to {path}: "
                    f"{error.strerror}",
                    "check that the known_hosts file and its directory are writable",
                    kind="host-key-unknown",
                ) from error


def other_type_error(label: str, key_type: str, presented: str, known: tuple[str, ...],
                     path: Path, *, asked: bool = False) -> TransportError:
    what = "was not accepted" if asked else "is refused"
    return TransportError(
        f"{label} presents a {key_type} host key ({presented}), a type known_hosts does not "
        f"list for it, while it lists {', '.join(known)} for this host: the key {what} "
        "(never accepted automatically, also not with --accept-new-host-keys)",
        "this can be an attack by someone who cannot present the known key; check the new "
        "key on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then accept it in the "
        f"wizard or add it to {path} yourself",
        # refused by rule it is as grave as a changed key; declined by the user, it is like
        # any key the user did not accept
        kind="host-key-unknown" if asked else "host-key-changed",
    )


def changed_key_error(
    label: str, key_type: str, known: tuple[str, ...], presented: str, path: Path
) -> TransportError:
    return TransportError(
        f"the host key of {label} has CHANGED: known_hosts has {key_type} "
        f"{', '.join(known)}, the server now presents {presented}",
        "this can be an attack; if the host was reinstalled, remove the old key with "
        f"`ssh-keygen -R '{label}' -f {path}` and connect again",
        kind="host-key-changed",
    )
