"""Validators: examples of good and bad values, and hypothesis proving they never raise."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import validate
from app.validate import (
    ISO_3166_ALPHA2,
    check_common_name,
    check_country,
    check_email,
    check_host,
    check_port,
    check_remote_path,
    check_san,
    check_text_field,
    check_user,
    warnings_for_san,
)

HOSTILE = [
    "",
    " ",
    "\x00",
    "a\nb",
    "x\r\n",
    "\t",
    "\x7f",
    "\x85",
    "$(reboot)",
    "`id`",
    "a;rm -rf /",
    "a|b",
    "a&&b",
    "'quoted'",
    '"dq"',
    "-oProxyCommand=sh",
    "../../etc/passwd",
    "é",
    "日本",
    "\ud800",
    "a" * 300,
    "*",
    "*.*",
    "[::1]",
    "user@host",
    "host:22",
]

VALIDATORS: list[Callable[[object], str | None]] = [
    check_common_name,
    check_country,
    check_email,
    check_san,
    check_host,
    check_user,
    check_port,
    check_remote_path,
    validate.check_local_path,
    validate.check_days,
    validate.check_key_type,
    validate.check_runtime,
    validate.check_auth,
    validate.check_container_name,
    validate.check_image,
    lambda value: check_text_field("organization", value),
]

ANY_VALUE = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="ascii")),
    st.sampled_from(HOSTILE),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.text(), max_size=3),
    st.binary(max_size=10),
)


@pytest.mark.parametrize("check", VALIDATORS)
@given(value=ANY_VALUE)
def test_validators_never_raise(check: Callable[[object], str | None], value: object) -> None:
    result = check(value)
    assert result is None or (isinstance(result, str) and result)
    if result:
        # Messages are one printable line: a hostile value cannot inject lines into output.
        assert "\n" not in result and "\r" not in result and "\x00" not in result


@given(value=st.text())
def test_warnings_for_san_never_raise(value: str) -> None:
    warnings = warnings_for_san(value)
    assert isinstance(warnings, list)
    if check_san(value) is not None:
        assert warnings == []


@given(value=st.sampled_from(HOSTILE))
def test_hostile_strings_are_rejected_where_it_matters(value: str) -> None:
    assert check_host(value) is not None
    assert check_user(value) is not None
    assert check_san(value) is not None
    assert check_remote_path(value) is not None


def test_country() -> None:
    assert len(ISO_3166_ALPHA2) == 249
    for code in ("KR", "US", "DE", "GB", "JP", "AX", "SS", ""):
        assert check_country(code) is None, code
    assert "GB" in (check_country("UK") or "")
    assert "upper case" in (check_country("kr") or "")
    assert "not an ISO 3166-1" in (check_country("XX") or "")
    assert "two-letter" in (check_country("KOR") or "")
    assert check_country("K1") is not None


def test_common_name() -> None:
    assert check_common_name("registry.example.internal") is None
    assert check_common_name("My Registry") is None
    assert check_common_name("x" * 64) is None
    assert "at most 64" in (check_common_name("x" * 65) or "")
    assert "empty" in (check_common_name("") or "")
    assert "control" in (check_common_name("a\tb") or "")


def test_email() -> None:
    assert check_email("ops@example.com") is None
    assert check_email("first.last+tag@sub.example.co.kr") is None
    assert check_email("") is None
    for bad in (
        "ops",
        "@example.com",
        "ops@",
        "ops@localhost",
        "a b@example.com",
        "a@b@c",
        "a..b@example.com",
        "ops@exa_mple.com",
    ):
        assert check_email(bad) is not None, bad


@pytest.mark.parametrize(
    "value",
    [
        "198.18.0.2",
        "fd00::2",
        "2001:db8::1",
        "registry.example.internal",
        "*.apps.example.internal",
        "a-b.c",
        "xn--bcher-kva.example",
        "a" * 63 + ".example",
        "registry",
        "localhost",
        "127.0.0.1",
    ],
)
def test_san_accepts(value: str) -> None:
    assert check_san(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "empty"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("fe80::1%eth0", "zone"),
        ("[fd00::2]", "without brackets"),
        ("*.example", "two labels"),
        ("*", "two labels"),
        ("a.*.example.com", "left-most"),
        ("*foo.example.com", "left-most"),
        ("-a.example", "letters, digits"),
        ("a-.example", "letters, digits"),
        ("a_b.example", "letters, digits"),
        ("a..b", "empty label"),
        ("example.com.", "trailing dot"),
        ("a" * 64 + ".example", "longer than 63"),
        (".".join(["abcdefgh"] * 30), "at most 253"),
        ("bücher.example", "punycode"),
        ("1.2.3", "all-digit"),
        ("198.18.0.256", "all-digit"),
        ("010.0.0.1", "all-digit"),
        ("a b", "letters, digits"),
        ("https://reg.example:5000", "drop the scheme and port"),
        ("https://[fd00::2]:5000/v2/", "drop the scheme, port and path"),
        ("reg.example:5000", "drop the port"),
    ],
)
def test_san_rejects(value: str, expected: str) -> None:
    message = check_san(value)
    assert message is not None and expected in message


def test_san_warnings() -> None:
    assert "loopback" in warnings_for_san("127.0.0.1")[0]
    assert "loopback" in warnings_for_san("::1")[0]
    assert "itself" in warnings_for_san("localhost")[0]
    assert "single-label" in warnings_for_san("registry")[0]
    assert "link-local" in warnings_for_san("169.254.1.1")[0]
    assert warnings_for_san("registry.example.internal") == []
    assert warnings_for_san("198.18.0.2") == []


def test_host() -> None:
    for good in ("local", "198.18.0.3", "fd00::3", "node-1.example.internal", "node1", "my_alias"):
        assert check_host(good) is None, good
    assert "ssh_user" in (check_host("root@node1") or "")
    assert "ssh_port" in (check_host("node1:2222") or "")
    assert "'-'" in (check_host("-oProxyCommand=x") or "") or "shell" in (
        check_host("-oProxyCommand=x") or ""
    )
    assert check_host("-node") is not None
    assert "shell" in (check_host("a;b") or "")
    assert "empty" in (check_host("") or "")


def test_user() -> None:
    for good in ("deploy", "root", "_svc", "ci.bot", "user-1", "A" * 32):
        assert check_user(good) is None, good
    for bad in ("", "1abc", "-x", ".x", "a b", "a" * 33, "ro$ot", "é"):
        assert check_user(bad) is not None, bad


def test_port() -> None:
    for good in (1, 22, 443, 65535, "8443"):
        assert check_port(good) is None, good
    for bad in (0, 65536, -1, True, "abc", "", "1e3", 22.0, None, "０"):
        message = check_port(bad)
        assert message is not None and "1 to 65535" in message, bad
    assert check_port("abc") == 'expected an integer from 1 to 65535, got "abc"'


def test_remote_path() -> None:
    assert check_remote_path("/etc/docker/certs") is None
    assert check_remote_path("/srv/my registry") is None
    assert "absolute" in (check_remote_path("etc/docker") or "")
    assert "'..'" in (check_remote_path("/etc/../root") or "")
    assert "control" in (check_remote_path("/etc/\nx") or "")
    assert "root directory" in (check_remote_path("/") or "")


@pytest.mark.parametrize("path", ["//etc", "/etc/", "/usr/local", "/etc/kubernetes",
                                  "/var/lib/kubelet", "/var/lib/docker", "/home", "/home/alice",
                                  "/root", "/var//lib", "/./usr", "/var/lib/kubelet/pki"])
def test_data_and_certs_dirs_refuse_system_directories(path: str) -> None:
    for check in (validate.check_data_dir, validate.check_certs_dir):
        message = check(path) or ""
        assert "a directory of its own" in message and "e.g. /" in message, (path, message)


def test_data_and_certs_dirs_accept_their_own() -> None:
    for path in ("/registry-image", "/srv/registry/data", "/etc/docker/certs",
                 "/home/alice/registry", "/var/lib/registry"):
        assert validate.check_data_dir(path) is None and validate.check_certs_dir(path) is None


def test_normalize_remote_path() -> None:
    assert validate.normalize_remote_path("//etc") == "/etc"
    assert validate.normalize_remote_path("/srv//reg/./data/") == "/srv/reg/data"
    assert validate.normalize_remote_path("/a/b/../c") == "/a/c"


def test_text_field() -> None:
    assert check_text_field("state", "Seoul") is None
    assert check_text_field("state", "") is None
    assert "state must be at most 128" in (check_text_field("state", "x" * 129) or "")
    assert "control" in (check_text_field("locality", "a\x00b") or "")


def test_choices_and_misc() -> None:
    assert validate.check_key_type("ed25519") is None
    assert "ecdsa-p256" in (validate.check_key_type("dsa") or "")
    assert validate.check_runtime("cri-o") is None
    assert validate.check_image("registry:2") is None
    assert validate.check_image("docker.io/library/registry:2.8.3") is None
    assert validate.check_image("Registry:2") is not None
    assert validate.check_container_name("registry") is None
    assert validate.check_container_name("-x") is not None
    assert validate.check_days(825) is None
    assert validate.check_days(0) is not None and validate.check_days(True) is not None
