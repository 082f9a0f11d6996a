"""Local path helpers that never raise on odd user input."""

from __future__ import annotations

import os
from pathlib import Path


def expand_user(path: str | os.PathLike[str]) -> Path:
    """``~`` and ``~name`` expanded like the shell; an unknown ``~name`` is left as it is.

    ``Path.expanduser`` raises RuntimeError for a user this machine does not have; here the
    path stays literal, so the caller's "file not found" message names it instead.
    """
    return Path(os.path.expanduser(os.fspath(path)))


def unknown_home(path: str) -> str | None:
    """The ``~name`` prefix of ``path`` when no such user's home exists, else None."""
    if not path.startswith("~"):
        return None
    prefix = path.split("/", 1)[0]
    return prefix if os.path.expanduser(prefix) == prefix else None
