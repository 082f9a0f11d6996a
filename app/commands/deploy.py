"""``regwiz deploy``: run the TLS registry container on the registry host, idempotently."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.commands.verify import load_plan_from_args
from app.errors import UsageError
from app.paths import expand_user
from app.plan import Plan, Secrets
from app.steps import Outcome, Step, StepResult, format_result, run_steps, summarize
from app.transport.base import ExecTransport, Transport, TransportError

if TYPE_CHECKING:

    from app.deploy import Deployment
    from app.transport.hostkeys import HostKeyPolicy

DESCRIPTION = """\
Deploy the registry on the plan's registry host: check the certificate, connect over SSH (host key
checked against known_hosts), check Docker, the port and disk space, bring the image (pull, or
copy it for air-gapped hosts), upload tls.crt/tls.key, run the container and wait until
https://ADDRESS:PORT/v2/ answers with a certificate our CA signed. Running it again changes
nothing unless the plan or the certificate changed; the data directory is never touched.
"""

EPILOG = """\
secrets come from REGWIZ_SSH_PASSWORD, REGWIZ_SUDO_PASSWORD, REGWIZ_KEY_PASSPHRASE and
REGWIZ_REGISTRY_PASSWORD, or from a prompt when run in a terminal.
exit status: 0 deployed, 1 a step failed, 2 invalid plan or usage
"""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan", default=argparse.SUPPRESS, metavar="FILE",
        help="plan file (default: the wizard's plan in the user config folder)",
    )
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "deploy", help="run the registry container on the registry host",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_arguments(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the steps and what they would do; connect to nothing")
    parser.add_argument("--image-tar", metavar="FILE",
                        help="image archive (docker save) to load when the host lacks the image")
    parser.add_argument("--credentials-file", metavar="FILE",
                        help="htpasswd mode: 0600 file that keeps the registry user and password")
    parser.add_argument("--health-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for the registry to answer (default 30)")
    parser.set_defaults(func=run)


def interactive() -> bool:
    """Prompts only on a terminal: CI has no stdin and must fail with a hint instead."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def registry_connector(plan: Plan, secrets: Secrets, args: argparse.Namespace
                       ) -> Callable[[], Transport]:
    """Opens the registry host's transport; on a terminal asks for a missing password once."""
    from app.connections import host_key_policy, open_registry_transport

    policy = host_key_policy(args.accept_new_host_keys, known_hosts=args.known_hosts)

    def connect() -> Transport:
        transport = _open_asking(plan, secrets, policy)
        if plan.registry.sudo and not secrets.sudo_password and interactive() \
                and _sudo_wants_password(transport):
            secrets.sudo_password = getpass.getpass(f"sudo password on {plan.registry.host}: ")
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
            if error.kind != "auth" or not interactive():
                raise
            if "passphrase" in error.message and not secrets.key_passphrase:
                secrets.key_passphrase = getpass.getpass(f"passphrase for the SSH key ({target}): ")
            elif "identity file" not in error.message and not secrets.ssh_password:
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
        return error.kind == "sudo-password"
    return False


def print_progress(result: StepResult) -> None:
    if not result.outcome.is_final:
        return
    print(format_result(result), flush=True)
    if result.outcome is Outcome.FAILED and not interactive():
        for needle, variable in HEADLESS_SECRET_HINTS:
            if needle in result.message.lower():
                print(f"           headless: set {variable} (no prompt without a terminal)")
                break


# What a failure message says → the env var that supplies the secret when nobody can be asked.
HEADLESS_SECRET_HINTS = (
    ("needs a password and none was given", "REGWIZ_SUDO_PASSWORD"),
    ("protected by a passphrase", "REGWIZ_KEY_PASSPHRASE"),
    ("no key or password to log in", "REGWIZ_SSH_PASSWORD or an identity_file in the plan"),
    ("refused the login", "REGWIZ_SSH_PASSWORD or an identity_file in the plan"),
)


def print_summary(name: str, results: list[StepResult]) -> None:
    counts = summarize(results)
    skipped = sum(1 for r in results if r.outcome is Outcome.SKIPPED)
    line = (f"{name}: {counts['changed']} changed, {counts['unchanged']} unchanged, "
            f"{counts['failed']} failed")
    print(line + (f", {skipped} not run" if skipped else ""))


def print_dry_run(steps: list[Step]) -> None:
    from app.steps import dry_run_lines

    print("dry run: nothing is connected to or changed")
    for block in dry_run_lines(steps):
        print(block)


def run(args: argparse.Namespace) -> int:
    from app.deploy import Deployment, DeployOptions, local_docker_client

    plan = load_plan_from_args(args, show_warnings=False)
    image_tar = expand_user(args.image_tar) if args.image_tar else None
    if image_tar is not None and not image_tar.is_file():
        raise UsageError(f"--image-tar {image_tar}: no such file",
                         "create it with `docker save IMAGE -o FILE` on a machine that has it")
    if args.health_timeout <= 0:
        raise UsageError("--health-timeout must be a positive number of seconds")
    options = DeployOptions(
        image_tar=image_tar,
        credentials_file=expand_user(args.credentials_file)
        if args.credentials_file else None,
        local_docker=local_docker_client,
        health_timeout=args.health_timeout,
    )
    secrets = Secrets.from_env()
    with Deployment(plan, secrets, options,
                    connect=registry_connector(plan, secrets, args)) as deployment:
        steps = deployment.steps()
        if args.dry_run:
            print_dry_run(steps)
            return 0
        results = run_steps(steps, on_progress=print_progress)
        show_new_credentials(deployment)
        print_summary("deploy", results)
    if any(r.outcome is Outcome.FAILED for r in results):
        return 1
    print(f"registry ready: https://{plan.registry_reference}/v2/ "
          f"(container {(deployment.container_id or '')[:12]})")
    return 0


def show_new_credentials(deployment: Deployment) -> None:
    credentials = deployment.new_credentials
    if credentials is None:
        return
    # Shown exactly once, on purpose: this is the only place the new password appears.
    print(f"registry user {credentials.username!r}, password: {credentials.password}")
    kept = deployment.options.credentials_file
    print(f"  saved to {kept} (mode 0600)" if kept else
          "  not saved anywhere: note it now, or deploy with --credentials-file next time")
