"""What a probe found on a node: the raw facts, the OS family, and the facts adapters add.

Plain data and parsing only, so every runtime adapter can use it without importing the probe
(which itself asks the adapter registry what to look for).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

OS_DEBIAN = "debian"
OS_RHEL = "rhel"
OS_SUSE = "suse"
OS_UNKNOWN = "unknown"

OS_RELEASE_MARKER = "---os-release---"


# --------------------------------------------------------------------------- OS family


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of /etc/os-release, quotes removed; malformed lines are ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key] = parts[0] if parts else ""
    return values


def os_family(os_release_text: str) -> str:
    """"debian", "rhel", "suse" or "unknown" from the ID and ID_LIKE fields."""
    values = parse_os_release(os_release_text)
    ids = [values.get("ID", "").lower(), *values.get("ID_LIKE", "").lower().split()]
    for name in ids:
        if name in ("debian", "ubuntu", "raspbian", "linuxmint"):
            return OS_DEBIAN
        if name in ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn"):
            return OS_RHEL
        if name in ("suse", "opensuse", "sles", "sle-micro") or name.startswith("opensuse"):
            return OS_SUSE
    return OS_UNKNOWN


# --------------------------------------------------------------------------- probe output


@dataclass
class ProbeResult:
    """Raw facts from the probe script; ``values`` keeps adapter-specific KEY=VALUE lines."""

    binaries: dict[str, str] = field(default_factory=dict)
    sockets: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    active_services: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)
    os_release: str = ""


def parse_probe_output(output: str) -> ProbeResult:
    head, _, os_release = output.partition(OS_RELEASE_MARKER + "\n")
    result = ProbeResult(os_release=os_release)
    for line in head.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key.startswith("bin."):
            result.binaries[key[4:]] = value
        elif key == "socket":
            result.sockets.add(value)
        elif key == "path":
            result.paths.add(value)
        elif key == "active":
            result.active_services.add(value)
        else:
            result.values[key] = value
    return result


# --------------------------------------------------------------------------- node facts


@dataclass
class NodeFacts:
    """What onboarding, status and verify need to know about a node."""

    os_family: str
    os_name: str
    probe: ProbeResult
    runtimes: list[str] = field(default_factory=list)  # configured: detected, or the plan's
    detected: list[str] = field(default_factory=list)  # what detection found
    extras: dict[str, Any] = field(default_factory=dict)  # per-adapter facts (see gather())


def facts_from_probe(probe: ProbeResult) -> NodeFacts:
    release = parse_os_release(probe.os_release)
    return NodeFacts(
        os_family=os_family(probe.os_release),
        os_name=release.get("PRETTY_NAME", release.get("ID", "unknown")),
        probe=probe,
    )


def version_pair(output: str) -> tuple[int, int] | None:
    """(major, minor) from a ``--version`` output, e.g. "... 1.6.20~ds1 ..." or "v2.0.1"."""
    for word in output.split():
        match = re.match(r"v?(\d+)\.(\d+)\.\d+", word)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None
