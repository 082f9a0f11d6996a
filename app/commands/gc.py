"""``regwiz gc``: garbage collection in a read-only window, bytes freed reported."""

from __future__ import annotations

import argparse

from app.commands.common import add_connection_arguments, load_plan_from_args, registry_connector
from app.commands.output import echo, print_progress

DESCRIPTION = """\
Free the disk that deleted manifests (regwiz prune) left behind: redeploy the registry read-only
(pulls go on, pushes and deletes are refused with HTTP 405), run Distribution's garbage-collect
inside the container, then redeploy it read-write -- also when something in between failed. Each
redeploy keeps the old container until the new one answers. Multi-platform images are safe:
--delete-untagged is never used (Distribution 2.8 would delete their platforms).
"""

EPILOG = """\
needs delete_enabled = true; secrets as for regwiz deploy
exit status: 0 collected and read-write again, 1 a step failed, 2 invalid plan or usage
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gc", help="free the disk of deleted images in a read-only window",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_arguments(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="still opens the read-only window, but the collector deletes "
                             "nothing; it lists what it would")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.gc import collect_garbage
    from app.plan import Secrets

    plan = load_plan_from_args(args, show_warnings=False)
    secrets = Secrets.from_env()
    report = collect_garbage(plan, secrets, connect=registry_connector(plan, secrets, args),
                             dry_run=args.dry_run, on_progress=print_progress)
    for line in report.lines():
        echo(line)  # the collector's output is the host's: data only
    return 0 if report.ok else 1
