"""The TUI's answer to app.transport.hostkeys' ``confirm(host, key_type, fingerprint)`` callback
and to ``confirm_other_type`` (a new key type for a known host: the same modal, with a warning
listing the known keys).

The callback runs on a worker thread (inside the SSH connect) and blocks until the user answers
the modal; a cancelled worker or a closing app counts as "reject".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.worker import get_current_worker

from screens.host_key_unknown import HostKeyUnknownModal

if TYPE_CHECKING:
    from app.transport.hostkeys import (
        ConfirmCallback,
        HostKeyPolicy,
        OtherTypeConfirmCallback,
    )
    from screens.app import RegwizApp


def ask_host_key_policy(app: RegwizApp) -> HostKeyPolicy:
    """Every TUI job's host-key policy: an unknown key is asked about, a changed one refused.

    Create it inside the worker that connects (the question is cancelled with that worker).
    """
    from app.connections import host_key_policy

    return host_key_policy(accept_new=False, confirm=host_key_confirmer(app),
                           confirm_other_type=other_type_confirmer(app))


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


def other_type_confirmer(app: RegwizApp) -> OtherTypeConfirmCallback:
    """A confirm_other_type callback: the unknown-key modal with the known keys as a warning."""
    worker = get_current_worker()

    def confirm(host: str, key_type: str, fingerprint: str, known: tuple[str, ...]) -> bool:
        answer = app.ask_from_thread(
            HostKeyUnknownModal(host, key_type, fingerprint, known),
            should_stop=lambda: worker.is_cancelled,
        )
        return bool(answer)

    return confirm
