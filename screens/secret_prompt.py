"""Ask for a secret a job found missing or wrong (a sudo password, an SSH password or key
passphrase), naming the host and what it is for; the job then runs again with it.

Dismisses with a ``SecretAnswer`` or None (cancelled: the failure stands as reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, Label, Static

from screens.form_modal import FormModal
from screens.widgets.dialog_buttons import DialogButtons
from screens.widgets.form_field import FormField


@dataclass(frozen=True)
class SecretAnswer:
    value: str = field(repr=False)
    for_all: bool = False  # use it for every remaining host that asks for the same secret


class SecretPromptModal(FormModal[SecretAnswer]):
    def __init__(self, host: str, what: str, purpose: str, *, wrong: bool = False,
                 offer_all: bool = False) -> None:
        super().__init__(classes="modal")
        self.host, self.what, self.purpose = host, what, purpose
        self.wrong, self.offer_all = wrong, offer_all

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"{self.what[:1].upper()}{self.what[1:]} for {self.host}",
                        classes="dialog-title")
            problem = "was refused" if self.wrong else "is needed"
            yield Static(f"The {self.what} of {self.host} {problem} to {self.purpose}. "
                         "It stays in memory only.", classes="dialog-body", markup=False)
            yield FormField(self.what[:1].upper() + self.what[1:], field_id="secret",
                            password=True)
            if self.offer_all:
                yield Checkbox("use it for all remaining hosts", False, id="for-all",
                               compact=True)
            yield DialogButtons("Try again")

    def on_mount(self) -> None:
        self.query_one("#secret", Input).focus()

    def result(self) -> SecretAnswer | None:
        value = self.query_one("#secret", Input).value
        if not value:
            return None  # nothing typed: keep asking (Cancel gives up)
        for_all = self.offer_all and self.query_one("#for-all", Checkbox).value
        return SecretAnswer(value, for_all)
