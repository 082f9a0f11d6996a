"""``regwiz verify``: push/pull the self-test image, then pull it on every node."""

from __future__ import annotations

import argparse
import json

from app.commands.common import (
    add_common_arguments,
    load_credentials,
    load_plan_from_args,
    policy_from_args,
    secrets_from_args,
)
from app.commands.output import print_verify_progress, print_verify_report
from app.errors import UsageError

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
        on_progress=None if args.json else print_verify_progress,
        from_local=args.from_local,
        parallel=args.parallel,
        only=args.only,
        credentials=load_credentials(plan, args.credentials_file),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_verify_report(report)
    return 0 if report.ok else 1
