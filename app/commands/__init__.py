"""One module per ``regwiz`` subcommand; each exposes ``register(subparsers)``."""
