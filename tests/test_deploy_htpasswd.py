"""htpasswd lines and the operator's 0600 credentials file."""

from __future__ import annotations

import stat
from pathlib import Path

import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.htpasswd import (
    Credentials,
    CredentialsError,
    generate_password,
    htpasswd_line,
    parse_htpasswd,
    password_matches,
    read_credentials,
    write_credentials,
)


def test_line_is_bcrypt_2y_and_verifies() -> None:
    line = htpasswd_line("regwiz", "pa55word", rounds=4)
    user, _, hashed = line.partition(":")
    assert user == "regwiz" and hashed.startswith("$2y$04$")
    assert bcrypt.checkpw(b"pa55word", hashed.encode())
    assert password_matches(line + "\n", "regwiz", "pa55word")
    assert not password_matches(line, "regwiz", "other")
    assert not password_matches(line, "someone", "pa55word")
    assert not password_matches("regwiz:{SHA}abc\n", "regwiz", "pa55word")


@pytest.mark.parametrize("bad", ["", "a:b", "with space", "tab\tname", "x" * 65])
def test_bad_usernames_are_refused(bad: str) -> None:
    with pytest.raises(CredentialsError):
        htpasswd_line(bad, "pw", rounds=4)


def test_generated_passwords_are_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20 and all(len(p) >= 24 for p in passwords)


def test_parse_ignores_garbage() -> None:
    assert parse_htpasswd("junk\n:nouser\nbob:$2y$x\n\n") == {"bob": "$2y$x"}


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200), st.text(max_size=20), st.text(max_size=20))
def test_password_matches_never_raises(content: str, user: str, password: str) -> None:
    assert password_matches(content, user, password) in (True, False)


def test_credentials_file_is_0600_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "creds.json"
    write_credentials(path, Credentials("198.18.0.2:8443", "regwiz", "secret-value"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = read_credentials(path)
    assert loaded == Credentials("198.18.0.2:8443", "regwiz", "secret-value")
    assert "secret-value" not in repr(loaded)
    assert list(path.parent.iterdir()) == [path]


def test_missing_and_broken_credentials_files(tmp_path: Path) -> None:
    assert read_credentials(tmp_path / "absent.json") is None
    broken = tmp_path / "broken.json"
    broken.write_text("not json")
    with pytest.raises(CredentialsError) as error:
        read_credentials(broken)
    assert "not a regwiz credentials file" in error.value.message


def test_reconcile_keeps_an_entry_whose_password_nobody_knows() -> None:
    from app.htpasswd import reconcile

    remote = (htpasswd_line("regwiz", "old", rounds=4) + "\n").encode()
    state = reconcile(remote, None, None)
    assert (state.changed, state.generated, state.password) == (False, False, None)
    assert state.content == remote and state.username == "regwiz"


def test_reconcile_keeps_a_matching_entry_and_rewrites_a_stale_one() -> None:
    from app.htpasswd import reconcile

    remote = ("alice:$2y$04$handmade\n" + htpasswd_line("regwiz", "pw", rounds=4) + "\n").encode()
    same = reconcile(remote, Credentials("r:5000", "regwiz", "pw"), None)
    assert not same.changed and same.content == remote and same.password == "pw"
    rotated = reconcile(remote, Credentials("r:5000", "regwiz", "pw"), "new")
    assert rotated.changed and not rotated.generated and rotated.password == "new"
    text = rotated.content.decode()
    assert text.startswith("alice:$2y$04$handmade\n")  # users added by hand stay
    assert password_matches(text, "regwiz", "new") and not password_matches(text, "regwiz", "pw")


def test_reconcile_generates_a_password_when_none_is_known() -> None:
    from app.htpasswd import reconcile

    state = reconcile(None, None, None)
    assert state.changed and state.generated and state.password
    assert password_matches(state.content.decode(), "regwiz", state.password)
    assert state.password not in repr(state)


def test_keep_credentials_writes_only_when_kept_and_different(tmp_path: Path) -> None:
    from app.htpasswd import keep_credentials

    target = tmp_path / "creds.json"
    wanted = Credentials("r:5000", "regwiz", "pw")
    keep_credentials(None, wanted, None)
    assert not target.exists()
    keep_credentials(target, wanted, None)
    assert read_credentials(target) == wanted
    target.write_text("left alone")
    keep_credentials(target, wanted, wanted)
    assert target.read_text() == "left alone"
