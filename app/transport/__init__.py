"""Transports run commands and write files on a host: over SSH (paramiko) or on this machine."""

from app.transport.base import CommandResult, Transport, TransportError

__all__ = ["CommandResult", "Transport", "TransportError"]
