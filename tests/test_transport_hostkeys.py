"""known_hosts parsing and the host-key verdicts (pure logic, checked against ssh-keygen)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.transport.base import TransportError
from app.transport.hostkeys import (
    CHANGED,
    KNOWN,
    OTHER_TYPE,
    REVOKED,
    UNKNOWN,
    HostKeyPolicy,
    fingerprint_of_blob,
    judge,
    parse_known_hosts,
    wildcard_match,
)
from tests.sshd import keygen


def public_key(directory: Path, name: str, key_type: str = "ed25519") -> tuple[str, bytes]:
    path = keygen(directory / name, key_type)
    fields = Path(f"{path}.pub").read_text().split()
    return fields[0], base64.b64decode(fields[1])


def line(pattern: str, key_type: str, blob: bytes) -> str:
    return f"{pattern} {key_type} {base64.b64encode(blob).decode()}\n"


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    key_type, blob = public_key(tmp_path, "k", "rsa")
    expected = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], check=True,
                              capture_output=True, text=True).stdout.split()[1]
    assert fingerprint_of_blob(blob) == expected


def test_verdicts(tmp_path: Path) -> None:
    key_type, blob = public_key(tmp_path, "a")
    _, other = public_key(tmp_path, "b")
    rsa_type, rsa_blob = public_key(tmp_path, "c", "rsa")
    entries = parse_known_hosts(line("10.0.0.1,[10.0.0.2]:2222", key_type, blob))
    assert judge(entries, "10.0.0.1", key_type, blob).status == KNOWN
    assert judge(entries, "[10.0.0.2]:2222", key_type, blob).status == KNOWN
    assert judge(entries, "10.0.0.2", key_type, blob).status == UNKNOWN  # other port
    changed = judge(entries, "10.0.0.1", key_type, other)
    assert changed.status == CHANGED
    assert changed.known_fingerprints == (fingerprint_of_blob(blob),)
    # issue 12: a key of another type for a known host is not a plain unknown key (OpenSSH
    # warns "keys of a different type are already known"): the known keys are named
    other_type = judge(entries, "10.0.0.1", rsa_type, rsa_blob)
    assert other_type.status == OTHER_TYPE
    assert other_type.known_fingerprints == (f"{key_type} {fingerprint_of_blob(blob)}",)


def test_hashed_wildcard_negated_and_revoked(tmp_path: Path) -> None:
    key_type, blob = public_key(tmp_path, "a")
    plain = tmp_path / "kh"
    plain.write_text(line("node1.example", key_type, blob))
    subprocess.run(["ssh-keygen", "-H", "-f", str(plain)], check=True, capture_output=True)
    hashed = parse_known_hosts(plain.read_text())
    assert judge(hashed, "node1.example", key_type, blob).status == KNOWN
    assert judge(hashed, "node2.example", key_type, blob).status == UNKNOWN

    pattern = parse_known_hosts(line("*.lab,!bad.lab", key_type, blob))
    assert judge(pattern, "good.lab", key_type, blob).status == KNOWN
    assert judge(pattern, "bad.lab", key_type, blob).status == UNKNOWN

    revoked = parse_known_hosts("@revoked " + line("*", key_type, blob) + line("*", key_type, blob))
    assert judge(revoked, "any.host", key_type, blob).status == REVOKED


def test_brackets_are_literal_not_character_classes() -> None:
    assert wildcard_match("[10.0.0.1]:22", "[10.0.0.1]:22")
    assert not wildcard_match("[10.0.0.1]:22", "1")
    assert wildcard_match("10.0.0.?", "10.0.0.7")


def test_malformed_lines_are_skipped() -> None:
    entries = parse_known_hosts("# comment\n\ngarbage\nhost ssh-ed25519 !!notbase64!!\n")
    assert entries == []


@given(st.binary(min_size=1, max_size=200), st.text(min_size=1, max_size=40))
def test_parse_never_crashes_on_arbitrary_text(blob: bytes, text: str) -> None:
    entries = parse_known_hosts(text + "\n" + line("h", "ssh-ed25519", blob))
    assert judge(entries, "h", "ssh-ed25519", blob).status == KNOWN


def test_policy_refuses_unknown_and_saves_accepted(tmp_path: Path) -> None:
    key_type, blob = public_key(tmp_path, "a")
    path = tmp_path / "sub" / "known_hosts"
    with pytest.raises(TransportError) as caught:
        HostKeyPolicy(path).verify("10.1.1.1", 22, key_type, blob)
    assert caught.value.kind == "host-key-unknown"
    assert fingerprint_of_blob(blob) in caught.value.message
    HostKeyPolicy(path, accept_new=True).verify("10.1.1.1", 2200, key_type, blob)
    assert path.read_text() == line("[10.1.1.1]:2200", key_type, blob)
    HostKeyPolicy(path).verify("10.1.1.1", 2200, key_type, blob)  # now known
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_unreadable_known_hosts_is_reported(tmp_path: Path) -> None:
    key_type, blob = public_key(tmp_path, "a")
    directory = tmp_path / "dir-not-file"
    directory.mkdir()
    with pytest.raises(TransportError) as caught:
        HostKeyPolicy(directory).verify("h", 22, key_type, blob)
    assert str(directory) in caught.value.message


def test_a_new_key_type_for_a_known_host_is_refused_even_with_accept_new(tmp_path: Path) -> None:
    """Issue 12 item 6: never accepted automatically; only a confirm that saw the known keys."""
    key_type, blob = public_key(tmp_path, "a")
    rsa_type, rsa_blob = public_key(tmp_path, "c", "rsa")
    path = tmp_path / "known_hosts"
    path.write_text(line("10.0.0.1", key_type, blob))
    before = path.read_text()
    with pytest.raises(TransportError) as caught:
        HostKeyPolicy(path, accept_new=True, confirm=lambda *a: True).verify(
            "10.0.0.1", 22, rsa_type, rsa_blob)
    assert caught.value.kind == "host-key-changed"
    assert fingerprint_of_blob(blob) in caught.value.message
    assert path.read_text() == before
    asked: list[tuple[str, ...]] = []

    def confirm_other(host: str, kt: str, fp: str, known: tuple[str, ...]) -> bool:
        asked.append(known)
        return True

    HostKeyPolicy(path, confirm_other_type=confirm_other).verify(
        "10.0.0.1", 22, rsa_type, rsa_blob)
    assert asked == [(f"{key_type} {fingerprint_of_blob(blob)}",)]
    assert judge(parse_known_hosts(path.read_text()), "10.0.0.1", rsa_type,
                 rsa_blob).status == KNOWN
