"""Reading the registry host's own tools: who listens on a port, how much disk is free, and
which directories are too important to delete. Pure parsers, tolerant of odd output."""

from __future__ import annotations

import posixpath
import string


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
    """Refuse to ``rm -rf`` a path that is not clearly a dedicated data directory."""
    normalized = posixpath.normpath(path)
    if not normalized.startswith("/") or ".." in path.split("/"):
        return "it is not an absolute path without '..'"
    top_level = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt",
                 "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
                 "/var/lib", "/var/lib/docker", "/mnt", "/media"}
    if normalized in top_level:
        return "it is a system directory"
    return None
