"""``regwiz deploy``: run the TLS registry container on the registry host, idempotently."""

from __future__ import annotations

import argparse
import sys

from app.commands.common import add_connection_arguments, load_plan_from_args, registry_connector
from app.commands.output import print_dry_run, print_progress, print_summary, show_new_credentials
from app.errors import UsageError
from app.paths import expand_user
from app.plan import Secrets

DESCRIPTION = """\
Deploy the registry on the plan's registry host: check the certificate, connect over SSH (host key
checked against known_hosts), check Docker, the port and disk space, bring the image (pull, or
copy it for air-gapped hosts), upload tls.crt/tls.key, run the container and wait until
https://ADDRESS:PORT/v2/ answers with a certificate our CA signed. Running it again changes
nothing unless the plan or the certificate changed; the data directory is never touched.
"""

EPILOG = """\
secrets come from REGWIZ_SSH_PASSWORD, REGWIZ_SUDO_PASSWORD and REGWIZ_KEY_PASSPHRASE, or
from a prompt when run in a terminal. With auth = "htpasswd" (the default) the first deploy
creates the accounts operator (push) and cluster (pull): passwords generated, or from
REGWIZ_ACCOUNT_<NAME>_PASSWORD, kept only in credentials/NAME.json next to the plan.
exit status: 0 deployed, 1 a step failed, 2 invalid plan or usage
"""


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
                        help="the single registry-credentials.json of earlier versions: its "
                             "user becomes a push account (kept working), beside operator and "
                             "cluster")
    parser.add_argument("--health-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for the registry to answer (default 30)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.deploy import DeployOptions, deploy, local_docker_client

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
    from app.deploy.mirrors import mirror_notes

    for note in mirror_notes(plan):  # who may pull from each cache, before anything runs
        print(f"regwiz: note: {note}", file=sys.stderr)
    secrets = Secrets.from_env()
    report = deploy(plan, secrets, options, connect=registry_connector(plan, secrets, args),
                    dry_run=args.dry_run, on_progress=print_progress)
    if report.dry_run:
        print_dry_run(report.dry_run_lines)
        return 0
    show_new_credentials(report.new_credentials, report.credentials_file)
    if report.created_accounts:
        from app.credential_files import credentials_dir

        folder = credentials_dir(plan)
        print(f"accounts created: {', '.join(report.created_accounts)}; each credential is "
              f"{folder}/NAME.json (0600, Docker config.json: docker --config, skopeo "
              "--authfile); passwords are never shown (regwiz accounts list)")
    print_summary("deploy", report.results)
    if not report.ok:
        return 1
    print(f"registry ready: {report.registry.api_url} (container {report.container_id[:12]})")
    return 0
