"""Replacing a container without losing the one that served (issue 12 item 5).

A container whose settings changed is not removed: it is stopped, its restart policy turned off
(a dockerd restart must not start it next to its successor) and it is renamed ``NAME-previous``.
Once the new containers passed the health check the kept ones are removed; if anything failed
first, the new ones go and the old ones get their names, their restart policy and their start
back, in the order they were set aside (the registry before its front, so the front's nginx
resolves the registry it proxies to when it starts).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from app.registry_host import LABEL_MANAGED
from app.steps import Outcome

PREVIOUS_SUFFIX = "-previous"
STOP_SECONDS = 10


def previous_name(name: str) -> str:
    return f"{name}{PREVIOUS_SUFFIX}"


@dataclass
class _Kept:
    name: str  # the name it served under (and gets back on a rollback)
    container: Any  # the old container, stopped, now named NAME-previous


class Replacements:
    """The old containers set aside in this run, until ``commit`` or ``roll_back``."""

    def __init__(self) -> None:
        self._kept: list[_Kept] = []

    @property
    def pending(self) -> bool:
        return bool(self._kept)

    def names(self) -> list[str]:
        return [kept.name for kept in self._kept]

    def holds(self, name: str) -> bool:
        return name in self.names()

    def set_aside(self, container: Any) -> None:
        """Stop ``container`` and keep it as NAME-previous (its data dir is a host dir)."""
        name = container.name
        container.update(restart_policy={"Name": "no"})
        container.stop(timeout=STOP_SECONDS)
        container.rename(previous_name(name))
        self._kept.append(_Kept(name, container))

    def commit(self) -> list[str]:
        """The new containers serve: remove the kept ones; their former names."""
        removed = []
        while self._kept:
            kept = self._kept.pop()
            kept.container.remove(force=True)
            removed.append(kept.name)
        return removed

    def failed_logs(self, client: Any, lines: int = 15) -> str:
        """The last log lines of the new containers (read before the rollback removes them)."""
        parts = []
        for kept in self._kept:
            new = _get(client, kept.name)
            if new is not None and new.id != kept.container.id:
                with contextlib.suppress(Exception):  # diagnostics only
                    text = new.logs(tail=lines).decode("utf-8", errors="replace").rstrip()
                    parts.append(f"{kept.name} (new, removed):\n{text}" if text else "")
        return "\n".join(part for part in parts if part)

    def roll_back(self, client: Any) -> list[str]:
        """Remove every new container, then restore the kept ones in order; their names."""
        for kept in reversed(self._kept):
            new = _get(client, kept.name)
            if new is not None and new.id != kept.container.id:
                new.remove(force=True)
        restored = []
        while self._kept:
            kept = self._kept.pop(0)
            restore(kept.container, kept.name)
            restored.append(kept.name)
        return restored


def keep_or_set_aside(existing: Any | None, wanted: bool, replacements: Replacements
                      ) -> Outcome | None:
    """An ``existing`` container that is ``wanted`` as it is (labels and image match) keeps
    serving, started if it was stopped; any other is set aside until its successor is healthy.
    None: a new container must be run."""
    if existing is not None and wanted:
        if existing.status == "running":
            return Outcome.UNCHANGED
        existing.start()
        return Outcome.CHANGED
    if existing is not None:
        replacements.set_aside(existing)
    return None


def restore(container: Any, name: str) -> None:
    """A kept container serves again under ``name``, restarted by Docker after reboots."""
    container.rename(name)
    container.update(restart_policy={"Name": "always"})
    container.start()


def recover_leftover(client: Any, name: str, *, wanted: bool = True) -> str | None:
    """A ``NAME-previous`` left by an interrupted run: started again under ``name`` when no
    ``name`` exists (it is the last container that served) and the plan still wants one, else
    removed. What was done."""
    leftover = _get(client, previous_name(name))
    if leftover is None or (leftover.labels or {}).get(LABEL_MANAGED) != "true":
        return None
    if wanted and _get(client, name) is None:
        restore(leftover, name)
        return f"restored {previous_name(name)} as {name}"
    leftover.remove(force=True)
    return f"removed the leftover {previous_name(name)}"


def _get(client: Any, name: str) -> Any | None:
    import docker.errors

    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None
