"""``regwiz onboard``: make every node trust the registry's CA, in parallel and idempotently."""

from __future__ import annotations

import argparse
import json

from app import onboard
from app.commands.common import (
    add_connection_arguments,
    add_max_restarts_argument,
    load_plan_from_args,
    policy_from_args,
    secrets_from_args,
)
from app.commands.output import EventPrinter
from app.commands.output import print_onboard_report as print_report
from app.errors import UsageError
from app.nodes_import import (
    NodeEntry,
    add_nodes,
    nodes_via_kubectl,
    parse_node_line,
    read_nodes_file,
)
from app.plan import NodeSettings, Plan, Secrets
from app.transport.hostkeys import HostKeyPolicy

DESCRIPTION = """\
Install the registry's CA certificate (ca.crt only, never a key) on every node of the plan,
where the node's container runtime reads it: Docker (/etc/docker/certs.d), containerd
(certs.d + hosts.toml, enabling config_path once with a backup and one restart), CRI-O/podman
(/etc/containers/certs.d), k3s/RKE2 (registries.yaml, merged), and the OS trust store when
os_trust_store = true. Runtimes are detected per node unless the plan names one. Nodes run in
parallel; a node already set up reports "unchanged" and nothing there is rewritten or restarted.
Restarts come after every node's files are written, in waves: one node alone first (the canary),
then up to --max-restarts at a time. A runtime not active after its restart gets its previous
config back and is restarted again (the node is reported failed), and no later wave runs.
With htpasswd auth and credentials/cluster.json next to the plan, the pull credential is merged
into /var/lib/kubelet/config.json on every node (and root's ~/.docker/config.json on Docker
nodes, registries.yaml on k3s/RKE2), or removed again once that account is revoked.
"""

EPILOG = """\
results are saved next to the plan (PLAN.onboard-results.json) for --retry-failed.
secrets come from REGWIZ_SSH_PASSWORD, REGWIZ_SUDO_PASSWORD and REGWIZ_KEY_PASSPHRASE (one
value for all nodes), or --ask-sudo-password on a terminal.
exit status: 0 every node set up, 1 a node failed, 2 invalid plan or usage
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "onboard", help="make every cluster node trust the registry's CA",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_arguments(parser)
    parser.add_argument("--parallel", type=int, default=onboard.DEFAULT_PARALLEL, metavar="N",
                        help=f"nodes worked on at once (default {onboard.DEFAULT_PARALLEL})")
    add_max_restarts_argument(parser)
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument("--only", nargs="+", metavar="HOST", help="onboard only these nodes")
    subset.add_argument("--retry-failed", action="store_true",
                        help="onboard only the nodes that failed in the last saved run")
    parser.add_argument("--nodes-file", metavar="FILE", action="append", default=[],
                        help="add nodes from FILE: one [user@]host[:port] per line")
    parser.add_argument("--from-kubectl", metavar="[USER@]HOST[:PORT]",
                        help="add the InternalIP of every node `kubectl get nodes` lists there")
    parser.add_argument("--save-nodes", action="store_true",
                        help="also write nodes added by --nodes-file/--from-kubectl to the plan")
    parser.add_argument("--dry-run", action="store_true",
                        help="connect and detect, then print what would be written and "
                             "restarted on each node; change nothing")
    parser.add_argument("--timeout", type=float, default=onboard.DEFAULT_NODE_TIMEOUT,
                        metavar="SECONDS", help="time budget per node (default 300)")
    parser.add_argument("--ask-sudo-password", action="store_true",
                        help="prompt once for the nodes' sudo password (terminal only)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON instead of the table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {args.parallel}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    plan = load_plan_from_args(args, show_warnings=False)
    secrets = secrets_from_args(args)
    policy = policy_from_args(args)
    _add_imported_nodes(plan, args, secrets, policy)
    only = _retry_hosts(plan) if args.retry_failed else args.only
    if only == []:
        print("no failed nodes in the last saved run: nothing to retry")
        return 0
    printer = EventPrinter(enabled=not args.json)
    report = onboard.onboard_nodes(
        plan, secrets, only=only, parallel=args.parallel, dry_run=args.dry_run,
        host_key_policy=policy, on_progress=printer, timeout=args.timeout,
        max_restarts=args.max_restarts,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, None if args.dry_run else onboard.results_path(plan))
    return report.exit_code


def _add_imported_nodes(plan: Plan, args: argparse.Namespace, secrets: Secrets,
                        policy: HostKeyPolicy) -> None:
    entries: list[NodeEntry] = []
    for path in args.nodes_file:
        entries += read_nodes_file(path)
    if args.from_kubectl:
        addresses = _kubectl_nodes(plan, args.from_kubectl, secrets, policy)
        entries += [NodeEntry(address) for address in addresses]
    if not entries:
        return
    added = add_nodes(plan, entries)
    print(f"added {len(added)} node(s): {', '.join(added) or '-'}", flush=True)
    if args.save_nodes and added:
        from app.plan import save_plan

        print(f"plan saved: {save_plan(plan)}", flush=True)


def _kubectl_nodes(plan: Plan, target: str, secrets: Secrets, policy: HostKeyPolicy) -> list[str]:
    try:
        entry = parse_node_line(target)
    except ValueError as error:
        raise UsageError(f"--from-kubectl: {error}", "give [user@]host[:port]") from None
    addresses = nodes_via_kubectl(plan, entry, secrets, policy)
    print(f"kubectl on {entry.host} lists {len(addresses)} node(s)", flush=True)
    return addresses


def _retry_hosts(plan: Plan) -> list[str]:
    """Hosts that failed last time; ones no longer in the plan are re-added from the record."""
    records = onboard.failed_hosts(plan)
    if not records and not onboard.results_path(plan).exists():
        raise UsageError(f"no saved results at {onboard.results_path(plan)}",
                         "run regwiz onboard first")
    known = {node.host for node in plan.nodes}
    for record in records:
        if record["host"] not in known:
            plan.nodes.append(NodeSettings(host=record["host"], ssh_user=record.get("ssh_user"),
                                           ssh_port=record.get("ssh_port")))
    return [record["host"] for record in records]
