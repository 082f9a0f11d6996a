"""``regwiz k8s``: print a pod spec (and an imagePullSecret in htpasswd mode) for the registry."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from app.commands.common import add_plan_argument, load_credentials, load_plan_from_args, user_path
from app.errors import RegwizError, UsageError
from app.plan import Plan

DESCRIPTION = """\
Print Kubernetes YAML that pulls an image from the plan's registry: a Pod using
<address>:<port>/<image> and, when the registry uses htpasswd auth, a Secret of type
kubernetes.io/dockerconfigjson built from a pull account's credential file
(credentials/ACCOUNT.json next to the plan, --account, default cluster) or from
--credentials-file (never from the plan). Nodes onboarded by regwiz already hold the cluster
account's credential in the kubelet's config.json, so pods need no imagePullSecret; the Secret
is for namespaces that want their own. Apply with: regwiz k8s --plan FILE | kubectl apply -f -
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from app.k8s import DEFAULT_IMAGE, DEFAULT_SECRET_NAME

    parser = subparsers.add_parser(
        "k8s",
        help="print a pod spec and imagePullSecret that use the registry",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_plan_argument(parser)
    parser.add_argument(
        "--image", default=DEFAULT_IMAGE, metavar="NAME",
        help=f"image path inside the registry, e.g. team/app:1.0 (default {DEFAULT_IMAGE})",
    )
    parser.add_argument("--pod-name", metavar="NAME", help="pod name (default: from the image)")
    parser.add_argument(
        "--credentials-file", metavar="FILE",
        help="the 0600 credentials file from regwiz deploy (needed in htpasswd mode)",
    )
    parser.add_argument(
        "--account", default=None, metavar="NAME",
        help="the account whose credentials/NAME.json the Secret carries (default cluster, "
             "the pull-only account)",
    )
    parser.add_argument(
        "--secret-name", default=DEFAULT_SECRET_NAME, metavar="NAME",
        help=f"name of the imagePullSecret (default {DEFAULT_SECRET_NAME})",
    )
    parser.add_argument("--namespace", metavar="NS", help="namespace for the Secret")
    parser.add_argument(
        "--secret-out", metavar="FILE",
        help="write the Secret to this file (mode 0600) instead of printing it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.k8s import image_reference, pod_manifest, pull_secret_manifest

    plan = load_plan_from_args(args)
    reference = image_reference(plan.registry_reference, args.image)
    secret = None
    login = _external_login(plan, args) if not plan.registry.managed else (
        _account_login(plan, args) if plan.registry.auth == "htpasswd" else None)
    if login is not None:
        username, password = login
        secret = pull_secret_manifest(
            plan.registry_reference, username, password,
            name=args.secret_name, namespace=args.namespace,
        )
    pod = pod_manifest(reference, name=args.pod_name, pull_secret=args.secret_name if secret
                       else None)
    if secret and args.secret_out:
        write_private(user_path(args.secret_out, "--secret-out"), secret)
        print(f"regwiz: wrote the imagePullSecret to {args.secret_out} (mode 0600)",
              file=sys.stderr)
        secret = None
    sys.stdout.write(pod if secret is None else f"{secret}---\n{pod}")
    return 0


def _external_login(plan: Plan, args: argparse.Namespace) -> tuple[str, str] | None:
    """A registry regwiz did not deploy: --credentials-file, else the nodes' pull login."""
    from app.node_credentials import external_pull_login

    if args.credentials_file:
        credentials = load_credentials(plan, args.credentials_file)
        if credentials is not None:
            return credentials.username, credentials.password
    login = external_pull_login(plan)
    return None if login is None else (login.username, login.password)


def _account_login(plan: Plan, args: argparse.Namespace) -> tuple[str, str]:
    """(user, password) for the Secret: --credentials-file when given (and no --account), else
    the account's credential file next to the plan."""
    from app.credential_files import credential_path, read_credential
    from app.node_credentials import PULL_ACCOUNT

    if args.credentials_file and args.account is None:
        credentials = load_credentials(plan, args.credentials_file)
        assert credentials is not None
        return credentials.username, credentials.password
    account = args.account or PULL_ACCOUNT
    path = credential_path(plan, account)
    credential = read_credential(path, plan.registry_reference)
    if credential is None:
        raise UsageError(
            "the registry uses htpasswd auth: an imagePullSecret needs an account's credential, "
            f"and {path} does not exist or holds none for {plan.registry_reference}",
            "create the account (regwiz accounts add NAME --role pull), or pass "
            "--credentials-file FILE (the file regwiz deploy wrote)",
        )
    return credential.username, credential.password


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a 0600 file in an existing folder (atomic_write: mode before content)."""
    from app.certs import os_reason
    from app.plan import atomic_write

    try:
        if not path.parent.is_dir():  # atomic_write would create it: a mistyped folder is an error
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        atomic_write(path, text.encode("utf-8"), 0o600)
    except OSError as error:
        raise RegwizError(f"cannot write {path}: {os_reason(error)}",
                          "check that the folder exists and is writable") from None
