"""The ``regwiz`` command line: the TUI by default, every wizard step headless as a subcommand.

Each subcommand lives in ``app/commands/<name>.py`` and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` to a callable taking the parsed namespace and returning an
exit code (0 success, 1 a step failed, 2 bad usage or an invalid plan).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from app import __version__
from app.errors import RegwizError

# Subcommand modules in the order --help lists them.
COMMAND_MODULES: list[str] = [
    "certs", "deploy", "accounts", "onboard", "uninstall", "verify", "status", "prune", "k8s",
    "apply", "plan", "images", "renew", "rotate_ca", "gc", "upgrade",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regwiz",
        description=(
            "Set up a private TLS container registry that every cluster node trusts. "
            "Without a subcommand, opens the interactive wizard."
        ),
    )
    parser.add_argument("--version", action="version", version=f"regwiz {__version__}")
    parser.add_argument("--plan", help="plan file to open in the wizard (default: the user's plan)")
    parser.add_argument("--web", action="store_true",
                        help="serve the wizard to a browser, for you only: open the printed "
                             "one-time link (needs regwiz[web])")
    parser.add_argument("--web-port", type=int, default=8000, metavar="PORT",
                        help="port for --web (default: 8000)")
    parser.add_argument("--web-bind", default="127.0.0.1", metavar="ADDRESS",
                        help="the one address --web listens on (default: 127.0.0.1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"app.commands.{name}").register(subparsers)
    return parser


def print_error(text: str) -> None:
    """Print to stderr; messages may quote hostile input (lone surrogates: never crash) and
    remote output (terminal control sequences: removed, see app.terminal_text)."""
    from app.terminal_text import echo

    echo(text, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            # Only here: the wizard (textual and the screens package) loads when it is asked
            # for, so app/ never imports textual or screens at import time.
            from screens.app import run_tui

            return run_tui(args)
        return int(args.func(args))
    except RegwizError as error:
        print_error(f"regwiz: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        print("regwiz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
