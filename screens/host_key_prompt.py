"""The TUI's answer to app.transport.hostkeys' ``confirm(host, key_type, fingerprint)`` callback
and to ``confirm_other_type`` (a new key type for a known host: the same modal, with a warning
listing the known keys).

The callback runs on a worker thread (inside the SSH connect) and blocks until the user answers
the modal; a cancelled worker or a closing app counts as "reject".

Jobs on several nodes first call ``review_host_keys``: every node's key is read at once and all
the unknown ones are decided on one screen (screens.host_key_review), so the per-connection
question is left for what that screen does not decide (a new key type for a known host, a host
that could not be scanned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from textual.worker import get_current_worker

from screens.host_key_review import HostKeyReviewModal
from screens.host_key_unknown import HostKeyUnknownModal

if TYPE_CHECKING:
    from app.plan import ResolvedNode
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
    from app.user_waits import UserWaits

    confirm = host_key_confirmer(app)
    return host_key_policy(accept_new=False, confirm=confirm, confirm_other_type=confirm,
                           waits=UserWaits(app.job_clock))


def review_host_keys(app: RegwizApp, nodes: Sequence[ResolvedNode],
                     policy: HostKeyPolicy) -> frozenset[str]:
    """From the worker about to connect to ``nodes``: read every node's host key in parallel,
    ask about all that are not trusted on one screen, save the accepted ones; returns the hosts
    whose key was rejected (the job must not connect to them).

    "Reject all" (or a cancelled worker) also rejects hosts offering a new key type; otherwise
    those are asked on their own when connecting, with their known keys (never in bulk).
    """
    from app.connections import scan_node_host_keys
    from app.transport.keyscan import OTHER_TYPE, UNKNOWN, remember_accepted

    worker = get_current_worker()
    scans = [scan for scan in scan_node_host_keys(nodes, policy,
                                                   should_stop=lambda: worker.is_cancelled)
             if scan.needs_answer]
    if not scans or worker.is_cancelled:
        return frozenset()
    accepted = app.ask_from_thread(HostKeyReviewModal(scans),
                                   should_stop=lambda: worker.is_cancelled)
    if accepted is None:  # rejected all
        return frozenset(s.host for s in scans if s.status in (UNKNOWN, OTHER_TYPE))
    remember_accepted(policy, [s for s in scans if s.host in accepted])
    return frozenset(s.host for s in scans if s.status == UNKNOWN and s.host not in accepted)


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
