"""``regwiz verify``: push/pull the self-test image, then pull it on every node."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from app.errors import UsageError
from app.paths import expand_user

if TYPE_CHECKING:
    from app.htpasswd import Credentials
    from app.plan import Plan, Secrets
    from app.transport.hostkeys import HostKeyPolicy
    from app.verify import NodeVerifyResult, VerifyProgress, VerifyReport

DESCRIPTION = """\
Prove the registry works: a tiny self-test image built offline by regwiz is pushed from the
registry host's Docker (or this machine's with --from-local), removed, pulled back and its digest
compared. Then every node pulls it with the runtime it really uses (docker, containerd's ctr with
the certs.d hosts dir, podman/skopeo for CRI-O, k3s/rke2 crictl), or, on a node without a runtime,
makes a TLS handshake trusting only the OS store. Pulled images are removed from the nodes; the
test tag is deleted from the registry when registry.delete_enabled is true.
"""

EPILOG = """\
exit status: 0 every check passed, 1 a check failed, 2 invalid plan or usage
secrets come from REGWIZ_SSH_PASSWORD, REGWIZ_SUDO_PASSWORD, REGWIZ_KEY_PASSPHRASE and, in
htpasswd mode, --credentials-file or REGWIZ_REGISTRY_PASSWORD
"""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """deploy's --plan/--accept-new-host-keys/--known-hosts, plus --ask-sudo-password and
    --parallel."""
    from app.commands.deploy import add_connection_arguments

    add_connection_arguments(parser)
    parser.add_argument("--ask-sudo-password", action="store_true",
                        help="prompt once for the hosts' sudo password (terminal only)")
    parser.add_argument(
        "--parallel", type=positive_int, default=16, metavar="N",
        help="how many nodes to work on at once (default 16)",
    )


def secrets_from_args(args: argparse.Namespace) -> Secrets:
    """Secrets from the environment, plus the --ask-sudo-password prompt (terminal only)."""
    import getpass

    from app.commands.deploy import interactive
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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="push and pull a self-test image, then pull it on every node",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--from-local", action="store_true",
        help="push from this machine's Docker instead of the registry host's",
    )
    parser.add_argument("--only", nargs="+", metavar="HOST", help="check only these nodes")
    parser.add_argument(
        "--credentials-file", metavar="FILE",
        help="registry credentials written by regwiz deploy (htpasswd mode)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def load_plan_from_args(args: argparse.Namespace, *, show_warnings: bool = True) -> Plan:
    """The plan named by ``--plan`` (or the default one); its suspicious-but-valid settings
    (see ``plan_warnings``) go to stderr when ``show_warnings``."""
    from app.plan import default_plan_path, load_plan, plan_warnings

    given = getattr(args, "plan", None)
    plan = load_plan(user_path(given, "--plan") if given else default_plan_path())
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
    """The htpasswd credentials from ``--credentials-file`` (only read in htpasswd mode)."""
    if plan.registry.auth != "htpasswd" or not path:
        return None
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


def run(args: argparse.Namespace) -> int:
    from app.verify import verify

    plan = load_plan_from_args(args)
    unknown = set(args.only or []) - {node.host for node in plan.resolved_nodes()}
    if unknown:
        shown = ", ".join(repr(host) for host in sorted(unknown))
        raise UsageError(f"--only names hosts that are not in the plan: {shown}")
    report = verify(
        plan,
        secrets_from_args(args),
        host_key_policy=policy_from_args(args),
        on_progress=None if args.json else print_progress,
        from_local=args.from_local,
        parallel=args.parallel,
        only=args.only,
        credentials=load_credentials(plan, args.credentials_file),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report)
    return 0 if report.ok else 1


def print_progress(event: VerifyProgress, out: TextIO | None = None) -> None:
    """One line per finished stage or node as it happens."""
    from app.verify import CheckState

    if event.state in (CheckState.PENDING, CheckState.RUNNING):
        return
    print(f"{event.state.value:>8}  [{event.target}] {event.message}", file=out or sys.stdout,
          flush=True)


def print_report(report: VerifyReport, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    push = report.push_pull
    print("\nverify summary", file=stream)
    print(f"  registry  {push.state.value}: {push.message}", file=stream)
    if push.pushed_digest:
        print(f"            digest {push.pushed_digest} (from the {push.source})", file=stream)
    if push.note:
        print(f"            note: {push.note}", file=stream)
    if push.hint:
        print(f"            hint: {push.hint}", file=stream)
    if push.cleanup:
        print(f"            test tag: {push.cleanup}", file=stream)
    for node in report.nodes:
        print_node(node, stream)
    passed = sum(1 for node in report.nodes if node.passed)
    print(f"  nodes: {passed} passed, {len(report.nodes) - passed} not passed", file=stream)


def print_node(node: NodeVerifyResult, stream: TextIO) -> None:
    runtimes = ", ".join(node.runtimes) or "no runtime"
    print(f"  {node.host}  {node.state.value}  ({runtimes}, {node.seconds:.1f} s)", file=stream)
    for check in node.checks:
        mark = "ok  " if check.passed else "FAIL"
        digest = f" ({check.digest})" if check.digest else ""
        print(f"    {mark} {check.kind}: {check.detail}{digest}", file=stream)
        if check.hint:
            print(f"         hint: {check.hint}", file=stream)
    if not node.checks and node.message:
        print(f"    {node.message}", file=stream)
        if node.hint:
            print(f"    hint: {node.hint}", file=stream)
