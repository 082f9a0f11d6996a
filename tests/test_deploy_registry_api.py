"""registry_api against the real Distribution registry binary serving TLS on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import registry_api
from app.htpasswd import htpasswd_line
from app.registry_api import BasicAuth, RegistryAPIError
from tests.deploy_helpers import free_port, local_registry, make_pki, push_tiny_image


def test_ping_open_registry_trusting_only_our_ca(tmp_path: Path) -> None:
    with local_registry(tmp_path, make_pki(["127.0.0.1"])) as registry:
        result = registry_api.ping(registry.base, registry.ca_path)
    assert result.status == 200
    assert result.api_version_header == "registry/2.0"
    assert result.is_up and not result.needs_auth
    assert result.latency_ms is not None and result.latency_ms >= 0
    assert result.error is None


def test_ping_with_another_ca_reports_untrusted_certificate(tmp_path: Path) -> None:
    other = make_pki(["127.0.0.1"], cn="some other CA")
    with local_registry(tmp_path, make_pki(["127.0.0.1"])) as registry:
        result = registry_api.ping(registry.base, other.ca_pem)
    assert not result.is_up and result.status is None
    assert result.error is not None and "not signed by our CA" in result.error
    assert result.error.startswith("x509:")


def test_ping_address_not_in_sans_names_the_problem(tmp_path: Path) -> None:
    with local_registry(tmp_path, make_pki(["registry.example.internal"])) as registry:
        result = registry_api.ping(registry.base, registry.ca_path)
    assert result.error is not None and "does not cover this address" in result.error
    assert result.hint is not None and "subject_alt_names" in result.hint


def test_ping_expired_certificate(tmp_path: Path) -> None:
    with local_registry(tmp_path, make_pki(["127.0.0.1"], expired=True)) as registry:
        result = registry_api.ping(registry.base, registry.ca_path)
    assert result.error is not None and "expired" in result.error


def test_ping_nothing_listening(tmp_path: Path) -> None:
    pki = make_pki(["127.0.0.1"]).write(tmp_path)
    result = registry_api.ping(f"https://127.0.0.1:{free_port()}", pki / "ca.crt")
    assert result.status is None and result.error is not None and "refused" in result.error


def test_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    result = registry_api.ping("https://127.0.0.1:1", tmp_path / "nope" / "ca.crt")
    assert result.error is not None and "cannot load the CA certificate" in result.error
    assert result.hint is not None and "regwiz certs" in result.hint


def test_htpasswd_401_without_and_200_with_credentials(tmp_path: Path) -> None:
    line = htpasswd_line("alice", "s3cret-pass", rounds=4)
    with local_registry(tmp_path, make_pki(["127.0.0.1"]), htpasswd=line + "\n") as registry:
        anonymous = registry_api.ping(registry.base, registry.ca_path)
        alice = BasicAuth("alice", "s3cret-pass")
        good = registry_api.ping(registry.base, registry.ca_path, auth=alice)
        bad = registry_api.ping(registry.base, registry.ca_path, auth=BasicAuth("alice", "wrong"))
        with pytest.raises(RegistryAPIError) as refused:
            registry_api.catalog(registry.base, registry.ca_path)
    assert anonymous.status == 401 and anonymous.is_up and anonymous.needs_auth
    assert good.status == 200
    assert bad.status == 401
    assert refused.value.status == 401 and "credentials" in (refused.value.hint or "")


def test_catalog_tags_digest_and_delete(tmp_path: Path) -> None:
    with local_registry(tmp_path, make_pki(["127.0.0.1"]), delete_enabled=True) as registry:
        base, ca = registry.base, registry.ca_path
        digest = push_tiny_image(base, ca, "team/app", "v1")
        for index in range(3):
            push_tiny_image(base, ca, f"many/repo{index}", "latest")
        assert registry_api.catalog(base, ca, page_size=2) == [
            "many/repo0", "many/repo1", "many/repo2", "team/app"
        ]
        assert registry_api.tags(base, ca, "team/app") == ["v1"]
        assert registry_api.manifest_digest(base, ca, "team/app", "v1") == digest
        assert registry_api.manifest_digest(base, ca, "team/app", "nope") is None
        registry_api.delete_manifest(base, ca, "team/app", digest)
        assert registry_api.manifest_digest(base, ca, "team/app", "v1") is None


def test_delete_disabled_explains_the_setting(tmp_path: Path) -> None:
    with local_registry(tmp_path, make_pki(["127.0.0.1"])) as registry:
        digest = push_tiny_image(registry.base, registry.ca_path, "x/y", "t")
        with pytest.raises(RegistryAPIError) as refused:
            registry_api.delete_manifest(registry.base, registry.ca_path, "x/y", digest)
    assert refused.value.status == 405
    assert "delete_enabled" in (refused.value.hint or "")


def test_bad_inputs_are_registry_errors() -> None:
    with pytest.raises(RegistryAPIError):
        registry_api.delete_manifest("https://127.0.0.1:1", b"", "x", "latest")
    with pytest.raises(RegistryAPIError):
        registry_api.tags("http://127.0.0.1:1", b"", "x")
    with pytest.raises(RegistryAPIError):
        registry_api.tags("https://127.0.0.1:1", b"", "../etc")


def test_basic_auth_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(BasicAuth("bob", "hunter2"))
    assert registry_api.base_url("fd00::1", 443) == "https://[fd00::1]:443"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_base_address_parses_or_is_a_registry_error(base: str) -> None:
    # Parsing only: a random host name must never be looked up (no traffic off this machine).
    try:
        host, port = registry_api._split_base(base)
    except RegistryAPIError as error:
        assert "not an https registry address" in error.message
    else:
        assert host and 0 <= port <= 65535
