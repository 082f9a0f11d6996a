"""The TUI's answer to app.transport.hostkeys' ``confirm(host, key_type, fingerprint)`` callback.

The callback runs on a worker thread (inside the SSH connect) and blocks until the user answers
the modal; a cancelled worker or a closing app counts as "reject".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.worker import get_current_worker

from screens.host_key_unknown import HostKeyUnknownModal

if TYPE_CHECKING:
    from app.transport.hostkeys import ConfirmCallback
    from app.tui import RegwizApp


def host_key_confirmer(app: RegwizApp) -> ConfirmCallback:
    """A confirm callback for HostKeyPolicy; create it inside the worker that connects."""
    worker = get_current_worker()

    def confirm(host: str, key_type: str, fingerprint: str) -> bool:
        answer = app.ask_from_thread(
            HostKeyUnknownModal(host, key_type, fingerprint),
            should_stop=lambda: worker.is_cancelled,
        )
        return bool(answer)

    return confirm
