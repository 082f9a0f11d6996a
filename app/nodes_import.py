"""Adding nodes in bulk: from a file of ``[user@]host[:port]`` lines, or from a cluster's own list.

``kubectl get nodes -o json`` runs on a node that has kubectl (a control-plane node, say) and
its InternalIP addresses become nodes. Everything here validates its input and reports problems
as ``UsageError`` with one line per problem, naming the line or field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import validate
from app.errors import RegwizError, UsageError
from app.paths import expand_user
from app.plan import NodeSettings, Plan, ResolvedNode, Secrets
from app.transport.base import Transport

if TYPE_CHECKING:
    from app.transport.hostkeys import HostKeyPolicy

MAX_NODES_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class NodeEntry:
    """One node to add; None fields fall back to the plan's node defaults."""

    host: str
    user: str | None = None
    port: int | None = None

    def settings(self) -> NodeSettings:
        return NodeSettings(host=self.host, ssh_user=self.user, ssh_port=self.port)


def parse_node_line(text: str) -> NodeEntry:
    """``[user@]host[:port]``; IPv6 as ``[addr]`` or ``[addr]:port``. Raises ValueError."""
    user: str | None = None
    if "@" in text:
        user, _, text = text.rpartition("@")
        if (problem := validate.check_user(user)) is not None:
            raise ValueError(f"user {user!r}: {problem}")
    host, port_text = _split_host_port(text)
    if (problem := validate.check_host(host)) is not None:
        raise ValueError(f"host {host!r}: {problem}")
    if host == "local":
        raise ValueError('"local" is not a node: give the node\'s address or name')
    port: int | None = None
    if port_text is not None:
        if (problem := validate.check_port(port_text)) is not None:
            raise ValueError(f"port: {problem}")
        port = int(port_text)
    return NodeEntry(host, user, port)


def _split_host_port(text: str) -> tuple[str, str | None]:
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: missing ']' after an IPv6 address")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':PORT' after ']'")
        return address, (rest[1:] if rest else None)
    if text.count(":") > 1:  # a bare IPv6 address, no port
        return text, None
    host, colon, port = text.partition(":")
    return host, (port if colon else None)


def parse_nodes_text(text: str, source: str = "nodes file") -> list[NodeEntry]:
    """One node per line; blank lines and ``#`` comments ignored; duplicates dropped."""
    entries: list[NodeEntry] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            entry = parse_node_line(line)
        except ValueError as error:
            problems.append(f"{source} line {number}: {error}")
            continue
        if entry.host not in seen:
            seen.add(entry.host)
            entries.append(entry)
    if problems:
        raise UsageError("\n".join(problems), "one node per line: [user@]host[:port]")
    return entries


def read_nodes_file(path: str | Path) -> list[NodeEntry]:
    path = expand_user(path)
    try:
        if path.stat().st_size > MAX_NODES_FILE_BYTES:
            raise UsageError(f"{path} is larger than 1 MB: not a nodes file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"nodes file {path} does not exist") from None
    except UnicodeDecodeError:
        raise UsageError(f"nodes file {path} is not UTF-8 text") from None
    except OSError as error:
        raise UsageError(f"cannot read nodes file {path}: {error.strerror}") from None
    return parse_nodes_text(text, source=str(path))


def internal_ips_from_kubectl_json(text: str) -> list[str]:
    """The InternalIP of every node in ``kubectl get nodes -o json`` output, in order."""
    try:
        data: Any = json.loads(text)
    except ValueError as error:
        raise RegwizError(f"kubectl did not print JSON ({error})",
                          "check that `kubectl get nodes -o json` works on that host") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise RegwizError("kubectl's output has no node list (items)",
                          "check that `kubectl get nodes -o json` works on that host")
    addresses: list[str] = []
    for item in items:
        ip = _internal_ip(item)
        if ip is not None and ip not in addresses:
            addresses.append(ip)
    return addresses


def _internal_ip(item: Any) -> str | None:
    status = item.get("status") if isinstance(item, dict) else None
    entries = status.get("addresses") if isinstance(status, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("type") == "InternalIP":
            address = entry.get("address")
            if isinstance(address, str) and validate.check_host(address) is None:
                return address
    return None


# k3s and RKE2 ship kubectl with a root-only kubeconfig; try the usual places in order.
KUBECTL_SCRIPT = r"""
PATH="$PATH:/usr/local/bin:/usr/local/sbin:/var/lib/rancher/rke2/bin"
if [ -z "${KUBECONFIG:-}" ]; then
  for f in /etc/rancher/k3s/k3s.yaml /etc/rancher/rke2/rke2.yaml /etc/kubernetes/admin.conf; do
    if [ -r "$f" ] && [ ! -r "$HOME/.kube/config" ]; then export KUBECONFIG="$f"; break; fi
  done
fi
exec kubectl get nodes -o json
"""


def nodes_from_kubectl(transport: Transport, *, sudo: bool = False,
                       timeout: float = 60.0) -> list[str]:
    """Run kubectl on a host that has it and return its nodes' InternalIPs."""
    result = transport.run(["sh", "-c", KUBECTL_SCRIPT], sudo=sudo, timeout=timeout)
    return internal_ips_from_kubectl_json(result.stdout)


def kubectl_host(plan: Plan, entry: NodeEntry) -> ResolvedNode:
    """The host kubectl runs on, reached like a node: its own user and port, else the plan's
    node defaults. Nothing is installed there, so it gets no runtime and no trust store."""
    defaults = plan.node_defaults
    return ResolvedNode(
        host=entry.host, ssh_user=entry.user or defaults.ssh_user,
        ssh_port=entry.port or defaults.ssh_port, sudo=defaults.sudo, runtime="none",
        os_trust_store=False, identity_file=defaults.identity_file,
    )


def nodes_via_kubectl(plan: Plan, entry: NodeEntry, secrets: Secrets,
                      policy: HostKeyPolicy) -> list[str]:
    """Connect to ``entry`` and return the InternalIPs its ``kubectl get nodes`` lists (the one
    implementation of the kubectl import, for the CLI and the wizard)."""
    from app.connections import open_node_transport

    node = kubectl_host(plan, entry)
    with open_node_transport(node, secrets, policy) as transport:
        return nodes_from_kubectl(transport, sudo=node.sudo)


def add_nodes(plan: Plan, entries: list[NodeEntry]) -> list[str]:
    """Append nodes the plan does not list yet; returns the hosts that were added."""
    known = {node.host for node in plan.nodes}
    added = [entry for entry in entries if entry.host not in known]
    plan.nodes.extend(entry.settings() for entry in added)
    return [entry.host for entry in added]
