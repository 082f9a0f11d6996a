"""``regwiz status``: is the registry up, are its certificates fine, do the nodes trust it?"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from app.commands.common import (
    add_common_arguments,
    load_credentials,
    load_plan_from_args,
    policy_from_args,
    secrets_from_args,
)
from app.terminal_text import echo

if TYPE_CHECKING:
    from app.plan import Plan
    from app.status import (
        CertificateStatus,
        DiskStatus,
        NodeTrustStatus,
        RepositorySize,
        StatusReport,
    )

DESCRIPTION = """\
Show the registry's state: reachable and TLS valid (checked against the plan's CA only), response
time, days left on the served certificate and on the CA, repositories and tags (with each
repository's number of tags and the unique size of the blobs they use, read from the manifests and
cached next to the plan in manifest-cache.json), the container's state and restart count, the
image it runs against the plan's pin (registry.image_digest; another image: exit 1), disk
used by the data directory and the used/free space of its volume (a warning, and exit 1, at
registry.disk_warn_percent, default 85), and for every node whether the CA file
its runtime reads is the plan's current CA (a stale or missing one means: run regwiz onboard),
and, when the registry uses htpasswd and credentials/cluster.json exists, whether the node holds
the current pull credential (compared by fingerprint; the secret is never shown).
"""

EPILOG = """\
exit status: 0 all healthy, 1 something needs attention, 2 invalid plan or usage
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="registry health, certificates, catalog, container, disk and node trust",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-nodes", action="store_true", help="skip the per-node CA check")
    parser.add_argument(
        "--credentials-file", metavar="FILE",
        help="registry credentials written by regwiz deploy (htpasswd mode, for the catalog)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.status import collect_status

    plan = load_plan_from_args(args)
    report = collect_status(
        plan,
        secrets_from_args(args),
        host_key_policy=policy_from_args(args),
        include_nodes=not args.no_nodes,
        credentials=load_credentials(plan, args.credentials_file),
        parallel=args.parallel,
    )
    notes = status_notes(plan)
    if args.json:
        print(json.dumps({**report.to_dict(), "notes": notes}, indent=2))
    else:
        print_status(report)
        for note in notes:
            print(f"{'note':<14}{note}")
    return 0 if report.healthy else 1


def status_notes(plan: Plan) -> list[str]:
    """What status adds below the report (text) or as ``notes`` (JSON): an unencrypted CA key,
    a CA rotation under way."""
    from app.ca_rotation import rotation_note
    from app.status import ca_key_note

    return [note for note in (ca_key_note(plan), rotation_note(plan)) if note is not None]


def _cert_line(cert: CertificateStatus, managed: bool = True,
               renew: str = "regwiz certs --renew") -> str:
    if cert.error:
        return f"{cert.source}: {cert.error}"
    how = renew if managed else "with the registry's own tools"
    warn = f"  (renew soon: {how})" if cert.expiring else ""
    return f"{cert.days_left} days left (until {cert.not_after}, {cert.source}){warn}"


def print_status(report: StatusReport, out: TextIO | None = None) -> None:
    stream = out or sys.stdout

    def line(label: str, text: str) -> None:
        echo(f"{label:<14}{text}", file=stream)  # catalog names, remote errors: data only

    reg = report.registry
    if reg.reachable:
        line("registry", f"up at {reg.url} (HTTP {reg.http_status}, {reg.latency_ms:.0f} ms), "
             "TLS valid")
    else:
        line("registry", f"DOWN at {reg.url}: {reg.error}")
        if reg.hint:
            line("", f"hint: {reg.hint}")
    if report.auth:
        line("auth", report.auth if report.auth != "none"
             else "none: anyone who can reach the port can push")
    for index, account in enumerate(report.accounts):
        line("accounts" if index == 0 else "",
             f"{account.name} ({account.role}), created {account.created}, "
             f"rotated {account.rotated or 'never'}")
    if report.accounts_error:
        line("accounts", report.accounts_error)
    line("server cert", _cert_line(report.server_certificate, report.managed))
    if report.server_certificate.out_of_date:
        line("", "out of date with the plan:")
        for difference in report.server_certificate.plan_differences:
            line("", f"  {difference}")
        line("", "  hint: regwiz certs --plan FILE (reissues it), then regwiz deploy --plan FILE")
    if report.served_matches_local is False:
        line("", "the served certificate is not the plan's tls.crt: run regwiz deploy")
    line("CA", _cert_line(report.ca_certificate, report.managed,
                          "regwiz rotate-ca, nodes pulling throughout"))
    print_catalog(report, line)
    if report.managed:
        print_registry_host(report, line)
        print_mirrors(report, line)
    else:
        line("registry host", "not deployed by regwiz (managed = false): its own tools "
             "report the server")
    print_nodes(report, line)
    line("overall", "healthy" if report.healthy else "needs attention")


def print_registry_host(report: StatusReport, line: Callable[[str, str], None]) -> None:
    con = report.container
    if con.found:
        pinned = f" ({con.image_id[:19]})" if con.image_id else ""
        line("container", f"{con.name}: {con.state}, {con.restart_count} restart(s), "
             f"started {con.started_at}, image {con.image}{pinned}")
    else:
        line("container", f"{con.name}: {con.error}")
    line("image pin", con.pin_line())
    from app.status import format_bytes

    disk = report.disk
    used = format_bytes(disk.used_bytes) if disk.used_bytes is not None else disk.error
    line("disk", f"{disk.path}: {used}")
    line("", f"volume: {volume_text(disk)}")
    if disk.too_full:
        line("", f"  WARNING: the volume is {disk.used_percent}% full (registry."
             f"disk_warn_percent = {disk.warn_percent}): prune old tags (regwiz prune), then "
             "run the registry's garbage collection; deleting tags alone frees nothing")


def print_mirrors(report: StatusReport, line: Callable[[str, str], None]) -> None:
    from app.status import mirror_summary

    for index, mirror in enumerate(report.mirrors):
        line("mirrors" if index == 0 else "", mirror_summary(mirror))
        if not mirror.container.running:
            line("", "  hint: regwiz deploy --plan FILE starts it again")


def volume_text(disk: DiskStatus) -> str:
    """"12.0 GiB used, 3.0 GiB free of 15.0 GiB (80%)", or why it is unknown."""
    from app.status import format_bytes

    if disk.volume_used_bytes is None or disk.volume_free_bytes is None:
        return disk.volume_error or "unknown"
    size = format_bytes(disk.volume_bytes or 0)
    return (f"{format_bytes(disk.volume_used_bytes)} used, "
            f"{format_bytes(disk.volume_free_bytes)} free of {size} ({disk.used_percent}%)")


def print_nodes(report: StatusReport, line: Callable[[str, str], None]) -> None:
    for index, node in enumerate(report.nodes or []):
        runtimes = ", ".join(node.runtimes) or "no runtime"
        shown = node.message if not node.files or node.state.value == "match" else ""
        line("nodes" if index == 0 else "",
             f"{node.host}  {node.state.value}  ({runtimes}) {shown}".rstrip())
        for ca_file in node.files:
            if ca_file.state.value != "match":
                line("", f"  {ca_file.state.value}: {ca_file.path} ({ca_file.detail})")
        if node.hint and node.state.value != "match":
            line("", f"  hint: {node.hint}")
        print_node_credential(node, line)
        if node.mirrors:
            line("", f"  mirrors: {node.mirrors_text}")
            if node.mirrors_stale:
                line("", "    hint: run regwiz onboard to point the node at the plan's mirrors")


def print_node_credential(node: NodeTrustStatus, line: Callable[[str, str], None]) -> None:
    """The node's pull credential: its state, and each file that is not right (fingerprints
    only, never the credential)."""
    if node.credential_state is None:
        return
    right = {"current", "removed"}
    line("", f"  pull credential: {node.credential_state.value}")
    for file in node.credential_files:
        if file.state.value not in right:
            line("", f"    {file.state.value}: {file.path} ({file.detail})")
    if node.credential_state.value not in right:
        line("", "    hint: run regwiz onboard to bring the node's credential up to date")


def print_catalog(report: StatusReport, line: Callable[[str, str], None]) -> None:
    catalog = report.catalog
    if catalog.error:
        line("catalog", f"unavailable: {catalog.error}")
        return
    if not catalog.repositories:
        line("catalog", "no repositories yet")
        return
    more = f" (tags of the first {len(catalog.repositories)})" if catalog.truncated else ""
    line("catalog", f"{catalog.repository_count} repositories{more}")
    sizes = {size.name: size for size in catalog.sizes}
    for name, tags in catalog.repositories.items():
        shown = ", ".join(tags[:8]) + (f" (+{len(tags) - 8})" if len(tags) > 8 else "")
        size = sizes.get(name)
        line("", f"  {name}: {shown or '(no tags)'}"
             + (f"  [{size_text(size)}]" if size is not None else ""))


def size_text(size: RepositorySize) -> str:
    """"3 tags, 12.5 MiB" (the unique size of the blobs its tags use)."""
    from app.status import format_bytes

    text = f"{size.tag_count} tag{'s' if size.tag_count != 1 else ''}, " \
           f"{format_bytes(size.unique_bytes)}"
    if size.unsized_tags:
        text += f" (+{size.unsized_tags} not sized)"
    if size.error:
        text += f", {size.error}"
    return text
