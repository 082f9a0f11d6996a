"""Accounts with roles (issue 11): files, env passwords, migration, htpasswd idempotence, and the
plan defaults that make a registry private."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from app.accounts import AccountStore, check_account_name, password_env_var
from app.cli import main
from app.htpasswd import Credentials, password_matches, write_credentials
from app.plan import auth_warning, new_plan, parse_plan, validate_plan


def make_store(tmp_path: Path, environ: dict[str, str] | None = None) -> AccountStore:
    plan = new_plan(tmp_path / "plan.toml")
    plan.registry.address, plan.registry.port = "198.18.4.2", 8443
    return AccountStore(plan, environ or {})


def test_first_deploy_creates_operator_and_cluster_in_private_files(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"REGWIZ_ACCOUNT_CLUSTER_PASSWORD": "chosen-cluster"})
    created = store.ensure_defaults()
    assert [(a.name, a.role) for a in created] == [("operator", "push"), ("cluster", "pull")]
    folder = tmp_path / "credentials"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("operator.json", "cluster.json", "accounts.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    cluster = store.credential("cluster")
    assert cluster is not None and cluster.password == "chosen-cluster"
    assert "198.18.4.2:8443" in json.loads((folder / "cluster.json").read_text())["auths"]
    assert "chosen-cluster" not in (folder / "accounts.json").read_text()
    assert store.ensure_defaults() == []  # second deploy: nothing new
    store.revoke("cluster")
    assert store.ensure_defaults() == [] and store.get("cluster") is None  # stays revoked


def test_legacy_credentials_file_becomes_a_push_account(tmp_path: Path) -> None:
    legacy = tmp_path / "registry-credentials.json"
    write_credentials(legacy, Credentials("198.18.4.2:8443", "regwiz", "legacy-pass"))
    store = make_store(tmp_path)
    names = [(a.name, a.role) for a in store.ensure_defaults(legacy)]
    assert names == [("regwiz", "push"), ("operator", "push"), ("cluster", "pull")]
    legacy_account = store.credential("regwiz")
    assert legacy_account is not None and legacy_account.password == "legacy-pass"
    assert sorted(store.push_accounts()) == ["operator", "regwiz"]


def test_htpasswd_content_is_stable_and_follows_rotate_and_revoke(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.ensure_defaults()
    first = store.htpasswd_content(None, rounds=4)
    assert store.htpasswd_content(first, rounds=4) == first  # matching hashes kept: idempotent
    old = store.credential("operator")
    assert old is not None
    store.rotate("operator")
    new = store.credential("operator")
    assert new is not None and new.password != old.password
    rotated = store.htpasswd_content(first + b"alice:$2y$04$abc\n", rounds=4).decode()
    assert password_matches(rotated, "operator", new.password)
    assert not password_matches(rotated, "operator", old.password)
    assert "alice" not in rotated  # no account, no role: dropped
    store.revoke("cluster")
    assert "cluster:" not in store.htpasswd_content(rotated.encode(), rounds=4).decode()


def test_account_names_and_env_vars() -> None:
    assert check_account_name("ci-bot.1") is None
    for bad in ("", "Ops", "a b", "-x", "a:b", "accounts", "x" * 65, 'a"b'):
        assert check_account_name(bad) is not None, bad
    assert password_env_var("ci-bot.1") == "REGWIZ_ACCOUNT_CI_BOT_1_PASSWORD"


def test_plan_defaults_are_private(tmp_path: Path) -> None:
    plan = parse_plan('[certificate]\ncommon_name = "r.lab"\n[registry]\nhost = "local"\n'
                      'address = "r.lab"\n')
    assert plan.registry.auth == "htpasswd" and plan.registry.bind_address == "0.0.0.0"
    assert plan.registry.front_image == "nginx:stable"
    assert auth_warning(plan) is None
    plan.registry.auth = "none"
    assert "anyone who can reach port 8443 of local can push" in (auth_warning(plan) or "")
    assert new_plan().certificate.name_constraints is True


def test_bind_address_and_os_trust_store_rules() -> None:
    plan = new_plan()
    plan.registry.bind_address = "not-an-ip"
    assert any(p.startswith("registry.bind_address:") for p in validate_plan(plan))
    plan.registry.bind_address = "198.18.4.2"
    plan.node_defaults.os_trust_store = True
    plan.certificate.name_constraints = False
    problems = validate_plan(plan)
    assert any(p.startswith("nodes.defaults.os_trust_store: true needs "
                            "certificate.name_constraints = true") for p in problems)
    plan.certificate.name_constraints = True
    assert validate_plan(plan) == []


def test_cli_warns_once_for_no_auth_and_lists_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[certificate]\ncommon_name = "r.lab"\n[registry]\nhost = "local"\n'
                    'address = "r.lab"\nauth = "none"\n')
    assert main(["deploy", "--plan", str(plan), "--dry-run"]) == 0
    assert capsys.readouterr().err.count("anyone who can reach") == 1
    assert main(["accounts", "list", "--plan", str(plan)]) == 2  # no accounts without auth
    plan.write_text(plan.read_text().replace('auth = "none"\n', ""))
    assert main(["accounts", "list", "--plan", str(plan)]) == 0
    assert "no accounts yet" in capsys.readouterr().out
    store = AccountStore(parse_plan(plan.read_text(), plan), {})
    store.ensure_defaults()
    assert main(["accounts", "list", "--plan", str(plan)]) == 0
    listed = capsys.readouterr().out
    cluster = store.credential("cluster")
    assert "operator" in listed and "pull" in listed
    assert cluster is not None and cluster.password not in listed
    assert main(["accounts", "show-password", "cluster", "--plan", str(plan)]) == 2  # no tty
