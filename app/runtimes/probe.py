"""What a node runs, found with one read-only shell command plus the reads adapters ask for.

The probe script is put together from what each registered adapter wants looked at (binaries,
sockets, paths, services, extra ``KEY=VALUE`` lines), so a new runtime adds its own checks. The
OS family comes from /etc/os-release, printed after a marker line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.runtimes.base import RuntimeAdapter
    from app.transport.base import Transport

OS_DEBIAN = "debian"
OS_RHEL = "rhel"
OS_SUSE = "suse"
OS_UNKNOWN = "unknown"

OS_RELEASE_MARKER = "---os-release---"
# Looked for on every node whatever the adapters want (kept as a fact for diagnostics).
GENERIC_BINARIES = ("kubectl",)


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


# --------------------------------------------------------------------------- the probe script


def _words(groups: Iterable[Iterable[str]]) -> str:
    return " ".join(dict.fromkeys(word for group in groups for word in group))


def probe_script(adapters: Sequence[RuntimeAdapter]) -> str:
    """The read-only script: KEY=VALUE lines, then the os-release text after a marker line."""
    binaries = _words([*(a.probe_binaries for a in adapters), GENERIC_BINARIES])
    sockets = _words(a.probe_sockets for a in adapters)
    paths = _words(a.probe_paths for a in adapters)
    services = _words(a.probe_services for a in adapters)
    extra = "".join(a.probe_lines for a in adapters)
    return (
        '\nPATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/usr/bin:/bin"\n'
        f"for b in {binaries}; do\n"
        '  p=$(command -v "$b" 2>/dev/null) && echo "bin.$b=$p"\n'
        "done\n"
        f"for s in {sockets}; do\n"
        '  [ -S "$s" ] && echo "socket=$s"\n'
        "done\n"
        f"for d in {paths}; do\n"
        '  [ -e "$d" ] && echo "path=$d"\n'
        "done\n"
        f"{extra}"
        f"for svc in {services}; do\n"
        '  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" '
        "2>/dev/null; then\n"
        '    echo "active=$svc"\n'
        "  fi\n"
        "done\n"
        f'echo "{OS_RELEASE_MARKER}"\n'
        "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null\n"
        "true\n"
    )


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


def detect_runtimes(facts: NodeFacts, adapters: Sequence[RuntimeAdapter]) -> list[str]:
    """The runtimes this node really uses, in the adapters' order."""
    return [name for adapter in adapters for name in adapter.detect(facts)]


def choose_runtimes(wanted: str, detected: list[str]) -> list[str]:
    """The plan's ``runtime``: "auto" takes what was detected, "none" nothing, else that one."""
    if wanted == "auto":
        return list(detected)
    return [] if wanted == "none" else [wanted]


def probe_node(transport: Transport, *, sudo: bool, runtime: str,
               timeout: float = 30.0) -> NodeFacts:
    """Gather facts from a node: one read-only command, then whatever each adapter reads."""
    from app.runtimes.registry import adapters

    installed = adapters()
    output = transport.run(["sh", "-c", probe_script(installed)], timeout=timeout).stdout
    facts = facts_from_probe(parse_probe_output(output))
    for adapter in installed:
        adapter.gather(transport, facts, sudo=sudo, wanted=runtime, timeout=timeout)
    facts.detected = detect_runtimes(facts, installed)
    facts.runtimes = choose_runtimes(runtime, facts.detected)
    return facts


def version_pair(output: str) -> tuple[int, int] | None:
    """(major, minor) from a ``--version`` output, e.g. "... 1.6.20~ds1 ..." or "v2.0.1"."""
    for word in output.split():
        match = re.match(r"v?(\d+)\.(\d+)\.\d+", word)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None
