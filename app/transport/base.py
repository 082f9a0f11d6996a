"""The interface every transport implements.

Commands are argv lists, never shell strings: an implementation that needs a shell quotes
every argument with ``shlex.quote``. Every call has a timeout. Secrets (sudo password, file
contents marked secret) never appear in errors or logs.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from app.errors import RegwizError

DEFAULT_COMMAND_TIMEOUT = 60.0


class TransportError(RegwizError):
    """A host could not be reached, authenticated, or a command/transfer failed or timed out.

    ``kind`` is a short machine-readable cause used in summaries: "unreachable", "auth",
    "host-key-unknown", "host-key-changed", "sudo-password", "permission", "disk-full",
    "timeout", "command", "io".
    """

    def __init__(self, message: str, hint: str | None = None, *, kind: str = "io") -> None:
        super().__init__(message, hint)
        self.kind = kind


@dataclass
class CommandResult:
    argv: list[str]
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class Transport(abc.ABC):
    """Runs commands and manages files on one host."""

    #: a short name for the host used in every message (e.g. "198.18.0.3" or "local")
    name: str

    @abc.abstractmethod
    def run(
        self,
        argv: list[str],
        *,
        sudo: bool = False,
        stdin: bytes | None = None,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        check: bool = True,
    ) -> CommandResult:
        """Run ``argv`` (as root when ``sudo``). Raises TransportError when ``check`` and it fails."""

    @abc.abstractmethod
    def read_file(self, path: str, *, sudo: bool = False, timeout: float = 30.0) -> bytes | None:
        """Return the file's bytes, or None when it does not exist."""

    @abc.abstractmethod
    def write_file(
        self,
        path: str,
        content: bytes,
        *,
        mode: int = 0o644,
        owner: str = "root",
        group: str = "root",
        sudo: bool = False,
        timeout: float = 60.0,
    ) -> bool:
        """Write atomically (temp file in the same dir, install owner/mode, rename).

        Returns False and touches nothing when the file already has this content, owner and
        mode; True when it was written. Parent directories are created (0755).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call twice."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
