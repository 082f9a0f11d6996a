"""From plan settings and CLI flags to what the transport needs.

Deploy, onboarding, verify and status all connect the same way: the plan's registry or node
settings become a ``ConnectionSettings``, the plan-independent secrets a ``ConnectionSecrets``,
and the CLI flags / TUI callback a ``HostKeyPolicy``. Keeping that mapping here means every
command treats host keys and sudo identically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from app.paths import expand_user
from app.plan import Plan, RegistrySettings, ResolvedNode, Secrets
from app.transport.base import ConnectionSecrets, ConnectionSettings, Transport, TransportError
from app.transport.hostkeys import ConfirmCallback, HostKeyPolicy, OtherTypeConfirmCallback
from app.transport.keyscan import ScannedKey
from app.user_waits import UserWaits

#: Overrides ~/.ssh/known_hosts for every regwiz command (tests and CI use their own file).
KNOWN_HOSTS_ENV = "REGWIZ_KNOWN_HOSTS"


def _settings(where: RegistrySettings | ResolvedNode) -> ConnectionSettings:
    return ConnectionSettings(
        host=where.host,
        user=where.ssh_user,
        port=where.ssh_port,
        identity_file=str(expand_user(where.identity_file)) if where.identity_file else None,
        sudo=where.sudo,
    )


def registry_connection(plan: Plan) -> ConnectionSettings:
    """How to reach the registry host (``host = "local"`` means this machine, no SSH)."""
    return _settings(plan.registry)


def node_connection(node: ResolvedNode) -> ConnectionSettings:
    """How to reach one cluster node (defaults already applied by ``Plan.resolved_nodes``)."""
    return _settings(node)


def connection_secrets(secrets: Secrets, host: str | None = None,
                       sudo_password_env: str | None = None) -> ConnectionSecrets:
    """The subset of the operator's secrets a connection to ``host`` may use: its own sudo
    password when it has one, else the one of the variable its plan entry names
    (``sudo_password_env``), else the shared one."""
    sudo_password = secrets.sudo_password if host is None else \
        secrets.sudo_password_for(host, sudo_password_env)
    return ConnectionSecrets(
        password=secrets.ssh_password,
        key_passphrase=secrets.key_passphrase,
        sudo_password=sudo_password,
    )


def known_hosts_path(explicit: str | Path | None = None) -> Path | None:
    """``explicit``, else $REGWIZ_KNOWN_HOSTS, else None (the transport's ~/.ssh/known_hosts)."""
    chosen = explicit or os.environ.get(KNOWN_HOSTS_ENV)
    return expand_user(chosen) if chosen else None


def host_key_policy(
    accept_new: bool,
    confirm: ConfirmCallback | None = None,
    known_hosts: str | Path | None = None,
    confirm_other_type: OtherTypeConfirmCallback | None = None,
    waits: UserWaits | None = None,
) -> HostKeyPolicy:
    """The host-key rule for one run.

    Headless (no ``confirm``): unknown keys are refused unless ``accept_new``
    (``--accept-new-host-keys``). The TUI passes ``confirm(host, key_type, fingerprint)``
    and ``confirm_other_type`` (a key of a new type for a known host: only ever accepted
    through that warning). A changed key is refused whatever is passed here. ``waits``
    counts the time the questions wait for the user (jobs leave it out of a node's time).
    """
    return HostKeyPolicy(
        known_hosts=known_hosts_path(known_hosts), accept_new=accept_new, confirm=confirm,
        confirm_other_type=confirm_other_type, waits=waits or UserWaits(),
    )


def open_registry_transport(plan: Plan, secrets: Secrets, policy: HostKeyPolicy) -> Transport:
    """Connect to the registry host (host key checked by ``policy``)."""
    from app.transport.factory import open_transport

    target = registry_connection(plan)
    chosen = connection_secrets(secrets, target.host, plan.registry.sudo_password_env)
    return open_transport(target, chosen, policy)


def open_node_transport(node: ResolvedNode, secrets: Secrets, policy: HostKeyPolicy) -> Transport:
    from app.transport.factory import open_transport

    target = node_connection(node)
    chosen = connection_secrets(secrets, target.host, node.sudo_password_env)
    return open_transport(target, chosen, policy)


def scan_node_host_keys(nodes: Sequence[ResolvedNode], policy: HostKeyPolicy, *,
                        should_stop: Callable[[], bool] = lambda: False) -> list[ScannedKey]:
    """Each node's SSH host key and its verdict, read in parallel without logging in (so every
    unknown key can be decided at once before the nodes' jobs start)."""
    from app.transport.keyscan import scan_host_keys

    return scan_host_keys([node_connection(node) for node in nodes], policy,
                          should_stop=should_stop)


def rejected_host_key_error(host: str) -> TransportError:
    """What a node whose host key the user rejected fails with (it is not connected to)."""
    return TransportError(
        f"the SSH host key of {host} was rejected, so regwiz did not connect to it",
        "run the job again and accept the key once its fingerprint is checked on the host "
        "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub)",
        kind="host-key-rejected",
    )
