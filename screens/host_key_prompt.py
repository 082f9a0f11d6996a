"""The TUI's answer to app.transport.hostkeys' ``confirm(host, key_type, fingerprint)`` callback
and to ``confirm_other_type`` (a new key type for a known host: the same modal, with a warning
listing the known keys).

The callback runs on a worker thread (inside the SSH connect) and blocks until the user answers
the modal; a cancelled worker or a closing app counts as "reject".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from textual.worker import get_current_worker

from screens.host_key_unknown import HostKeyUnknownModal

if TYPE_CHECKING:
    from app.transport.hostkeys import HostKeyPolicy
    from screens.app import RegwizApp


class HostKeyQuestion(Protocol):
    """Serves as both the policy's ``confirm`` (an unknown host) and ``confirm_other_type``
    (a known host offering a new key type: ``known`` lists the keys already trusted)."""

    def __call__(self, host: str, key_type: str, fingerprint: str,
                 known: tuple[str, ...] = ()) -> bool: ...


def ask_host_key_policy(app: RegwizApp) -> HostKeyPolicy:
    """Every TUI job's host-key policy: an unknown key is asked about, a changed one refused.

    Create it inside the worker that connects (the question is cancelled with that worker).
    """
    from app.connections import host_key_policy

    confirm = host_key_confirmer(app)
    return host_key_policy(accept_new=False, confirm=confirm, confirm_other_type=confirm)


def host_key_confirmer(app: RegwizApp) -> HostKeyQuestion:
    """A confirm callback for HostKeyPolicy; create it inside the worker that connects."""
    worker = get_current_worker()

    def confirm(host: str, key_type: str, fingerprint: str, known: tuple[str, ...] = ()) -> bool:
        """``known``: the host's keys of other types, shown as a warning (none: a new host)."""
        answer = app.ask_from_thread(
            HostKeyUnknownModal(host, key_type, fingerprint, known),
            should_stop=lambda: worker.is_cancelled,
        )
        return bool(answer)

    return confirm
