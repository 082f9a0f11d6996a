"""Error kinds are data on the exception: decisions (prompts, hints, summaries) read the kind,
never the message's wording."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from app.commands.common import password_may_help
from app.errors import kind_category
from app.transport.base import TransportError, sudo_problem
from app.transport.ssh import load_identity

ROOT = Path(__file__).resolve().parent.parent


def _key_file(tmp_path: Path, encryption: serialization.KeySerializationEncryption) -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "id_test"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH, encryption))
    return str(path)


def test_sudo_refusals_tell_missing_from_wrong_by_kind() -> None:
    missing = sudo_problem("n1", "sudo: a password is required\n", used_password=False)
    wrong = sudo_problem("n1", "sudo: 1 incorrect password attempt\n", used_password=True)
    assert missing is not None and missing.kind == "sudo-password-missing"
    assert wrong is not None and wrong.kind == "sudo-password-wrong"
    assert missing.category == wrong.category == "sudo-password"


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.OpenSSH,
                                 serialization.PrivateFormat.TraditionalOpenSSL])
def test_encrypted_key_without_passphrase_is_its_own_kind(
    tmp_path: Path, fmt: serialization.PrivateFormat
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())  # a type paramiko reads in both formats
    path = tmp_path / "id_locked"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt,
                                       serialization.BestAvailableEncryption(b"pp")))
    with pytest.raises(TransportError) as locked:
        load_identity(str(path), None)
    assert locked.value.kind == "key-passphrase-needed" and locked.value.category == "auth"
    with pytest.raises(TransportError) as wrong:
        load_identity(str(path), "not it")
    assert wrong.value.kind == "identity-file" and "not it" not in str(wrong.value)
    assert load_identity(str(path), "pp") is not None


def test_broken_identity_files_are_identity_file_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_text("not a key\n")
    for path in (str(tmp_path / "absent"), str(garbage)):
        with pytest.raises(TransportError) as caught:
            load_identity(path, None)
        assert caught.value.kind == "identity-file" and caught.value.category == "auth"
    plain = _key_file(tmp_path, serialization.NoEncryption())
    assert load_identity(plain, None) is not None


def test_kind_categories() -> None:
    assert kind_category("login-refused") == kind_category("no-credentials") == "auth"
    assert kind_category("identity-file") == kind_category("key-passphrase-needed") == "auth"
    assert kind_category("sudo-password-wrong") == "sudo-password"
    assert kind_category("disk-full") == "disk-full"  # kinds without a finer split stay


def test_a_password_is_asked_for_only_when_it_may_help() -> None:
    refused = TransportError("refused", kind="login-refused")
    assert password_may_help(refused)
    assert password_may_help(TransportError("no key", kind="no-credentials"))
    broken_key = TransportError("identity file x does not exist", kind="identity-file")
    assert not password_may_help(broken_key)
    assert not password_may_help(TransportError("refused", kind="login-refused",
                                                causes=(broken_key,)))
    assert not password_may_help(TransportError("locked", kind="key-passphrase-needed"))


def test_onboard_reasons_follow_the_kind() -> None:
    from app import onboard

    cases = {"sudo-password-missing": "sudo password missing",
             "sudo-password-wrong": "sudo password wrong",
             "login-refused": "auth failed", "key-passphrase-needed": "auth failed",
             "disk-full": "disk full", "unknown-runtime": "unknown runtime"}
    for kind, reason in cases.items():
        result = onboard.NodeResult("h", "u", 22, status=onboard.PENDING)
        onboard._fail(result, kind, "whatever the wording", None)
        assert (result.status, result.reason) == (onboard.FAILED, reason), kind


def test_step_results_carry_the_error_kind() -> None:
    from app.steps import Outcome, Step, run_steps

    def refuses() -> Outcome:
        raise TransportError("any words", kind="sudo-password-missing")

    result = run_steps([Step("s", "h", "w", refuses)])[0]
    assert result.outcome is Outcome.FAILED and result.kind == "sudo-password-missing"
    assert "kind" not in result.to_dict()  # saved results keep their shape


# `" in error.message`, `in str(error)`, `in result.message.lower()` ...: a decision on wording.
MESSAGE_TEST = re.compile(r"""["'] (not )?in [\w.]*(message|str\(e)""")


def test_no_decision_reads_message_text() -> None:
    offenders = []
    for folder in ("app", "screens"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if MESSAGE_TEST.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_no_subcommand_imports_another() -> None:
    commands = ROOT / "app" / "commands"
    shared = {"app.commands.common", "app.commands.output"}
    names = {f"app.commands.{p.stem}" for p in commands.glob("*.py")} - shared
    offenders = []
    for path in sorted(commands.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                if modules & names:
                    offenders.append(f"{path.name}: {node.module}")
    assert offenders == []
