"""Read hosts' SSH host keys without logging in, so all unknown keys can be decided at once.

One key exchange per host (no authentication), in parallel, each with a timeout: the key the
host offers, judged against known_hosts like a real connection would judge it. The key types
are negotiated as ``start_ssh`` does for the real connection (known types first), so the scan
sees the key the connection will see. Nothing is accepted here: the caller decides, and saves
accepted keys with ``HostKeyPolicy.remember``; the real connection checks the key again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from app.transport.base import ConnectionSettings, TransportError
from app.transport.hostkeys import (
    CHANGED,
    KNOWN,
    OTHER_TYPE,
    REVOKED,
    UNKNOWN,
    HostKeyPolicy,
    fingerprint_of_blob,
    host_pattern,
)

SCAN_TIMEOUT = 5.0  # a host slower than this is left to the connection's own question
SCAN_PARALLEL = 16
NOT_SCANNED = "not-scanned"


@dataclass(frozen=True)
class ScannedKey:
    """The key one host offered and its verdict (``status``: a hostkeys verdict, or
    NOT_SCANNED with ``error`` saying why)."""

    host: str  # as the caller named it (the plan's node host)
    name: str = ""  # the name known_hosts uses (HostName or HostKeyAlias from ~/.ssh/config)
    port: int = 22
    key_type: str = ""
    blob: bytes = field(default=b"", repr=False)
    status: str = NOT_SCANNED
    # CHANGED: the known fingerprints of this type; OTHER_TYPE: every known key as "TYPE SHA256:"
    known: tuple[str, ...] = ()
    error: str = ""

    @property
    def label(self) -> str:
        """``host`` or ``[host]:port``, as known_hosts and the questions name it."""
        return host_pattern(self.name or self.host, self.port)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of_blob(self.blob) if self.blob else ""

    @property
    def refused(self) -> bool:
        """A key no answer may accept: changed or revoked."""
        return self.status in (CHANGED, REVOKED)

    @property
    def needs_answer(self) -> bool:
        """Anything but a key already trusted (and hosts that could not be scanned)."""
        return self.status in (UNKNOWN, OTHER_TYPE, CHANGED, REVOKED)


def scan_host_key(settings: ConnectionSettings, policy: HostKeyPolicy,
                  timeout: float = SCAN_TIMEOUT) -> ScannedKey:
    """The key ``settings``' host offers; never raises (a failure is a NOT_SCANNED result)."""
    from app.transport.ssh import open_socket, resolve, start_ssh

    try:
        target = resolve(settings)
        # Jump hosts are only passed through if already trusted: no question during a scan.
        quiet = HostKeyPolicy(known_hosts=policy.known_hosts)
        stream, jump = open_socket(target, _bounded(settings, timeout), quiet)
    except TransportError as error:
        return ScannedKey(settings.host, port=settings.port or 22, error=error.message)
    try:
        client = start_ssh(stream, target, policy, timeout)
        try:
            key = client.get_remote_server_key()
        finally:
            client.close()
    except TransportError as error:
        return ScannedKey(settings.host, target.known_hosts_name, target.port, error=error.message)
    finally:
        if jump is not None:
            jump.close()
        with contextlib.suppress(OSError):
            stream.close()
    verdict = policy.verdict(target.known_hosts_name, target.port, key.get_name(), key.asbytes())
    return ScannedKey(settings.host, target.known_hosts_name, target.port, key.get_name(),
                      key.asbytes(), verdict.status, verdict.known_fingerprints)


def _bounded(settings: ConnectionSettings, timeout: float) -> ConnectionSettings:
    from dataclasses import replace

    return replace(settings, connect_timeout=min(settings.connect_timeout, timeout))


def scan_host_keys(targets: Sequence[ConnectionSettings], policy: HostKeyPolicy, *,
                   should_stop: Callable[[], bool] = lambda: False,
                   parallel: int = SCAN_PARALLEL,
                   timeout: float = SCAN_TIMEOUT) -> list[ScannedKey]:
    """Every target's key, in the targets' order; a stop request leaves the rest NOT_SCANNED."""

    def scan(settings: ConnectionSettings) -> ScannedKey:
        if should_stop():
            return ScannedKey(settings.host, port=settings.port or 22, error="cancelled")
        return scan_host_key(settings, policy, timeout)

    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(parallel, len(targets)),
                            thread_name_prefix="keyscan") as pool:
        return list(pool.map(scan, targets))


def remember_accepted(policy: HostKeyPolicy, scans: Sequence[ScannedKey]) -> None:
    """Save the keys of ``scans`` the user accepted, if still unknown (changed and revoked keys,
    and new key types of known hosts, are never saved here)."""
    for scan in scans:
        if scan.status == UNKNOWN and policy.verdict(
                scan.name, scan.port, scan.key_type, scan.blob).status == UNKNOWN:
            policy.remember(scan.name, scan.port, scan.key_type, scan.blob)


__all__ = ["CHANGED", "KNOWN", "NOT_SCANNED", "OTHER_TYPE", "REVOKED", "UNKNOWN", "ScannedKey",
           "remember_accepted", "scan_host_key", "scan_host_keys"]
