"""How command failures and sudo refusals are classified (pure logic)."""

from __future__ import annotations

from app.transport.base import (
    CommandResult,
    command_failure,
    file_is_current,
    owner_spec,
    sudo_problem,
)


def result(status: int, stderr: str, argv: list[str] | None = None) -> CommandResult:
    return CommandResult(argv or ["cp", "a", "b"], status, "", stderr)


def test_disk_full_permission_missing_and_plain_failures() -> None:
    full = command_failure("h1", result(1, "cp: error writing 'b': No space left on device"))
    assert full.kind == "disk-full" and "h1" in full.message
    denied = command_failure("h1", result(1, "cp: cannot create 'b': Permission denied"))
    assert denied.kind == "permission"
    missing = command_failure("h1", result(127, "sh: 1: foo: not found", ["foo"]))
    assert missing.kind == "command" and "not found" in missing.message
    plain = command_failure("h1", result(3, "one\ntwo\nthree\nfour\nfive\nsix\nseven\n"))
    assert plain.kind == "command"
    assert "`cp a b` failed on h1 (exit 3)" in plain.message
    assert "seven" in plain.message and "one" not in plain.message  # only the last lines


def test_action_replaces_internal_scripts_in_messages() -> None:
    error = command_failure("h", result(1, "Permission denied", ["sh", "-c", "long script"]),
                            "writing /etc/x")
    assert error.message.startswith("permission denied on h writing /etc/x")
    assert "long script" not in error.message


def test_sudo_refusals() -> None:
    needs = sudo_problem("n1", "sudo: a password is required\n", used_password=False)
    assert needs is not None and needs.category == "sudo-password"
    assert needs.kind == "sudo-password-missing"
    assert "needs a password" in needs.message
    wrong = sudo_problem("n1", "sudo: 1 incorrect password attempt\n", used_password=True)
    assert wrong is not None and "wrong sudo password" in wrong.message
    assert wrong.category == "sudo-password" and wrong.kind == "sudo-password-wrong"
    barred = sudo_problem("n1", "bob is not in the sudoers file.", used_password=False)
    assert barred is not None and barred.kind == "permission"
    assert sudo_problem("n1", "ls: cannot access", used_password=True) is None


def test_file_state_comparison() -> None:
    digest = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # "hello"
    state = f"root root 0 0 600\n{digest}  /etc/x\n"
    assert file_is_current(state, b"hello", 0o600, "root", "root")
    assert file_is_current(state, b"hello", 0o600, "0", "")  # uid, group not enforced
    # issue 12: an existing file keeps its owner and its mode, only ever narrowed
    assert file_is_current(state, b"hello", 0o644, "root", "root")
    assert not file_is_current(state, b"other", 0o600, "root", "root")
    assert file_is_current(state, b"hello", 0o600, "nobody", "root")
    loose = f"root root 0 0 666\n{digest}  /etc/x\n"
    assert not file_is_current(loose, b"hello", 0o644, "root", "root")
    assert file_is_current(f"root root 0 0 640\n{digest}  /etc/x\n", b"hello", 0o777, "", "")
    assert not file_is_current("absent\n", b"hello", 0o600, "root", "root")


def test_owner_spec() -> None:
    assert owner_spec("root", "root") == "root:root"
    assert owner_spec("", "docker") == ":docker"
    assert owner_spec("me", "") == "me"
    assert owner_spec("", "") == ""


def test_closing_a_docker_channel_after_the_ssh_link_died_is_quiet() -> None:
    """paramiko raises EOFError from Channel.close() once sshd is gone (seen in the fault
    suite as an unhandled exception in the dial-stdio relay thread)."""
    from app.dockerapi import ChannelStream

    class DeadLinkChannel:
        def close(self) -> None:
            raise EOFError

    ChannelStream(DeadLinkChannel()).close()


def test_a_link_dying_mid_command_is_unreachable_not_an_eoferror() -> None:
    """sshd killed mid-transfer: the command's channel fails, and paramiko's close() of that
    channel raises EOFError too; the error reported must stay the transport's own (kind
    "unreachable", naming the host), not the EOFError from the cleanup (seen in the fault suite
    as a node failed with 'internal error: EOFError')."""
    import pytest

    from app.transport.base import ConnectionSecrets, ConnectionSettings, TransportError
    from app.transport.ssh import SSHTransport

    class DyingChannel:
        def exec_command(self, command: str) -> None:
            raise EOFError

        def close(self) -> None:
            raise EOFError

    class Link:
        def is_active(self) -> bool:
            return True

        def open_session(self, timeout: float) -> DyingChannel:
            return DyingChannel()

    transport = SSHTransport(Link(), None, ConnectionSettings(host="198.18.0.7"),  # type: ignore[arg-type]
                             ConnectionSecrets())
    with pytest.raises(TransportError) as raised:
        transport.run(["true"], timeout=5)
    assert raised.value.kind == "unreachable"
    assert "198.18.0.7" in raised.value.message
