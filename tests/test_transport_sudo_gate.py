"""SudoGate: the password only after sudo's prompt, the input only once the command runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.transport.base import ConnectionSecrets, TransportError
from app.transport.local import LocalTransport
from app.transport.sudo import SudoGate


def test_password_only_after_the_prompt_and_once() -> None:
    gate = SudoGate("pw")
    assert gate.argv(["true"])[:3] == ["env", "LC_ALL=C", "sudo"]
    assert gate.prompt in gate.argv(["true"]) and "%" not in gate.prompt
    assert gate.feed(b"sudo: some lecture\n") == b""
    # a prompt split across two reads is still seen
    half = len(gate.prompt) // 2
    assert gate.feed(gate.prompt[:half].encode()) == b""
    assert gate.feed(gate.prompt[half:].encode()) == b"pw\n"
    assert not gate.done
    assert gate.feed(f"Sorry, try again.\n{gate.prompt}".encode()) == b""
    assert gate.gave_up and gate.done and not gate.started


def test_ready_marker_starts_the_command_without_any_password() -> None:
    gate = SudoGate("pw")
    assert gate.feed(f"{gate.ready}\n".encode()) == b""  # NOPASSWD: sudo never asked
    assert gate.started and gate.done
    assert gate.clean(f"{gate.ready}\nreal error\n") == "real error\n"
    assert gate.clean(f"{gate.prompt}\nx") == "\nx"


def test_no_password_means_no_answer() -> None:
    gate = SudoGate(None)
    assert gate.feed(gate.prompt.encode()) == b""
    assert gate.gave_up


def test_markers_differ_per_call() -> None:
    assert SudoGate("a").prompt != SudoGate("a").prompt


# ----------------------------------------------------------------------------- local transport

FAKE_SUDO = """#!/bin/sh
# Behaves like `sudo -k -S -p PROMPT -- cmd`: prompt on stderr, one password line from stdin.
while [ $# -gt 0 ]; do case $1 in -p) prompt=$2; shift 2;; --) shift; break;; *) shift;; esac
done
printf '%s' "$prompt" >&2
read -r pw
if [ "$pw" != right ]; then
  echo "Sorry, try again." >&2; printf '%s' "$prompt" >&2
  read -r pw || echo "sudo: 1 incorrect password attempt" >&2
  exit 1
fi
exec "$@"
"""


def _local_with_fake_sudo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          password: str) -> LocalTransport:
    (tmp_path / "sudo").write_text(FAKE_SUDO)
    (tmp_path / "sudo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    transport = LocalTransport(ConnectionSecrets(sudo_password=password))
    transport._sudo_mode = "password"  # as detected for a user whose sudo needs a password
    return transport


def test_local_password_sudo_feeds_input_only_after_the_handshake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _local_with_fake_sudo(tmp_path, monkeypatch, "right")
    done = local.run(["cat"], sudo=True, stdin=b"the input\n")
    assert done.stdout == "the input\n"  # no password line in the command's input
    assert "regwiz-" not in done.stderr
    process = local.open_process(["cat"], sudo=True)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"stream\n")
    process.stdin.close()
    assert process.stdout.read() == b"stream\n"
    process.wait(timeout=10)


def test_local_wrong_sudo_password_is_reported_as_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _local_with_fake_sudo(tmp_path, monkeypatch, "wrong")
    with pytest.raises(TransportError) as caught:
        local.run(["true"], sudo=True)
    assert caught.value.kind == "sudo-password-wrong"
    with pytest.raises(TransportError) as streamed:
        local.open_process(["cat"], sudo=True)
    assert streamed.value.kind == "sudo-password-wrong"
