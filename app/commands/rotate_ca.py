"""``regwiz rotate-ca``: replace the CA in three phases while every node keeps pulling."""

from __future__ import annotations

import argparse

from app.ca_rotation import RotationEvent
from app.commands.common import (
    add_common_arguments,
    add_max_restarts_argument,
    interactive,
    load_plan_from_args,
    policy_from_args,
    registry_connector,
    secrets_from_args,
)
from app.commands.output import EventPrinter, print_progress
from app.errors import UsageError

DESCRIPTION = """\
Replace the registry's CA without a pull failing on any node, in three phases:
  1 add     a new CA (same subject settings, new key); every node onboarded to trust the old
            and the new CA (ca-bundle.crt)
  2 switch  a server certificate from the new CA, deployed; the served certificate read back
  3 finish  the new CA becomes ca.crt/ca.key (the old pair kept as ca.*.old-TIME); every node
            onboarded again to trust only the new CA, and the registry host with it
The phase reached is recorded in the certificate folder (ca-rotation.json, beside
ca-next.crt/ca-next.key): when a phase fails, fix what it names and run the command again; it
resumes there.
"""

EPILOG = """\
secrets as for regwiz deploy and onboard; the CA key passphrase, if any, from
REGWIZ_CA_KEY_PASSPHRASE (the new CA's key is encrypted with it too)
exit status: 0 rotated, 1 a phase failed (run again to resume), 2 invalid plan, usage, or not
confirmed
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rotate-ca", help="replace the CA in three phases, nodes pulling throughout",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    add_max_restarts_argument(parser)
    parser.add_argument("--yes", action="store_true", help="do not ask before starting")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the phases still to run and what each does; change nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app import ca_rotation
    from app.plan import require_managed

    plan = load_plan_from_args(args, show_warnings=False)
    require_managed(plan, "rotate-ca")
    if args.dry_run:
        print("\n".join(ca_rotation.dry_run_lines(plan)))
        return 0
    confirm(args.yes, ca_rotation.load_state(plan) is not None)
    secrets = secrets_from_args(args)
    job = ca_rotation.RotationJob(
        plan, secrets, policy_from_args(args), registry_connector(plan, secrets, args),
        on_event=print_event, on_node=EventPrinter(enabled=True), on_step=print_progress,
        parallel=args.parallel, max_restarts=args.max_restarts)
    report = ca_rotation.rotate_ca(job)
    print()
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def confirm(assume_yes: bool, resuming: bool) -> None:
    if assume_yes:
        return
    what = ("resume the CA rotation" if resuming
            else "replace the CA (every node is onboarded twice)")
    if not interactive():
        raise UsageError(f"rotate-ca would {what} and there is no terminal to confirm",
                         "add --yes to confirm non-interactively (or --dry-run)")
    if input(f"This will {what}. Type 'yes': ").strip().lower() != "yes":
        raise UsageError("not confirmed: nothing was changed")


def print_event(event: RotationEvent) -> None:
    if event.started:
        print(f"\n== phase {event.number}/3 {event.text}", flush=True)
    else:
        print(f"   {event.phase}: {event.text}", flush=True)
