# Ansible callback used only by bench/onboard: records when each host finished its last task
# (wall clock, time.time()) and whether any task failed, into $BENCH_TIMING_FILE as JSON.
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: bench_timing
    type: aggregate
    short_description: per-host completion times for bench/onboard
    description: per-host completion times and failure flags, as JSON, to BENCH_TIMING_FILE
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, dict[str, object]] = {}

    def _record(self, result: object, failed: bool) -> None:
        name = result._host.get_name()  # type: ignore[attr-defined]
        entry = self.hosts.setdefault(name, {"done": 0.0, "failed": False})
        entry["done"] = time.time()
        entry["failed"] = bool(entry["failed"]) or failed

    def v2_runner_on_ok(self, result: object) -> None:
        self._record(result, False)

    def v2_runner_on_failed(self, result: object, ignore_errors: bool = False) -> None:
        self._record(result, not ignore_errors)

    def v2_runner_on_unreachable(self, result: object) -> None:
        self._record(result, True)

    def v2_playbook_on_stats(self, stats: object) -> None:
        path = os.environ.get("BENCH_TIMING_FILE")
        if path:
            with open(path, "w") as handle:
                json.dump(self.hosts, handle)
