"""What every subcommand shares: connection arguments, plan loading, paths, secrets and the
registry credentials file. Subcommands import from here, never from each other."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import UsageError
from app.paths import expand_user
from app.transport.base import ExecTransport, Transport, TransportError

if TYPE_CHECKING:
    from app.htpasswd import Credentials
    from app.plan import Plan, Secrets
    from app.transport.hostkeys import HostKeyPolicy


def add_plan_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan", default=argparse.SUPPRESS, metavar="FILE",
        help="plan file (default: the wizard's plan in the user config folder)",
    )


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--plan, and the host-key options every command that connects to a host takes."""
    add_plan_argument(parser)
    parser.add_argument(
        "--accept-new-host-keys", action="store_true",
        help="trust and remember SSH host keys seen for the first time (changed keys are "
             "always refused)",
    )
    parser.add_argument(
        "--known-hosts", metavar="FILE",
        help="known_hosts file to check and extend (default: $REGWIZ_KNOWN_HOSTS or "
             "~/.ssh/known_hosts)",
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """add_connection_arguments, plus --ask-sudo-password and --parallel."""
    add_connection_arguments(parser)
    parser.add_argument("--ask-sudo-password", action="store_true",
                        help="prompt once for the hosts' sudo password (terminal only)")
    parser.add_argument(
        "--parallel", type=positive_int, default=16, metavar="N",
        help="how many nodes to work on at once (default 16)",
    )


def add_max_restarts_argument(parser: argparse.ArgumentParser) -> None:
    """--max-restarts for the commands that onboard nodes."""
    parser.add_argument(
        "--max-restarts", type=positive_int, default=None, metavar="N",
        help="runtime restarts at once, after a first node alone (the canary); default and "
             "ceiling: --parallel; k3s/RKE2 servers always restart one at a time",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def interactive() -> bool:
    """Prompts only on a terminal: CI has no stdin and must fail with a hint instead."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def secrets_from_args(args: argparse.Namespace) -> Secrets:
    """Secrets from the environment, plus the --ask-sudo-password prompt (terminal only).
    The prompted password is the shared one (``Secrets.sudo_password``): one value for all
    hosts, as REGWIZ_SUDO_PASSWORD is."""
    from app.plan import Secrets

    secrets = Secrets.from_env()
    if args.ask_sudo_password:
        if not interactive():
            raise UsageError("--ask-sudo-password needs a terminal",
                             "set REGWIZ_SUDO_PASSWORD instead")
        secrets.sudo_password = getpass.getpass("sudo password on the nodes: ")
    return secrets


def policy_from_args(args: argparse.Namespace) -> HostKeyPolicy:
    from app.connections import host_key_policy

    return host_key_policy(args.accept_new_host_keys, known_hosts=args.known_hosts)


def load_plan_from_args(args: argparse.Namespace, *, show_warnings: bool = True) -> Plan:
    """The plan named by ``--plan`` (or the default one); its suspicious-but-valid settings
    (see ``plan_warnings``) go to stderr when ``show_warnings``."""
    from app.plan import auth_warning, default_plan_path, load_plan, plan_warnings

    given = getattr(args, "plan", None)
    plan = load_plan(user_path(given, "--plan") if given else default_plan_path())
    if (no_auth := auth_warning(plan)) is not None:  # always, once per command
        print(f"regwiz: warning: {no_auth}", file=sys.stderr)
    if show_warnings:
        for warning in plan_warnings(plan):
            print(f"regwiz: warning: {warning}", file=sys.stderr)
    return plan


def user_path(text: str, option: str) -> Path:
    """``~``-expanded path from an option (an unknown ``~user`` stays literal); NUL refused."""
    if "\0" in text:
        raise UsageError(f"{option}: a path cannot contain a NUL character")
    return expand_user(text)


def load_credentials(plan: Plan, path: str | None) -> Credentials | None:
    """The htpasswd credentials from ``--credentials-file``, else the ``operator`` account's
    (only read in htpasswd mode)."""
    if plan.registry.auth != "htpasswd" and plan.registry.managed:
        return None
    if not path:
        if not plan.registry.managed:  # its logins are its own: verify and status use the nodes'
            return None
        from app.accounts import OPERATOR, AccountStore

        return AccountStore(plan).credential(OPERATOR)  # a RegistryCredential is Credentials
    from app.htpasswd import read_credentials

    credentials = read_credentials(user_path(path, "--credentials-file"))
    if credentials is None:
        raise UsageError(
            f"credentials file {path} does not exist",
            "give the file regwiz deploy wrote with --credentials-file",
        )
    if credentials.registry != plan.registry_reference:
        print(
            f"regwiz: warning: {path} holds credentials for {credentials.registry}, "
            f"the plan's registry is {plan.registry_reference}",
            file=sys.stderr,
        )
    return credentials


def registry_connector(plan: Plan, secrets: Secrets, args: argparse.Namespace
                       ) -> Callable[[], Transport]:
    """Opens the registry host's transport; on a terminal asks for a missing password once."""
    from app.connections import open_registry_transport

    policy = policy_from_args(args)

    def connect() -> Transport:
        transport = _open_asking(plan, secrets, policy)
        host = plan.registry.host
        own = plan.registry.sudo_password_env
        if plan.registry.sudo and not secrets.sudo_password_for(host, own) and interactive() \
                and _sudo_wants_password(transport):
            password = getpass.getpass(f"sudo password on {host}: ")
            secrets.sudo_passwords[host] = password
            # No shared value was given (else nobody is asked): as before, ``regwiz apply``'s
            # later stages offer the typed one to the nodes too, unless the plan gives the
            # registry a secret of its own (sudo_password_env): then it stays the registry's.
            if not own:
                secrets.sudo_password = password
            transport.close()
            transport = open_registry_transport(plan, secrets, policy)
        return transport

    return connect


def _open_asking(plan: Plan, secrets: Secrets, policy: HostKeyPolicy) -> Transport:
    """Connect; on a terminal ask once for a missing key passphrase or SSH password."""
    from app.connections import open_registry_transport

    target = f"{plan.registry.ssh_user}@{plan.registry.host}"
    for _ in range(3):
        try:
            return open_registry_transport(plan, secrets, policy)
        except TransportError as error:
            if error.category != "auth" or not interactive():
                raise
            if error.kind == "key-passphrase-needed" and not secrets.key_passphrase:
                secrets.key_passphrase = getpass.getpass(f"passphrase for the SSH key ({target}): ")
            elif password_may_help(error) and not secrets.ssh_password:
                secrets.ssh_password = getpass.getpass(f"SSH password for {target}: ")
            else:
                raise
    return open_registry_transport(plan, secrets, policy)


def _sudo_wants_password(transport: Transport) -> bool:
    """The transport's own sudo check (kept, so later sudo steps do not probe again)."""
    if not isinstance(transport, ExecTransport):
        return False
    try:
        transport.sudo_mode()
    except TransportError as error:
        return error.kind == "sudo-password-missing"
    return False


def password_may_help(error: TransportError) -> bool:
    """A refused login or no way to log in at all, with no identity file at fault (a broken
    identity file is fixed in the plan or on disk, not by a password)."""
    return error.kind in ("no-credentials", "login-refused") and not error.causes
