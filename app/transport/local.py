"""The local transport (host "local"): the same interface as SSH, on this machine.

Commands run with subprocess; sudo is used only when regwiz is not already root.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time

from app.transport.base import (
    ConnectionSecrets,
    ExecResult,
    ExecTransport,
    TransportError,
    as_text,
    display_command,
    sudo_problem,
)
from app.transport.sudo import SudoGate

# How long a long-running command (docker dial-stdio) may take to get past sudo.
STREAM_SUDO_SECONDS = 30.0


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

    def _exec(self, argv: list[str], stdin: bytes | None, timeout: float,
              gate: SudoGate | None = None) -> ExecResult:
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
        deadline = time.monotonic() + timeout
        try:
            early = _sudo_handshake(process, gate, deadline) if gate is not None else b""
            if gate is not None and not gate.started:
                stdin = b""  # sudo did not run the command: its input goes nowhere
            out, err = process.communicate(stdin or b"",
                                           timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired as error:
            _kill_group(process)
            raise TransportError(
                f"`{display_command(argv)}` on local did not finish within {timeout:g}s and "
                "was stopped",
                "this machine may be overloaded, or the step may need a longer timeout",
                kind="timeout",
            ) from error
        return ExecResult(process.returncode, out, as_text(early + err))

    def open_process(self, argv: list[str], *, sudo: bool = False) -> subprocess.Popen[bytes]:
        """Start a long-running command with piped stdin/stdout (for docker dial-stdio); with
        a sudo password, past sudo's handshake, so the pipes carry only the command's bytes."""
        full, gate = self.sudo_command(argv, sudo)
        process = subprocess.Popen(
            full, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if gate is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
        if gate is None:
            return process
        try:
            early = _sudo_handshake(process, gate, time.monotonic() + STREAM_SUDO_SECONDS)
        except subprocess.TimeoutExpired:
            early = b""
        if not gate.started:
            _kill_group(process)
            stderr = gate.clean(as_text(early))
            raise sudo_problem(self.name, stderr, used_password=True) or TransportError(
                f"sudo did not start `{display_command(argv)}` on local: {stderr.strip()}",
                kind="command",
            )
        threading.Thread(target=_discard, args=(process.stderr,), daemon=True).start()
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


def _sudo_handshake(process: subprocess.Popen[bytes], gate: SudoGate, deadline: float) -> bytes:
    """Show stderr to the gate and write its answers until sudo runs the command or gives up;
    return the stderr read. Raises TimeoutExpired at the deadline."""
    assert process.stdin is not None and process.stderr is not None
    seen = b""
    fd = process.stderr.fileno()
    while not gate.done:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(process.args, 0)
        readable, _, _ = select.select([fd], [], [], min(left, 0.2))
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:  # sudo ended without running the command
            break
        seen += chunk
        answer = gate.feed(chunk)
        if answer:
            with contextlib.suppress(OSError):
                process.stdin.write(answer)
                process.stdin.flush()
    return seen


def _discard(stream: object) -> None:
    """Drain a pipe nobody reads, so the process never blocks writing to it."""
    read = getattr(stream, "read", None)
    with contextlib.suppress(OSError, ValueError):
        while read is not None and read(65536):
            pass
