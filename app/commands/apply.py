"""``regwiz apply``: certs, deploy, onboard and verify in order, stopping at the first failure.

Each stage is the same code its own command runs (no logic of its own here), so
``regwiz apply`` behaves exactly like running the four commands one after the other.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.common import (
    add_common_arguments,
    add_max_restarts_argument,
    load_credentials,
    load_plan_from_args,
    policy_from_args,
    registry_connector,
    secrets_from_args,
    user_path,
)
from app.commands.output import (
    EventPrinter,
    print_onboard_report,
    print_progress,
    print_summary,
    print_verify_progress,
    print_verify_report,
    show_new_credentials,
)
from app.errors import RegwizError, UsageError
from app.terminal_text import echo

if TYPE_CHECKING:
    from app.htpasswd import Credentials
    from app.plan import Plan, Secrets
    from app.transport.hostkeys import HostKeyPolicy

DESCRIPTION = """\
Bring the plan to life in one go: create or reuse the certificates (regwiz certs), deploy the
registry (regwiz deploy), install the CA on every node (regwiz onboard) and prove it with a real
push and pull on every node (regwiz verify). Stops at the first stage that fails. Safe to run
again: every stage only changes what is not as the plan says.
"""

EPILOG = """\
exit status: 0 every stage passed, 1 a stage failed, 2 invalid plan or usage
secrets come from REGWIZ_SSH_PASSWORD, REGWIZ_SUDO_PASSWORD, REGWIZ_KEY_PASSPHRASE,
REGWIZ_CA_KEY_PASSPHRASE and REGWIZ_REGISTRY_PASSWORD (or prompts on a terminal)
"""

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="certs, deploy, onboard and verify in order, stopping at the first failure",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    add_max_restarts_argument(parser)
    parser.add_argument(
        "--credentials-file", metavar="FILE",
        help="htpasswd mode: 0600 file that keeps the registry user and password",
    )
    parser.add_argument(
        "--image-tar", metavar="FILE",
        help="registry image archive (docker save) for a registry host that cannot pull it",
    )
    parser.set_defaults(func=run)


@dataclass
class ApplyContext:
    plan: Plan
    secrets: Secrets
    policy: HostKeyPolicy
    args: argparse.Namespace
    credentials: Credentials | None = None  # known after deploy in htpasswd mode
    notes: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    if args.image_tar and not _is_file(user_path(args.image_tar, "--image-tar")):
        raise UsageError(f"--image-tar {args.image_tar!r}: no such file")
    context = ApplyContext(load_plan_from_args(args), secrets_from_args(args),
                           policy_from_args(args), args)
    stages = stages_for(context.plan)
    for number, (name, stage) in enumerate(stages.items(), start=1):
        print(f"\n== {number}/{len(stages)} {name}", flush=True)
        try:
            passed = stage(context)
        except UsageError:
            raise
        except RegwizError as error:
            echo(f"regwiz: {error}", file=sys.stderr)  # may quote remote output
            passed = False
        if not passed:
            later = ", ".join(list(stages)[number:]) or "none"
            print(f"\napply stopped: {name} failed (not run: {later})")
            return 1
    print(f"\napply: all {len(stages)} stages passed; the registry "
          f"{context.plan.registry_reference} is trusted by every node")
    return 0


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # name too long, NUL byte, ...
        return False


def stage_certs(context: ApplyContext) -> bool:
    from app.certs import ensure_certificates

    summary = ensure_certificates(context.plan, ca_passphrase=context.secrets.ca_key_passphrase)
    print("\n".join(summary.lines()))
    return True


def stage_deploy(context: ApplyContext) -> bool:
    from app.deploy import DeployOptions, deploy, local_docker_client

    args = context.args
    options = DeployOptions(
        image_tar=user_path(args.image_tar, "--image-tar") if args.image_tar else None,
        credentials_file=user_path(args.credentials_file, "--credentials-file")
        if args.credentials_file else None,
        local_docker=local_docker_client,
    )
    connect = registry_connector(context.plan, context.secrets, args)
    report = deploy(context.plan, context.secrets, options, connect=connect,
                    on_progress=print_progress)
    show_new_credentials(report.new_credentials, report.credentials_file)
    for line in report.image_lines():
        print(line)
    print_summary("deploy", report.results)
    context.credentials = report.new_credentials
    return report.ok


def stage_onboard(context: ApplyContext) -> bool:
    from app import onboard

    report = onboard.onboard_nodes(
        context.plan, context.secrets, parallel=context.args.parallel,
        host_key_policy=context.policy, on_progress=EventPrinter(enabled=True),
        max_restarts=context.args.max_restarts,
    )
    print_onboard_report(report, onboard.results_path(context.plan))
    return report.ok


def stage_verify(context: ApplyContext) -> bool:
    from app.verify import verify

    credentials = context.credentials or load_credentials(
        context.plan, context.args.credentials_file
    )
    report = verify(
        context.plan, context.secrets, host_key_policy=context.policy,
        on_progress=print_verify_progress, parallel=context.args.parallel,
        credentials=credentials,
    )
    print_verify_report(report)
    return report.ok


# In the order they run (below the functions they name).
STAGES: dict[str, Callable[[ApplyContext], bool]] = {
    "certs": stage_certs,
    "deploy": stage_deploy,
    "onboard": stage_onboard,
    "verify": stage_verify,
}

# A registry regwiz did not deploy has no certificates or container of regwiz's to make.
EXTERNAL_REGISTRY_STAGES = ("onboard", "verify")


def stages_for(plan: Plan) -> dict[str, Callable[[ApplyContext], bool]]:
    if plan.registry.managed:
        return STAGES
    return {name: STAGES[name] for name in EXTERNAL_REGISTRY_STAGES}
