"""Remote work as explicit steps: what, where, why; executed by a transport; reported per host.

A step is like an idempotent Ansible task. Its ``run`` callable does the work and returns
``Outcome.CHANGED`` or ``Outcome.UNCHANGED`` (raising ``RegwizError`` on failure). The same list
of steps can be printed as a dry run without touching any host.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field


class Outcome(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        return self not in (Outcome.PENDING, Outcome.RUNNING)


class Outcomes:
    """``ok`` and ``exit_code`` for a report whose ``failed`` lists what went wrong."""

    @property
    def failed(self) -> Sequence[object]:
        raise NotImplementedError

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


@dataclass
class Step:
    """One unit of remote work. ``run`` returns CHANGED or UNCHANGED, or raises."""

    what: str
    where: str
    why: str
    run: Callable[[], Outcome]
    # Lines shown by --dry-run beyond what/where/why, e.g. the file paths or commands involved.
    details: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"[{self.where}] {self.what}", f"    why: {self.why}"]
        lines += [f"    {detail}" for detail in self.details]
        return "\n".join(lines)


@dataclass
class StepResult:
    what: str
    where: str
    outcome: Outcome
    message: str = ""
    hint: str | None = None
    seconds: float = 0.0
    # The failure's error kind (e.g. "sudo-password-missing"), so callers decide on data, not
    # on the message's wording. Not part of to_dict: saved results keep their shape.
    kind: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "what": self.what,
            "where": self.where,
            "outcome": self.outcome.value,
            "message": self.message,
            "hint": self.hint,
            "seconds": round(self.seconds, 3),
        }


ProgressCallback = Callable[[StepResult], None]


def run_steps(
    steps: Iterable[Step],
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[StepResult]:
    """Run steps in order, stopping at the first failure (later steps report SKIPPED).

    ``on_progress`` is called with a RUNNING result before each step and the final result after
    it, so a CLI or a TUI can show live state. ``should_stop`` lets a caller cancel between steps.
    """
    from app.errors import RegwizError

    results: list[StepResult] = []
    failed = False
    for step in steps:
        if failed or (should_stop is not None and should_stop()):
            result = StepResult(step.what, step.where, Outcome.SKIPPED, "not run")
            results.append(result)
            if on_progress:
                on_progress(result)
            failed = True
            continue
        if on_progress:
            on_progress(StepResult(step.what, step.where, Outcome.RUNNING))
        started = time.monotonic()
        try:
            outcome = step.run()
            result = StepResult(step.what, step.where, outcome)
        except RegwizError as error:
            result = StepResult(step.what, step.where, Outcome.FAILED, error.message, error.hint,
                                kind=getattr(error, "kind", ""))
            failed = True
        result.seconds = time.monotonic() - started
        results.append(result)
        if on_progress:
            on_progress(result)
    return results


def summarize(results: Iterable[StepResult]) -> dict[str, int]:
    counts = {o.value: 0 for o in (Outcome.CHANGED, Outcome.UNCHANGED, Outcome.FAILED)}
    for result in results:
        if result.outcome.value in counts:
            counts[result.outcome.value] += 1
    return counts


def format_result(result: StepResult) -> str:
    line = f"{result.outcome.value:>9}  [{result.where}] {result.what}"
    if result.message:
        line += f": {result.message}"
    if result.hint:
        line += f"\n           hint: {result.hint}"
    return line


def dry_run_lines(steps: Iterable[Step]) -> Iterator[str]:
    for step in steps:
        yield step.describe()
