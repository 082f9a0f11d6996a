"""Edit settings of several nodes at once (the rows marked on the Nodes step).

Every field starts empty or at "leave as is": only what the user fills in changes, on every
marked node; the rest keeps each node's own value. "default" in a choice drops the nodes' own
value so they inherit the node defaults. Validation is the single edit dialog's.

Dismisses with a ``NodeChanges``, or None when cancelled; with nothing filled in it stays open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Label, Select, Static

from app import validate
from app.plan import NodeDefaults, NodeSettings
from app.validate import RUNTIMES
from screens import validators
from screens.form_modal import FormModal
from screens.node_edit import DEFAULT, optional_user
from screens.widgets.dialog_buttons import DialogButtons
from screens.widgets.form_field import FormField
from screens.widgets.labeled_control import LabeledControl

KEEP = "keep"  # a choice's "leave as is"
SHOWN_HOSTS = 4  # hosts named in the dialog's intro before "and N more"


@dataclass(frozen=True)
class NodeChanges:
    """What to set on every marked node. Text fields: None leaves them. Choices: KEEP leaves
    them, DEFAULT clears the node's own value, anything else is the value to set."""

    ssh_user: str | None = None
    ssh_port: int | None = None
    identity_file: str | None = None
    sudo_password_env: str | None = None
    runtime: str = KEEP
    sudo: str = KEEP
    os_trust_store: str = KEEP
    mirror_only: str = KEEP

    def apply(self, node: NodeSettings) -> NodeSettings:
        """``node`` with these changes (a copy; the host and every untouched field kept)."""
        values: dict[str, object] = {
            name: value for name, value in (
                ("ssh_user", self.ssh_user), ("ssh_port", self.ssh_port),
                ("identity_file", self.identity_file),
                ("sudo_password_env", self.sudo_password_env))
            if value is not None}
        if self.runtime != KEEP:
            values["runtime"] = None if self.runtime == DEFAULT else self.runtime
        for name in ("sudo", "os_trust_store", "mirror_only"):
            choice = getattr(self, name)
            if choice != KEEP:
                values[name] = None if choice == DEFAULT else choice == "yes"
        return dataclasses.replace(node, **values)  # type: ignore[arg-type]

    def describe(self) -> str:
        """The changed fields as ``name=value`` (for the notification)."""
        parts = [f"{field.name}={getattr(self, field.name)}" for field in dataclasses.fields(self)
                 if getattr(self, field.name) not in (None, KEEP)]
        return ", ".join(parts)

    @property
    def empty(self) -> bool:
        return not self.describe()


def _choice(label: str, control_id: str, options: list[tuple[str, str]]) -> LabeledControl:
    return LabeledControl(label, Select([("leave as is", KEEP), *options], value=KEEP,
                                        allow_blank=False, id=control_id, compact=True))


def _yes_no(default: bool) -> list[tuple[str, str]]:
    return [(f"{DEFAULT} ({'yes' if default else 'no'})", DEFAULT), ("yes", "yes"), ("no", "no")]


def hosts_line(hosts: Sequence[str]) -> str:
    shown = ", ".join(hosts[:SHOWN_HOSTS])
    more = len(hosts) - SHOWN_HOSTS
    return shown + (f" and {more} more" if more > 0 else "")


class NodeBulkEditModal(FormModal[NodeChanges]):

    def __init__(self, hosts: Sequence[str], defaults: NodeDefaults) -> None:
        super().__init__(classes="modal")
        self.hosts = list(hosts)
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        defaults = self.defaults
        with Vertical(classes="dialog node-dialog bulk-dialog"):
            yield Label(f"Edit {len(self.hosts)} nodes: {hosts_line(self.hosts)}",
                        classes="dialog-title", markup=False)
            yield Static("Only what you fill in changes, on each of them; empty fields and "
                         "\"leave as is\" keep every node's own value.",
                         id="bulk-intro", classes="dialog-body", markup=False)
            with Grid(classes="form-grid"):
                yield FormField("SSH user", field_id="bulk-user",
                                validators=[validators.Checked(optional_user, optional=True)])
                yield FormField("SSH port", field_id="bulk-port",
                                validators=[validators.port(optional=True)])
                yield FormField("Identity file", field_id="bulk-identity",
                                validators=[validators.key_file()])
                yield FormField("Sudo password variable", field_id="bulk-sudo-env",
                                placeholder="REGWIZ_SUDO_PASSWORD_<NAME>",
                                validators=[validators.Checked(validate.check_sudo_password_env,
                                                               optional=True)])
                yield _choice("Runtime", "bulk-runtime",
                              [(f"{DEFAULT} ({defaults.runtime})", DEFAULT)]
                              + [(r, r) for r in RUNTIMES])
                yield _choice("Sudo", "bulk-sudo", _yes_no(defaults.sudo))
                yield _choice("OS trust store", "bulk-os-store", _yes_no(defaults.os_trust_store))
                yield _choice("Mirror only", "bulk-mirror-only", _yes_no(defaults.mirror_only))
            yield DialogButtons("Apply to all", ok_id="apply")

    def choice(self, control_id: str) -> str:
        return str(self.query_one(f"#{control_id}", Select).value)

    def result(self) -> NodeChanges | None:
        if not self.form_is_valid():
            return None
        port = self.text("bulk-port")
        changes = NodeChanges(
            ssh_user=self.text("bulk-user") or None,
            ssh_port=int(port) if port else None,
            identity_file=self.text("bulk-identity") or None,
            sudo_password_env=self.text("bulk-sudo-env") or None,
            runtime=self.choice("bulk-runtime"),
            sudo=self.choice("bulk-sudo"),
            os_trust_store=self.choice("bulk-os-store"),
            mirror_only=self.choice("bulk-mirror-only"),
        )
        if changes.empty:
            self.notify("Nothing to change: fill in a field or pick a value.",
                        severity="warning")
            return None
        return changes
