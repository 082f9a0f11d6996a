"""Shared pytest fixtures: the network-namespace lab (see tests/lab/lab.py).

Any test that uses the `lab` fixture is marked `lab` automatically. Lab tests are skipped only
when not running as root (the lab needs namespaces and bind mounts); under CI=true that, and a
lab that cannot start, is a failure instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.lab.lab import Lab, LabError

NOT_ROOT_REASON = (
    "lab test needs root (network namespaces, bind mounts, real daemons): "
    "run `sudo scripts/test` or as root"
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)
            if os.geteuid() != 0 and not _in_ci():
                item.add_marker(pytest.mark.skip(reason=NOT_ROOT_REASON))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The running lab: reuses one started by `tests/lab/up` (same REGWIZ_LAB_ID) and leaves
    it running; otherwise starts one and tears it down at the end of the session."""
    if os.geteuid() != 0:
        pytest.fail("CI=true but not root: the lab cannot start without root")
    existing = Lab.attach()
    if existing is not None:
        yield existing
        return
    started = Lab()
    try:
        started.up()
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"the test lab did not start: {exc}", pytrace=False)
    try:
        yield started
    finally:
        started.down()
