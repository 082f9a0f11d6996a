"""What a node runs, found with one read-only shell command plus the reads adapters ask for.

The probe script is put together from what each registered adapter wants looked at (binaries,
sockets, paths, services, extra ``KEY=VALUE`` lines), so a new runtime adds its own checks. The
OS family comes from /etc/os-release, printed after a marker line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.transport.base import Transport

from app.runtimes.base import RuntimeAdapter
from app.runtimes.facts import (  # noqa: F401 (re-exported: callers read facts from the probe)
    OS_DEBIAN,
    OS_RELEASE_MARKER,
    OS_RHEL,
    OS_SUSE,
    OS_UNKNOWN,
    NodeFacts,
    ProbeResult,
    facts_from_probe,
    os_family,
    parse_os_release,
    parse_probe_output,
    version_pair,
)
from app.runtimes.registry import adapters
from app.runtimes.restarts import PROBE_LINES as OWED_RESTART_LINES

# Looked for on every node whatever the adapters want (kept as a fact for diagnostics).
GENERIC_BINARIES = ("kubectl",)


# --------------------------------------------------------------------------- OS family


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
        f"{OWED_RESTART_LINES}"
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


# --------------------------------------------------------------------------- node facts


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
    installed = adapters()
    output = transport.run(["sh", "-c", probe_script(installed)], timeout=timeout).stdout
    facts = facts_from_probe(parse_probe_output(output))
    for adapter in installed:
        adapter.gather(transport, facts, sudo=sudo, wanted=runtime, timeout=timeout)
    facts.detected = detect_runtimes(facts, installed)
    facts.runtimes = choose_runtimes(runtime, facts.detected)
    return facts


