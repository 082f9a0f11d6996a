"""Plan settings → ConnectionSettings, secrets, and the host-key policy from CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.connections import (
    KNOWN_HOSTS_ENV,
    connection_secrets,
    host_key_policy,
    node_connection,
    registry_connection,
)
from app.plan import NodeDefaults, NodeSettings, Plan, RegistrySettings, Secrets


def test_registry_connection_maps_every_field() -> None:
    plan = Plan(registry=RegistrySettings(
        host="198.18.4.2", ssh_user="rwdeploy", ssh_port=2222,
        identity_file="~/.ssh/id_lab", sudo=True,
    ))
    settings = registry_connection(plan)
    assert (settings.host, settings.user, settings.port, settings.sudo) == (
        "198.18.4.2", "rwdeploy", 2222, True
    )
    assert settings.identity_file == str(Path.home() / ".ssh" / "id_lab")
    assert not settings.is_local
    assert registry_connection(Plan(registry=RegistrySettings(host="local"))).is_local


def test_node_connection_uses_resolved_defaults() -> None:
    plan = Plan(
        node_defaults=NodeDefaults(ssh_user="ops", ssh_port=2200, sudo=False),
        nodes=[NodeSettings(host="198.18.0.3"), NodeSettings(host="n2", ssh_user="root")],
    )
    first, second = (node_connection(node) for node in plan.resolved_nodes())
    assert (first.host, first.user, first.port, first.sudo) == ("198.18.0.3", "ops", 2200, False)
    assert first.identity_file is None
    assert (second.user, second.port) == ("root", 2200)


def test_secrets_are_mapped_and_hidden() -> None:
    mapped = connection_secrets(Secrets(ssh_password="pw1", sudo_password="pw2",
                                        key_passphrase="pw3", registry_password="pw4"))
    assert (mapped.password, mapped.sudo_password, mapped.key_passphrase) == ("pw1", "pw2", "pw3")
    assert "pw" not in repr(mapped)


def test_policy_headless_refuses_unknown_unless_accept_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KNOWN_HOSTS_ENV, raising=False)
    strict = host_key_policy(False, known_hosts=tmp_path / "kh")
    assert not strict.accept_new and strict.confirm is None and strict.path == tmp_path / "kh"
    assert host_key_policy(True).accept_new
    monkeypatch.setenv(KNOWN_HOSTS_ENV, str(tmp_path / "env_kh"))
    assert host_key_policy(False).path == tmp_path / "env_kh"

    def answer(host: str, key_type: str, fingerprint: str) -> bool:
        return False

    assert host_key_policy(False, answer).confirm is answer


def test_sudo_password_is_per_host_with_the_shared_one_as_fallback() -> None:
    secrets = Secrets(sudo_password="shared", sudo_passwords={"reg": "own"})
    assert secrets.sudo_password_for("reg") == "own"
    assert secrets.sudo_password_for("node1") == "shared"
    assert Secrets(sudo_passwords={"reg": "own"}).sudo_password_for("node1") is None
    assert connection_secrets(secrets, "reg").sudo_password == "own"
    assert connection_secrets(secrets, "node1").sudo_password == "shared"
    assert "own" not in repr(secrets) and "shared" not in repr(secrets)


def test_every_transport_opener_uses_the_host_s_sudo_password(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.transport.factory as factory
    from app.connections import open_node_transport, open_registry_transport

    seen: dict[str, str | None] = {}

    def fake_open(target: object, secrets: object, policy: object) -> object:
        seen[target.host] = secrets.sudo_password  # type: ignore[attr-defined]
        return object()

    monkeypatch.setattr(factory, "open_transport", fake_open)
    plan = Plan(registry=RegistrySettings(host="reg"),
                nodes=[NodeSettings(host="n1"), NodeSettings(host="n2")])
    secrets = Secrets(sudo_password="shared", sudo_passwords={"reg": "r", "n2": "two"})
    policy = host_key_policy(False)
    open_registry_transport(plan, secrets, policy)
    for node in plan.resolved_nodes():
        open_node_transport(node, secrets, policy)
    assert seen == {"reg": "r", "n1": "shared", "n2": "two"}
