"""Reading the registry host's own tools: who listens on a port, how much disk is free, and
which directories are too important to delete. Pure parsers, tolerant of odd output."""

from __future__ import annotations

import re
import string

from app.validate import system_directory


def parse_listening_ports(ss_output: str) -> dict[int, str]:
    """``{port: description}`` from ``ss -ltnH`` (with or without ``-p``) output."""
    found: dict[int, str] = {}
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local = fields[3]
        port_text = local.rsplit(":", 1)[-1]
        if port_text.isdigit():
            process = " ".join(fields[5:]) if len(fields) > 5 else ""
            found.setdefault(int(port_text), f"{local} {process}".strip())
    return found


def parse_proc_net_tcp(text: str) -> set[int]:
    """Listening ports from /proc/net/tcp{,6} (state 0A), for hosts without ``ss``."""
    ports = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        port_hex = fields[1].rsplit(":", 1)[-1] if len(fields) > 3 else ""
        if fields[3:4] == ["0A"] and port_hex and all(c in string.hexdigits for c in port_hex):
            ports.add(int(port_hex, 16))
    return ports


def parse_df_available_kib(df_output: str) -> int | None:
    lines = [line for line in df_output.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    return int(fields[3]) if len(fields) >= 4 and fields[3].isdigit() else None


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
