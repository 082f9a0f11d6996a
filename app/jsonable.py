"""Turn report dataclasses (after ``dataclasses.asdict``) into plain JSON values."""

from __future__ import annotations

import enum
from typing import Any


def plain(value: Any, *, digits: int) -> Any:
    """Enums become their values, floats are rounded to ``digits``; containers recursively."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v, digits=digits) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, digits=digits) for v in value]
    if isinstance(value, float):
        return round(value, digits)
    return value
