"""``regwiz plan example``: print the commented example plan shipped with regwiz.

The plan file's header comment points here, so a pip user (who has no checkout to open
``assets/plan-example.toml`` in) can read every key with its meaning: ``regwiz plan example``,
or ``regwiz plan example > plan.toml`` to start from it.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLE_ASSET = "plan-example.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="the plan file: 'regwiz plan example' prints a commented example of every key",
        description="Work with plan files. 'regwiz plan example' prints a commented example "
                    "plan; 'regwiz plan example > plan.toml' starts a plan from it.",
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    actions = parser.add_subparsers(dest="plan_command", metavar="ACTION")
    example = actions.add_parser(
        "example", help="print the commented example plan (every key, with its meaning)",
        description="Print the commented example plan to stdout.",
    )
    example.set_defaults(func=run_example)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def example_text() -> str:
    from assets import asset

    return asset(EXAMPLE_ASSET).read_text(encoding="utf-8")


def run_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_text())
    sys.stdout.flush()
    return 0
