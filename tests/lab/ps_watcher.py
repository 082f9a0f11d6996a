"""Watch every process's command line on lab hosts while a command runs (``ps``): a secret on
any argument list shows up in ``seen``."""

from __future__ import annotations

import threading

from tests.lab.lab import LabHost


class PsWatcher:
    def __init__(self, hosts: list[LabHost]) -> None:
        self.hosts = hosts
        self.seen: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for host in self.hosts:
                found = host.exec(["ps", "-eww", "-o", "args"], check=False)  # untruncated
                self.seen.update(found.stdout.decode(errors="replace").splitlines())
                self.samples += 1
            self._stop.wait(0.05)

    def __enter__(self) -> PsWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
