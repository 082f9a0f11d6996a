"""``regwiz upgrade --image IMAGE``: another registry image, rolled back if it fails."""

from __future__ import annotations

import argparse

from app.commands.common import add_connection_arguments, load_plan_from_args, registry_connector
from app.commands.output import echo, print_progress, print_summary

DESCRIPTION = """\
Run the registry on another image (e.g. a newer registry:2.8.x, or registry:3) with the same data
and settings: the new container must pass the health check before the old one is removed, and a
new image that cannot start or serve is rolled back (the old container runs again under its name,
every image kept). The plan names the new image, and pins it (registry.image_digest), only after
it serves; a rollback keeps the old image and the old pin. --image with the plan's own tag takes
what that tag names on the host now (after a re-pull, say) and moves the pin there.
"""

EPILOG = """\
exit status: 0 upgraded, 1 not upgraded (rolled back), 2 invalid plan or usage
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "upgrade", help="run the registry on another image, rolled back if it fails",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_arguments(parser)
    parser.add_argument("--image", required=True, metavar="IMAGE",
                        help="the registry image to run, e.g. registry:2.8.3")
    parser.add_argument("--image-tar", metavar="FILE",
                        help="image archive (docker save) for a host that cannot pull it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.common import user_path
    from app.deploy import DeployOptions
    from app.plan import Secrets
    from app.upgrade import upgrade_registry

    plan = load_plan_from_args(args, show_warnings=False)
    secrets = Secrets.from_env()
    options = DeployOptions(image_tar=user_path(args.image_tar, "--image-tar")
                            if args.image_tar else None)
    report = upgrade_registry(plan, secrets, args.image, options,
                              connect=registry_connector(plan, secrets, args),
                              on_progress=print_progress)
    print_summary("deploy", report.deploy.results)
    for line in report.lines():
        echo(line)
    return 0 if report.ok else 1
