"""``regwiz renew``: a new server certificate from the same CA, deployed and checked, in one go."""

from __future__ import annotations

import argparse

from app.commands.common import add_connection_arguments, load_plan_from_args, registry_connector
from app.commands.output import print_progress, print_summary

DESCRIPTION = """\
Day two for the certificate: reissue tls.crt from the same CA (as regwiz certs --renew), deploy it
(as regwiz deploy: the old container is kept until the new one answers), then read back the
certificate the registry serves. The CA does not change, so the nodes need nothing; the command
checks that too and says so.
"""

EPILOG = """\
secrets as for regwiz deploy; the CA key passphrase, if any, from REGWIZ_CA_KEY_PASSPHRASE
exit status: 0 renewed and served, 1 a step failed, 2 invalid plan or usage
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "renew", help="renew the server certificate and deploy it, nodes untouched",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.plan import Secrets
    from app.renewal import renew_and_deploy

    plan = load_plan_from_args(args, show_warnings=False)
    secrets = Secrets.from_env()
    report = renew_and_deploy(plan, secrets, None, connect=registry_connector(plan, secrets, args),
                              on_progress=print_progress)
    print("\n".join(report.certificates.lines()))
    print_summary("deploy", report.deploy.results)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1
