"""Stylesheets and templates shipped with regwiz (found with importlib.resources)."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def asset(name: str) -> Traversable:
    """Return the packaged asset ``name`` (works from a checkout and from an installed wheel)."""
    return files(__name__) / name
