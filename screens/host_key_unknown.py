"""An SSH host key regwiz has never seen: show its SHA-256 fingerprint and let the user decide.

With ``known`` (the host's keys of other types already in known_hosts) it is OpenSSH's warning
about a new key type for a known host: those fingerprints are shown, since an attacker who
cannot present the known key would offer another type. Dismisses True (trust and remember it)
or False (refuse). Refuse is focused by default.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from screens.widgets.dialog_buttons import DialogButtons


class HostKeyUnknownModal(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "reject", "Reject")]

    def __init__(self, host: str, key_type: str, fingerprint: str,
                 known: tuple[str, ...] = ()) -> None:
        super().__init__(classes="modal")
        self.host = host
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.known = known

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            title = "WARNING: new SSH host key type" if self.known else "Unknown SSH host key"
            yield Label(title, classes="dialog-title")
            yield Static(
                f"The authenticity of host {self.host} can't be established.\n"
                f"Its {self.key_type} key fingerprint is:",
                classes="dialog-body",
                markup=False,
            )
            yield Static(self.fingerprint, id="fingerprint", markup=False)
            if self.known:
                yield Static(
                    "But keys of a different type are already known for this host:\n"
                    + "\n".join(self.known)
                    + "\nSomeone who cannot present the known key may be offering another "
                    "type (a man-in-the-middle attack). Accept only if the host's admin "
                    "confirms this new key.",
                    id="known-keys",
                    classes="dialog-body",
                    markup=False,
                )
            yield Static(
                "Compare it with the fingerprint the host's admin gives you (on the host: "
                "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub). Accepting saves it to "
                "known_hosts.",
                classes="dialog-hint",
                markup=False,
            )
            yield DialogButtons("Accept and remember", ok_id="accept", variant="warning",
                                cancel_label="Reject", cancel_id="reject")

    def on_mount(self) -> None:
        self.query_one("#reject", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "accept")

    def action_reject(self) -> None:
        self.dismiss(False)
