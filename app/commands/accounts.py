"""``regwiz accounts``: the registry's accounts (push and pull roles), next to the plan."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from app.commands.common import (
    add_connection_arguments,
    load_plan_from_args,
    policy_from_args,
    registry_connector,
)
from app.commands.output import print_progress, print_summary
from app.errors import UsageError
from app.plan import Plan, Secrets

if TYPE_CHECKING:
    from app.accounts import AccountStore

DESCRIPTION = """\
Manage the registry's accounts (registry.auth = "htpasswd", the default). Roles: push (push,
pull, delete: operators, CI) and pull (pull only: the cluster's nodes); the registry's front
enforces them. Each credential is credentials/NAME.json next to the plan (0600, Docker
config.json: docker --config DIR, skopeo/podman --authfile FILE, kubectl create secret generic
--from-file=.dockerconfigjson=FILE --type=kubernetes.io/dockerconfigjson).

  list                     the accounts: name, role, created, last rotated (no secrets)
  add NAME --role ROLE     create an account (password generated, or REGWIZ_ACCOUNT_<NAME>_PASSWORD)
  rotate NAME              give it a new password; the old one is refused at once
  revoke NAME              delete it; its credential is refused at once
  show-password NAME       print the password (terminal only)

add, rotate and revoke update the registry host's htpasswd file (and the front when the push
accounts change) over SSH.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "accounts", help="list, add, rotate or revoke the registry's accounts",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("list", "add", "rotate", "revoke", "show-password"))
    parser.add_argument("name", nargs="?", help="the account (add, rotate, revoke)")
    parser.add_argument("--role", choices=("push", "pull"), help="add: the account's role")
    add_connection_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.accounts import AccountStore

    plan = load_plan_from_args(args, show_warnings=False)
    if plan.registry.auth != "htpasswd":
        raise UsageError('the plan has registry.auth = "none": there are no accounts',
                         'remove the auth line (or set auth = "htpasswd") and deploy')
    store = AccountStore(plan)
    if args.action == "list":
        return _list(store)
    if not args.name:
        raise UsageError(f"accounts {args.action} needs an account NAME")
    if args.action == "show-password":
        return _show_password(store, args.name)
    if args.action == "add":
        if not args.role:
            raise UsageError("accounts add needs --role push or --role pull")
        account = store.add(args.name, args.role)
        path = store.credential_file(args.name)
        print(f"account {account.name} ({account.role}) created: {path}")
    elif args.action == "rotate":
        account = store.rotate(args.name)
        print(f"account {account.name}: new password saved in {store.credential_file(args.name)}")
    else:
        account = store.revoke(args.name)
        print(f"account {account.name} revoked; {store.credential_file(args.name)} deleted")
    code = sync_registry_host(plan, args)
    if account.role == "pull" and args.action in ("rotate", "revoke"):
        from app.accounts import nodes_after_pull_change

        line, reached = nodes_after_pull_change(plan, account.name, Secrets.from_env(),
                                                policy_from_args(args),
                                                revoked=args.action == "revoke")
        if line:
            print(line)
        code = code or (0 if reached else 1)
    return code


def sync_registry_host(plan: Plan, args: argparse.Namespace) -> int:
    """Write the accounts' htpasswd on the registry host (and renew the front if needed)."""
    from app.deploy import Deployment
    from app.steps import run_steps

    secrets = Secrets.from_env()
    with Deployment(plan, secrets, connect=registry_connector(plan, secrets, args)) as deployment:
        results = run_steps(deployment.sync_steps(), on_progress=print_progress)
    print_summary("accounts", results)
    return 0 if all(r.outcome.value != "failed" for r in results) else 1


def _list(store: AccountStore) -> int:
    accounts = store.load()
    if not accounts:
        print("no accounts yet: the first regwiz deploy creates operator (push) and cluster (pull)")
        return 0
    print(f"{'NAME':<20}{'ROLE':<6}{'CREATED':<27}{'ROTATED':<27}FILE")
    for account in accounts:
        print(f"{account.name:<20}{account.role:<6}{account.created:<27}"
              f"{account.rotated or '-':<27}{store.credential_file(account.name)}")
    return 0


def _show_password(store: AccountStore, name: str) -> int:
    from app.commands.common import interactive

    if not (interactive() and sys.stdout.isatty()):
        raise UsageError("accounts show-password prints only to a terminal",
                         f"use the file itself: {store.credential_file(name)}")
    credential = store.credential(name)
    if credential is None:
        raise UsageError(f"no credential for account {name}")
    getpass.getpass("press Enter to show the password (clear the screen afterwards) ")
    print(credential.password)
    return 0
