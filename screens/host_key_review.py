"""The SSH host keys of every node a job is about to connect to, decided on one screen.

Each host the scan found not trusted is a row: its key type and SHA-256 fingerprint, and what
kind of case it is. New hosts can be accepted (all, or the rows marked with space). Changed
(or @revoked) keys are shown as refused, the known fingerprint next to the offered one, and
can never be accepted here. A host offering a key type other than the known one (OpenSSH's
"keys of a different type are already known" warning) is shown with that warning and is not
accepted here either, by no button: the safe choice is to keep it on its own question, asked
when the job connects, which shows the known keys and explains the risk.

Dismisses with the hosts accepted, or None for "Reject all" (Escape). Nothing is marked at
first, and the rows have the focus, so no key is accepted by a stray Enter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, ListView, Static

from app.transport.keyscan import CHANGED, OTHER_TYPE, UNKNOWN, ScannedKey
from screens.widgets.node_rows import Column, NodeRows

COLUMNS = (Column("mark", "", 3), Column("key", "host, key type, SHA256 fingerprint", None))
STATUS = {
    UNKNOWN: ("new host", ""),
    OTHER_TYPE: ("WARNING: a new key type for a known host", "bold yellow"),
    CHANGED: ("REFUSED: the host key has CHANGED", "bold red"),
}
REVOKED_STATUS = ("REFUSED: the key is marked @revoked", "bold red")


def key_text(scan: ScannedKey) -> Text:
    """The row's text: host, key type and case, then the offered and known fingerprints."""
    words, style = STATUS.get(scan.status, REVOKED_STATUS)
    text = Text(scan.label, style="bold")
    text.append(f"  {scan.key_type}  ")
    text.append(words, style=style)
    if scan.status == UNKNOWN:
        text.append(f"\n{scan.fingerprint}")
        return text
    text.append(f"\noffered {scan.fingerprint}")
    for known in scan.known:
        text.append(f"\nknown   {known}")
    if scan.status == OTHER_TYPE:
        text.append("\nnot accepted here: asked on its own, with the known keys, when "
                    "connecting", style="yellow")
    return text


def mark_text(scan: ScannedKey, marked: bool) -> Text:
    if scan.status == UNKNOWN:
        return Text("[x]" if marked else "[ ]", style="bold green" if marked else "")
    if scan.status == OTHER_TYPE:
        return Text(" ! ", style="bold yellow")
    return Text(" ✗ ", style="bold red")


class HostKeyReviewModal(ModalScreen["frozenset[str] | None"]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "reject", "Reject all"),
        Binding("space", "toggle_mark", "Mark"),
    ]

    def __init__(self, scans: Sequence[ScannedKey]) -> None:
        super().__init__(classes="modal")
        self.scans = list(scans)
        self.marked: set[str] = set()

    @property
    def new_hosts(self) -> list[str]:
        return [scan.host for scan in self.scans if scan.status == UNKNOWN]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog keys-dialog"):
            yield Label(f"SSH host keys of {len(self.scans)} hosts", classes="dialog-title")
            yield Static(self.intro(), id="keys-intro", classes="dialog-body", markup=False)
            yield NodeRows(COLUMNS, id="key-rows")
            yield Static("Check a fingerprint on its host: ssh-keygen -lf "
                         "/etc/ssh/ssh_host_*_key.pub. Accepted keys go to known_hosts; new "
                         "hosts not accepted fail \"host key rejected\".",
                         classes="dialog-hint", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Reject all", id="reject")
                yield Button("Accept 0 marked", id="accept-marked", disabled=True)
                yield Button("Accept all new", id="accept-all", variant="warning",
                             disabled=not self.new_hosts)

    def intro(self) -> str:
        new = len(self.new_hosts)
        parts = [f"{new} new host(s): space marks one." if new else "No new hosts."]
        if any(scan.refused for scan in self.scans):
            parts.append("Changed keys are refused.")
        if any(scan.status == OTHER_TYPE for scan in self.scans):
            parts.append("A new key type for a known host is asked on its own, not here.")
        return " ".join(parts)

    def on_mount(self) -> None:
        rows = self.query_one(NodeRows)
        rows.set_rows([(scan.host, {"mark": mark_text(scan, False), "key": key_text(scan)})
                       for scan in self.scans])
        rows.focus()

    def action_toggle_mark(self) -> None:
        rows = self.query_one(NodeRows)
        if rows.index is None or not 0 <= rows.index < len(self.scans):
            return
        scan = self.scans[rows.index]
        if scan.status != UNKNOWN:
            self.notify(f"{scan.label}: this key cannot be accepted here.", severity="warning")
            return
        self.marked ^= {scan.host}
        rows.update_row(scan.host, mark=mark_text(scan, scan.host in self.marked))
        button = self.query_one("#accept-marked", Button)
        button.label = f"Accept {len(self.marked)} marked"
        button.disabled = not self.marked

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        self.action_toggle_mark()  # Enter marks, like space: it never accepts anything by itself

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "accept-all":
            self.dismiss(frozenset(self.new_hosts))
        elif event.button.id == "accept-marked":
            self.dismiss(frozenset(self.marked))
        else:
            self.dismiss(None)

    def action_reject(self) -> None:
        self.dismiss(None)
