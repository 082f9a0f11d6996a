"""Open the right transport for a target: "local" runs here, anything else goes over SSH."""

from __future__ import annotations

from app.transport.base import ConnectionSecrets, ConnectionSettings, Transport
from app.transport.hostkeys import HostKeyPolicy
from app.transport.local import LocalTransport

__all__ = ["ConnectionSecrets", "ConnectionSettings", "HostKeyPolicy", "open_transport"]


def open_transport(
    target: ConnectionSettings,
    secrets: ConnectionSecrets | None = None,
    host_key_policy: HostKeyPolicy | None = None,
) -> Transport:
    """Connect to ``target``. SSH host keys are checked by ``host_key_policy`` (default: the
    user's known_hosts, unknown keys refused). Raises TransportError with a kind and hint."""
    secrets = secrets or ConnectionSecrets()
    if target.is_local:
        return LocalTransport(secrets, allow_sudo=target.sudo)
    from app.transport.ssh import connect

    return connect(target, secrets, host_key_policy or HostKeyPolicy())
