"""``regwiz prune``: delete old tags, keeping the newest N of every repository."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.commands.common import (
    add_plan_argument,
    interactive,
    load_credentials,
    load_plan_from_args,
    positive_int,
)
from app.errors import UsageError
from app.terminal_text import echo

if TYPE_CHECKING:
    from app.retention import DeleteResult, PrunePlan

DESCRIPTION = """\
Delete old tags of the registry regwiz deployed. In every repository (or those --repo names), the
newest N tags by image creation time (the image config's "created"; a multi-platform index: its
newest child) are kept; with --older-than, only tags older than DAYS are deleted. A tag is never
deleted when it is protected (--protect GLOB), when its creation time is unknown, or when a kept
tag uses the same manifest (the same digest, or a child of a kept multi-platform index): a
manifest is deleted by digest, which would take the kept tag with it. Protected tags are not
counted among the newest N.

Lists what goes and what stays (and why), asks for confirmation (on a terminal; elsewhere give
--yes), then deletes each manifest with the operator (push) account. Needs
registry.delete_enabled = true (set it and run regwiz deploy: the registry is redeployed with the
same data). Deleting tags frees no disk until the registry's garbage collection runs.
"""

EPILOG = """\
exit status: 0 done (or nothing to delete), 1 a deletion failed, 2 invalid plan or usage,
delete not enabled, or a registry regwiz did not deploy
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "prune", help="delete old tags (keep the newest N per repository)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_plan_argument(parser)
    parser.add_argument("--keep-last", type=positive_int, required=True, metavar="N",
                        help="keep the newest N tags of every repository")
    parser.add_argument("--older-than", type=positive_int, metavar="DAYS",
                        help="delete only tags whose image is older than DAYS days")
    parser.add_argument("--protect", action="append", default=[], metavar="GLOB",
                        help="never delete tags matching GLOB (e.g. 'latest', 'v1.*'); "
                             "repeatable")
    parser.add_argument("--repo", action="append", default=[], metavar="GLOB",
                        help="only repositories matching GLOB (e.g. 'team/*'); repeatable")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be deleted and kept; delete nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask before deleting")
    parser.add_argument("--credentials-file", metavar="FILE",
                        help="a push account's login (default: credentials/operator.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.image_facts import RegistryReader
    from app.plan import Secrets
    from app.retention import RetentionRule, plan_prune, require_prunable, run_prune
    from app.verify import registry_auth

    rule = RetentionRule(args.keep_last, args.older_than, tuple(args.protect),
                         tuple(args.repo))
    if problems := rule.problems():
        raise UsageError("; ".join(problems))
    plan = load_plan_from_args(args, show_warnings=False)
    require_prunable(plan, deleting=not args.dry_run)
    auth = registry_auth(plan, Secrets.from_env(), load_credentials(plan, args.credentials_file))
    reader = RegistryReader.for_plan(plan, auth)
    prune = plan_prune(reader, rule)
    print_prune_plan(prune)
    if prune.error is not None:
        return 1
    if args.dry_run or not prune.to_delete:
        return 0
    confirm(prune, args.yes)
    report = run_prune(reader, prune, on_progress=print_delete)
    if report.stopped:
        echo(f"stopped: {report.stopped}")
    echo(f"prune: {len(report.deleted_tags)} tag(s) deleted, {len(report.failed)} failed; "
         "the space comes back when the registry's garbage collection runs")
    return 0 if report.ok else 1


def print_prune_plan(prune: PrunePlan) -> None:
    if prune.error is not None:
        echo(f"cannot list the registry: {prune.error}")
        return
    if not prune.repositories:
        echo("no repository matches")
    for repository in prune.repositories:
        echo(f"{repository.name}" + (f"  ({repository.error})" if repository.error else ""))
        width = max((len(d.tag) for d in repository.decisions), default=0)
        for decision in repository.decisions:
            digest = (decision.digest or "?")[:19]
            created = (decision.created or "unknown")[:19].replace("T", " ")
            echo(f"  {decision.verdict.value:<7}{decision.tag:<{width}}  {digest}  {created:<19}  "
                 f"{decision.reason}")
    echo(f"prune: {len(prune.to_delete)} tag(s) to delete ({prune.manifest_count} "
         f"manifest(s)), {len(prune.to_keep)} kept, in {len(prune.repositories)} "
         f"repositor{'y' if len(prune.repositories) == 1 else 'ies'}")


def confirm(prune: PrunePlan, assume_yes: bool) -> None:
    if assume_yes:
        return
    count = len(prune.to_delete)
    if not interactive():
        raise UsageError(f"prune would delete {count} tag(s) and there is no terminal to "
                         "confirm", "add --yes to confirm non-interactively (or --dry-run)")
    answer = input(f"Delete these {count} tag(s)? Type 'yes': ")
    if answer.strip().lower() != "yes":
        raise UsageError("not confirmed: nothing was deleted")


def print_delete(result: DeleteResult) -> None:
    tags = ", ".join(result.tags)
    message = f" ({result.message})" if result.message else ""
    echo(f"[{result.done}/{result.total}] {result.state.value:<12} {result.repository}:{tags} "
         f"{result.digest[:19]}{message}", flush=True)

