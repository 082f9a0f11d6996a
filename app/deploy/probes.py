"""Reading the registry host's own tools: what holds a port, how much disk is free, and
which directories are too important to delete. Pure parsers, tolerant of odd output."""

from __future__ import annotations

import re
import string

from app.validate import system_directory


def _is_number(text: str) -> bool:
    """ASCII digits only (str.isdigit also takes "²", which int() refuses)."""
    return text.isascii() and text.isdigit()


# Sockets that make Docker's bind fail. Docker binds with SO_REUSEADDR, so TIME-WAIT does
# not; neither do connections accepted by a listener that set it (they inherit it). What is
# left is a listener, or a live outgoing connection the kernel gave this port as its
# ephemeral source port (without SO_REUSEADDR). The closing states are left out: they end
# within a minute, and one left by a removed container's accepted connection does not block.
_HOLDING_STATES = {"ESTAB": "01", "SYN-SENT": "02", "CLOSE-WAIT": "08"}
_LISTEN = "0A"


def parse_port_holders(ss_output: str) -> dict[int, str]:
    """``{port: who holds it}`` from ``ss -tanH`` (with or without ``-p``) output: listeners
    first, then live connections bound to that local port (only checked when the port is not
    ours, so such a connection is an outgoing one)."""
    listeners: dict[int, str] = {}
    others: dict[int, str] = {}
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] not in ("LISTEN", *_HOLDING_STATES):
            continue
        local, peer = fields[3], fields[4]
        port_text = local.rsplit(":", 1)[-1]
        if not _is_number(port_text):
            continue
        process = " ".join(fields[5:])
        if fields[0] == "LISTEN":
            listeners.setdefault(int(port_text), f"listening on {local} {process}".strip())
        else:
            others.setdefault(int(port_text), f"an outgoing connection ({fields[0]}) from "
                                              f"{local} to {peer} {process}".strip())
    return {**others, **listeners}


def parse_proc_net_tcp(text: str) -> dict[int, str]:
    """``{port: who holds it}`` from /proc/net/tcp{,6}, for hosts without ``ss``: the same
    sockets as parse_port_holders."""
    listeners: dict[int, str] = {}
    others: dict[int, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        port_hex = fields[1].rsplit(":", 1)[-1] if len(fields) > 3 else ""
        if not port_hex or not all(c in string.hexdigits for c in port_hex):
            continue
        port = int(port_hex, 16)
        if fields[3] == _LISTEN:
            listeners[port] = f"a listening socket on :{port}"
        elif fields[3] in _HOLDING_STATES.values():
            others.setdefault(port, f"an outgoing connection from local port {port}")
    return {**others, **listeners}


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``(first, last)`` from /proc/sys/net/ipv4/ip_local_port_range ("32768\t60999")."""
    fields = text.split()
    if len(fields) != 2 or not all(_is_number(field) for field in fields):
        return None
    first, last = int(fields[0]), int(fields[1])
    return (first, last) if first <= last else None


def parse_reserved_ports(text: str) -> set[int] | None:
    """The ports of /proc/sys/net/ipv4/ip_local_reserved_ports ("8443,30000-30010"); None
    when it cannot be read. Ranges are capped at 65535 ports."""
    ports: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        if not _is_number(low) or (high and not _is_number(high)):
            return None
        first, last = int(low), int(high or low)
        ports.update(range(first, min(last, 65535) + 1))
    return ports


def parse_df_available_kib(df_output: str) -> int | None:
    lines = [line for line in df_output.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    return int(fields[3]) if len(fields) >= 4 and _is_number(fields[3]) else None


def unsafe_purge_reason(path: str) -> str | None:
    """Why ``path`` may never be deleted whatever it holds (a system location, not absolute)."""
    if not path.startswith("/") or ".." in path.split("/"):
        return "it is not an absolute path without '..'"
    what = system_directory(path)
    return f"it is {what}" if what else None


# A registry data directory holds Distribution's tree, deploy's marker and the pull-through
# caches (mirrors/SLUG/, each a proxy registry's own root: its tree and its scheduler state).
DATA_MARKER = ".regwiz-registry-data"
CACHES_DIR = "mirrors"
_REGISTRY_TREE = {"": {"docker/", DATA_MARKER, f"{CACHES_DIR}/"}, "docker": {"registry/"},
                  "docker/registry": {"v2/"}}
_CACHE_TREE = {"": {"docker/", "scheduler-state.json"}, "docker": {"registry/"},
               "docker/registry": {"v2/"}}
_CACHE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*/")  # MirrorSettings.slug, a directory
# One command: "missing" (exit 3), "symlink" (exit 4), else `ls -A -p -1` of the top level,
# then of each directory of the trees above, each after a "//NAME" line (no file name holds a
# "/"; ls -p marks directories only, so a symbolic link is never taken for one).
LIST_DATA_DIR = r"""d=$1
[ -e "$d" ] || [ -L "$d" ] || exit 3
[ -L "$d" ] && exit 4
cd -- "$d" || exit 5
ls -A -p -1
for sub in docker docker/registry mirrors mirrors/* mirrors/*/docker mirrors/*/docker/registry
do
  if [ -d "$sub" ] && [ ! -L "$sub" ]; then echo "//$sub"; ls -A -p -1 -- "$sub"; fi
done"""


def foreign_entries(listing: str) -> list[str]:
    """What a ``LIST_DATA_DIR`` listing shows besides a registry's own tree and its caches'
    (empty: it is a registry data directory, or empty). A name seen twice (a crafted name with
    a newline) counts as foreign."""
    section, seen, foreign = "", set(), []
    for line in listing.splitlines():
        if line.startswith("//"):
            section = line[2:]
            continue
        entry = f"{section}/{line}" if section else line
        if not _expected(section, line) or entry in seen:
            foreign.append(entry.rstrip("/") or repr(line))
        seen.add(entry)
    return foreign


def _expected(section: str, name: str) -> bool:
    if section == CACHES_DIR:
        return _CACHE_NAME.fullmatch(name) is not None
    if section.startswith(f"{CACHES_DIR}/"):
        _, _, inside = section[len(CACHES_DIR) + 1:].partition("/")
        return name in _CACHE_TREE.get(inside, set())
    return name in _REGISTRY_TREE.get(section, set())
