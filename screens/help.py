"""``?`` / F1: what the current step does and which keys work everywhere."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Button, Markdown

from screens.closable_modal import ClosableModal

STEP_HELP: dict[str, str] = {
    "welcome": "Start a **new plan**, open an existing plan file, or pick a recent one. "
    "With a plan open you can jump straight to **node onboarding** or **status**.",
    "certificate": "The subject of the registry's certificate and its **SANs**: every name and "
    "IP that image references will use. The common name and the registry address are added "
    "automatically. Errors show under each field; Next stays blocked until all are fixed.",
    "review": "What will be (or was) generated: subject, SANs, validity and fingerprints. "
    "**Generate** creates the CA (once) and the server certificate, **Renew** reissues the "
    "server certificate, **New CA** replaces the CA (every node must then be onboarded again). "
    "You can also export a CSR for your own CA and import the certificate it signs.",
    "registry": "Where the registry container runs: an SSH target or `local`. Passwords typed "
    "here stay in memory only. **Test connection** checks SSH, the host key, sudo and docker.",
    "deploy": "Runs the deploy steps on the registry host with live state. Turn on **dry run** "
    "to see what would happen without changing anything. After a failure the container's log "
    "tail is shown; **Retry** runs the steps again (they are idempotent).",
    "nodes": "The cluster nodes that must trust the registry's CA. Add, edit (Enter) and remove "
    "(Delete) rows, or import them from a file (one `user@host:port` per line) or from kubectl. "
    "**Defaults** (d) sets the user, port, runtime and sudo every node uses unless its row "
    "says otherwise (dimmed values in the table are inherited).",
    "onboarding": "Installs the CA on every node for the runtime it really uses, in parallel. "
    "Each row updates live; **Retry failed** runs only the nodes that failed; Enter on a row "
    "opens that node's log.",
    "verify": "Pushes a small test image to the registry, pulls it back, then pulls it on "
    "every node with its runtime.",
    "status": "Registry up/down and latency, certificate days left, catalog, container state, "
    "disk use and each node's trust. Refreshes on an interval and on **r**.",
}

GLOBAL_KEYS = """
| key | does |
|---|---|
| ctrl+n / ctrl+b | next / back step (the plan is saved on every move) |
| ctrl+p | command palette: every step and action |
| ? or F1 | this help |
| ctrl+t | light / dark theme |
| tab / shift+tab | next / previous field |
| ctrl+q | quit (asks first while a job runs) |
"""


class HelpScreen(ClosableModal):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "Close"),
    ]

    def __init__(self, step: str) -> None:
        super().__init__(classes="modal")
        self.step = step

    def compose(self) -> ComposeResult:
        from app.tui import step_by_name

        title = step_by_name(self.step).title
        text = f"# {title}\n\n{STEP_HELP.get(self.step, '')}\n\n## Keys\n{GLOBAL_KEYS}"
        with Vertical(classes="dialog help-dialog"):
            yield Markdown(text, id="help-text")
            yield Button("Close", id="close", variant="primary")
