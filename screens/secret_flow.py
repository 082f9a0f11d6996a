"""When a job met missing or wrong secrets: ask for each (per host), then let the job go on.

Hosts are asked one after the other; "use it for all remaining hosts" answers every later host
that needs the same kind of secret. Sudo passwords are kept per host; the SSH password and key
passphrase are one value each (``Secrets`` has one of each).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.errors import SECRET_KINDS
from screens.secret_prompt import SecretAnswer, SecretPromptModal

if TYPE_CHECKING:
    from screens.app import RegwizApp

Need = tuple[str, str]  # (host, error kind)


def secret_needs(failures: list[Need]) -> list[Need]:
    """The failures a typed secret can fix, in order, each host once."""
    seen: set[str] = set()
    needs: list[Need] = []
    for host, kind in failures:
        if kind in SECRET_KINDS and host not in seen:
            seen.add(host)
            needs.append((host, kind))
    return needs


def store_secret(app: RegwizApp, host: str, kind: str, value: str) -> None:
    what = SECRET_KINDS[kind]
    if what == "sudo password":
        app.remember_sudo_password([host], value)
    elif what == "SSH password":
        app.secrets.ssh_password = value
    else:
        app.secrets.key_passphrase = value


def ask_missing_secrets(app: RegwizApp, needs: list[Need], purpose: str,
                        done: Callable[[list[str]], None]) -> None:
    """Ask for each need's secret; ``done`` gets the hosts that got one (none if all cancelled)."""
    answered: list[str] = []
    reused: dict[str, str] = {}  # what -> value, after "use it for all remaining hosts"

    def ask(index: int) -> None:
        if index == len(needs):
            done(answered)
            return
        host, kind = needs[index]
        what = SECRET_KINDS[kind]
        if what in reused:
            store_secret(app, host, kind, reused[what])
            answered.append(host)
            ask(index + 1)
            return

        def received(answer: SecretAnswer | None) -> None:
            if answer is not None:
                store_secret(app, host, kind, answer.value)
                answered.append(host)
                if answer.for_all:
                    reused[what] = answer.value
            ask(index + 1)

        later = any(SECRET_KINDS[k] == what for _, k in needs[index + 1:])
        app.push_screen(SecretPromptModal(host, what, purpose, wrong=kind.endswith("-wrong"),
                                          offer_all=later), received)

    ask(0)
