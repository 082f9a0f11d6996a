"""The local transport (host "local"): the same interface as SSH, on this machine.

Commands run with subprocess; sudo is used only when regwiz is not already root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from app.transport.base import (
    ConnectionSecrets,
    ExecResult,
    ExecTransport,
    TransportError,
    as_text,
    display_command,
)


class LocalTransport(ExecTransport):
    def __init__(
        self, secrets: ConnectionSecrets | None = None, *, allow_sudo: bool = True
    ) -> None:
        super().__init__()
        self.name = "local"
        self.allow_sudo = allow_sudo
        self._secrets = secrets or ConnectionSecrets()

    @property
    def sudo_password(self) -> str | None:
        return self._secrets.sudo_password

    def uid(self) -> int:
        return os.geteuid()

    def _exec(self, argv: list[str], stdin: bytes | None, timeout: float) -> ExecResult:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # so a timeout can kill the whole process group
            )
        except FileNotFoundError:
            return ExecResult(127, b"", f"{argv[0]}: command not found")
        except PermissionError as error:
            return ExecResult(126, b"", f"{argv[0]}: {error.strerror}")
        try:
            out, err = process.communicate(stdin or b"", timeout=timeout)
        except subprocess.TimeoutExpired as error:
            _kill_group(process)
            raise TransportError(
                f"`{display_command(argv)}` on local did not finish within {timeout:g}s and "
                "was stopped",
                "this machine may be overloaded, or the step may need a longer timeout",
                kind="timeout",
            ) from error
        return ExecResult(process.returncode, out, as_text(err))

    def open_process(self, argv: list[str], *, sudo: bool = False) -> subprocess.Popen[bytes]:
        """Start a long-running command with piped stdin/stdout (for docker dial-stdio)."""
        prefix, preamble = self.sudo_prefix(sudo)
        process = subprocess.Popen(
            prefix + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        if preamble and process.stdin is not None:
            process.stdin.write(preamble)
            process.stdin.flush()
        return process

    def close(self) -> None:
        return None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    # A grandchild outside our reach may hold the pipes; don't wait for it forever.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=5)
