"""SudoGate: the password only after sudo's prompt, the input only once the command runs."""

from __future__ import annotations

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
