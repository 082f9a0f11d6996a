"""``regwiz uninstall``: remove the registry container and the certificates deploy placed."""

from __future__ import annotations

import argparse

from app.commands.common import (
    add_connection_arguments,
    interactive,
    load_plan_from_args,
    registry_connector,
)
from app.commands.output import print_dry_run, print_progress, print_summary
from app.errors import UsageError
from app.plan import Secrets
from app.steps import Outcome, dry_run_lines, run_steps

DESCRIPTION = """\
Remove the registry container and the tls.crt, tls.key and htpasswd files deploy placed in
certs_dir. The data directory (every pushed image) stays unless --purge is given; --purge asks
for confirmation unless --yes is given (without a terminal it refuses instead of asking), and
deletes only a registry data directory (docker/registry/v2 and deploy's marker, nothing else).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "uninstall", help="remove the registry container (and with --purge its data)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 removed, 1 a step failed, 2 invalid plan or usage",
    )
    add_connection_arguments(parser)
    parser.add_argument("--purge", action="store_true",
                        help="also delete the data directory with every pushed image")
    parser.add_argument("--yes", action="store_true", help="do not ask before --purge")
    parser.add_argument("--dry-run", action="store_true", help="print the steps only")
    parser.set_defaults(func=run)


def confirm_purge(data_dir: str, host: str, assume_yes: bool) -> None:
    if assume_yes:
        return
    if not interactive():
        raise UsageError(
            f"--purge would delete {data_dir} on {host} and there is no terminal to confirm",
            "add --yes to confirm non-interactively",
        )
    answer = input(f"Delete {data_dir} on {host} with every pushed image? Type 'yes': ")
    if answer.strip().lower() != "yes":
        raise UsageError("not confirmed: nothing was removed")


def run(args: argparse.Namespace) -> int:
    from app.deploy import Uninstall

    plan = load_plan_from_args(args, show_warnings=False)
    secrets = Secrets.from_env()
    with Uninstall(plan, purge=args.purge,
                   connect=registry_connector(plan, secrets, args)) as uninstall:
        steps = uninstall.steps()
        if args.dry_run:
            print_dry_run(dry_run_lines(steps))
            return 0
        if args.purge:
            confirm_purge(plan.registry.data_dir, plan.registry.host, args.yes)
        results = run_steps(steps, on_progress=print_progress)
        print_summary("uninstall", results)
    return 1 if any(r.outcome is Outcome.FAILED for r in results) else 0
