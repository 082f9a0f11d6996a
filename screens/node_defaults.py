"""The node defaults: what every node uses unless its own row says otherwise.

Dismisses with a new NodeDefaults, or None when cancelled.
"""

from __future__ import annotations

import dataclasses

from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import Checkbox, Label, Select

from app.plan import NodeDefaults
from app.validate import RUNTIMES
from screens import validators
from screens.form_modal import FormModal
from screens.node_edit import MIRROR_ONLY_HELP
from screens.widgets.dialog_buttons import DialogButtons
from screens.widgets.form_field import FormField
from screens.widgets.labeled_control import LabeledControl


class NodeDefaultsModal(FormModal[NodeDefaults]):

    def __init__(self, defaults: NodeDefaults) -> None:
        super().__init__(classes="modal")
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        defaults = self.defaults
        with Vertical(classes="dialog node-dialog fields-dialog"):
            yield Label("Node defaults", classes="dialog-title")
            # the fields scroll when their messages need more rows than the screen has
            with VerticalScroll(classes="dialog-fields", can_focus=False), \
                    Grid(classes="form-grid"):
                yield FormField("SSH user", field_id="default-user", value=defaults.ssh_user,
                                validators=[validators.user()],
                                help_text="Used by every node without its own user.")
                yield FormField("SSH port", field_id="default-port",
                                value=str(defaults.ssh_port), validators=[validators.port()])
                yield FormField("Identity file", field_id="default-identity",
                                value=defaults.identity_file or "",
                                validators=[validators.key_file()],
                                help_text="Empty: ssh-agent / ~/.ssh/config.")
                yield LabeledControl("Runtime", Select(
                    [(r, r) for r in RUNTIMES], value=defaults.runtime, allow_blank=False,
                    id="default-runtime", compact=True))
                yield LabeledControl("Sudo", Checkbox(
                    "run root commands with sudo", defaults.sudo, id="default-sudo", compact=True))
                yield LabeledControl("OS trust store", Checkbox(
                    "also trust the CA system-wide", defaults.os_trust_store,
                    id="default-os-store", compact=True))
                yield LabeledControl("Mirror only", Checkbox(
                    "pull only through the mirrors", defaults.mirror_only,
                    id="default-mirror-only", compact=True), help_text=MIRROR_ONLY_HELP)
            yield DialogButtons("Save", ok_id="save")

    def result(self) -> NodeDefaults | None:
        if not self.form_is_valid():
            return None
        # replace, not a new NodeDefaults: fields this dialog does not show (the sudo password
        # variable) stay as they were
        return dataclasses.replace(
            self.defaults,
            ssh_user=self.text("default-user"),
            ssh_port=int(self.text("default-port")),
            identity_file=self.text("default-identity") or None,
            runtime=str(self.query_one("#default-runtime", Select).value),
            sudo=self.query_one("#default-sudo", Checkbox).value,
            os_trust_store=self.query_one("#default-os-store", Checkbox).value,
            mirror_only=self.query_one("#default-mirror-only", Checkbox).value,
        )
