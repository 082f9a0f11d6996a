"""``regwiz certs``: create or check the registry's certificates; ``regwiz certs inspect FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands.common import add_plan_argument
from app.errors import UsageError

USAGE = """\
regwiz certs [--plan FILE] [--renew] [--new-ca]
       regwiz certs [--plan FILE] --csr-only
       regwiz certs [--plan FILE] --import-cert FILE --import-key FILE [--import-chain FILE]
       regwiz certs inspect FILE
       regwiz certs fetch-ca [--plan FILE] [--yes]"""

DESCRIPTION = """\
Create the registry's private CA and server certificate in the plan's certificate folder
(certificate.directory), or check and reuse what is there. Safe to run again: the CA is always
reused, and the server certificate is only reissued when asked (--renew) or when it no longer
fits the plan (missing SANs, expired, other key type). Use --csr-only to get a signing request
for another CA, then --import-cert/--import-key to install what it signed.
"""

EPILOG = """\
files: ca.crt (install on nodes), ca.key (0600), tls.crt, tls.key (0600), tls.csr
exit status: 0 done, 1 a certificate step failed, 2 invalid plan or usage
the CA key passphrase, if any, comes from REGWIZ_CA_KEY_PASSPHRASE
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "certs",
        usage=USAGE,
        help="create, renew, import or inspect the registry's TLS certificates",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # SUPPRESS keeps a top-level "regwiz --plan F certs" from being overwritten with None.
    parser.add_argument(
        "--plan",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="plan file (default: the wizard's plan in the user config folder)",
    )
    parser.add_argument("--renew", action="store_true", help="issue a new server certificate")
    parser.add_argument(
        "--new-ca",
        action="store_true",
        help="replace the CA (the old one is kept aside); every node must be onboarded again",
    )
    parser.add_argument(
        "--csr-only",
        action="store_true",
        help="only write tls.csr (and tls.key if missing) for signing by another CA",
    )
    parser.add_argument("--import-cert", metavar="FILE", help="server certificate to install")
    parser.add_argument("--import-key", metavar="FILE", help="its private key (unencrypted PEM)")
    parser.add_argument(
        "--import-chain",
        metavar="FILE",
        help="intermediates and the root CA, if not in the --import-cert file or ca.crt",
    )
    parser.set_defaults(func=run)
    actions = parser.add_subparsers(
        dest="certs_action", metavar="inspect FILE", title="optional action"
    )
    inspect = actions.add_parser(
        "inspect",
        help="show any PEM or DER certificate's subject, SANs, dates and fingerprint",
        description="Show a certificate's subject, issuer, SANs, validity and SHA-256 fingerprint.",
    )
    inspect.add_argument("file", metavar="FILE", help="certificate file (PEM or DER)")
    inspect.set_defaults(func=run_inspect)
    fetch = actions.add_parser(
        "fetch-ca",
        help="show the chain a registry regwiz did not deploy presents, and save its root CA",
        description="Connect to registry.address:registry.port, show every certificate the "
                    "server presents (subject, issuer, SHA-256), and save the root CA to "
                    "registry.ca_file (default: the cert folder's ca.crt) once you confirm its "
                    "fingerprint, as you would a host key. Nothing is trusted before that.",
    )
    add_plan_argument(fetch)
    fetch.add_argument("--yes", action="store_true",
                       help="save without asking (scripts: compare the fingerprint first)")
    fetch.set_defaults(func=run_fetch_ca)


def run_fetch_ca(args: argparse.Namespace) -> int:
    import sys

    from app.ca_fetch import fetch_chain, save_root
    from app.plan import default_plan_path, load_plan

    plan = load_plan(Path(getattr(args, "plan", None) or default_plan_path()))
    chain = fetch_chain(plan.registry.address, plan.registry.port)
    print("\n".join(chain.lines()))
    if chain.root_pem is None:
        print(f"nothing saved: {plan.trusted_ca_path} is unchanged", file=sys.stderr)
        return 1
    root = chain.certificates[-1]
    if not args.yes and not _confirmed(f"trust this root CA (SHA-256 {root.fingerprint})?"):
        print("not saved", file=sys.stderr)
        return 1
    path = save_root(plan, chain)
    print(f"saved the root CA to {path}; onboard the nodes next: regwiz onboard --plan "
          f"{plan.path}")
    return 0


def _confirmed(question: str) -> bool:
    import sys

    if not sys.stdin.isatty():
        raise UsageError("fetch-ca asks before it saves a CA, and this is not a terminal",
                         "compare the fingerprint above with the registry's, then run again "
                         "with --yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run_inspect(args: argparse.Namespace) -> int:
    from app.certs import inspect_certificate

    info = inspect_certificate(Path(args.file))
    print(f"{args.file}")
    for line in info.lines():
        print(f"  {line}")
    return 0


def run(args: argparse.Namespace) -> int:
    from app.certs import ensure_certificates, export_csr, import_certificate
    from app.plan import Secrets, default_plan_path, load_plan, plan_warnings

    _check_combination(args)
    plan = load_plan(Path(getattr(args, "plan", None) or default_plan_path()))
    for warning in plan_warnings(plan):
        print(f"warning: {warning}")
    if args.csr_only:
        path = export_csr(plan)
        print(f"wrote {path} for {', '.join(plan.all_sans())}")
        print("  have it signed by your CA, then run:")
        print(
            f"  regwiz certs --plan {plan.path} --import-cert SIGNED.crt "
            f"--import-key {path.with_name('tls.key')} [--import-chain CA-CHAIN.pem]"
        )
        return 0
    if args.import_cert:
        summary = import_certificate(plan, args.import_cert, args.import_key, args.import_chain)
    else:
        secrets = Secrets.from_env()
        summary = ensure_certificates(
            plan, renew=args.renew, new_ca=args.new_ca, ca_passphrase=secrets.ca_key_passphrase
        )
    print("\n".join(summary.lines()))
    return 0


def _check_combination(args: argparse.Namespace) -> None:
    importing = bool(args.import_cert or args.import_key or args.import_chain)
    if importing and not (args.import_cert and args.import_key):
        raise UsageError(
            "--import-cert and --import-key go together",
            "give both the certificate and its private key",
        )
    chosen = [
        name
        for name, on in (
            ("--renew", args.renew),
            ("--new-ca", args.new_ca),
            ("--csr-only", args.csr_only),
            ("--import-cert", importing),
        )
        if on
    ]
    allowed = ({"--renew", "--new-ca"},)
    if len(chosen) > 1 and set(chosen) not in allowed:
        raise UsageError(
            f"{' and '.join(chosen)} cannot be combined",
            "run them one after the other",
        )
