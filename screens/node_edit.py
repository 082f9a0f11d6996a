"""Add or edit one node. Empty fields (and "default") inherit the plan's node defaults.

Dismisses with a NodeSettings, or None when cancelled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import Label, Select

from app.plan import NodeDefaults, NodeSettings
from app.validate import RUNTIMES
from screens import validators
from screens.form_modal import FormModal
from screens.widgets.dialog_buttons import DialogButtons
from screens.widgets.form_field import FormField
from screens.widgets.labeled_control import LabeledControl

DEFAULT = "default"
MIRROR_ONLY_HELP = "Air-gapped: no fallback to the upstream."


def _tri_options(default: bool) -> list[tuple[str, str]]:
    return [(f"{DEFAULT} ({'yes' if default else 'no'})", DEFAULT), ("yes", "yes"), ("no", "no")]


def _tri(value: bool | None) -> str:
    return DEFAULT if value is None else ("yes" if value else "no")


def _from_tri(value: object) -> bool | None:
    return None if value == DEFAULT else value == "yes"


class NodeEditModal(FormModal[NodeSettings]):

    def __init__(
        self,
        node: NodeSettings | None,
        defaults: NodeDefaults,
        *,
        taken: Iterable[str] = (),
    ) -> None:
        super().__init__(classes="modal")
        self.node = node or NodeSettings(host="")
        self.defaults = defaults
        self.taken = {host.lower() for host in taken}

    def compose(self) -> ComposeResult:
        node, defaults = self.node, self.defaults
        with Vertical(classes="dialog node-dialog fields-dialog"):
            yield Label("Edit node" if node.host else "Add node", classes="dialog-title")
            # the fields scroll when their messages need more rows than the screen has
            with VerticalScroll(classes="dialog-fields", can_focus=False), \
                    Grid(classes="form-grid"):
                yield FormField("Host", field_id="node-host", value=node.host,
                                validators=[validators.Checked(self.check_host)],
                                help_text="IP or DNS name the node is reached at.")
                yield FormField("SSH user", field_id="node-user", value=node.ssh_user or "",
                                validators=[validators.Checked(optional_user, optional=True)],
                                help_text=f"Empty: {defaults.ssh_user} (default).")
                yield FormField("SSH port", field_id="node-port",
                                value=str(node.ssh_port or ""),
                                validators=[validators.port(optional=True)],
                                help_text=f"Empty: {defaults.ssh_port} (default).")
                yield FormField("Identity file", field_id="node-identity",
                                value=node.identity_file or "",
                                validators=[validators.key_file()],
                                help_text="Empty: default key / agent.")
                yield LabeledControl("Runtime", Select(
                    [(f"{DEFAULT} ({defaults.runtime})", DEFAULT)] + [(r, r) for r in RUNTIMES],
                    value=node.runtime or DEFAULT, allow_blank=False, id="node-runtime",
                    compact=True))
                yield LabeledControl("Sudo", Select(
                    _tri_options(defaults.sudo), value=_tri(node.sudo), allow_blank=False,
                    id="node-sudo", compact=True))
                yield LabeledControl("OS trust store", Select(
                    _tri_options(defaults.os_trust_store), value=_tri(node.os_trust_store),
                    allow_blank=False, id="node-os-store", compact=True))
                yield LabeledControl("Mirror only", Select(
                    _tri_options(defaults.mirror_only), value=_tri(node.mirror_only),
                    allow_blank=False, id="node-mirror-only", compact=True),
                    help_text=MIRROR_ONLY_HELP)
            yield DialogButtons("Save", ok_id="save")

    def check_host(self, value: str) -> str | None:
        from app.validate import check_host

        text = value.strip()
        if not text:
            return "required"
        if text == "local":
            return '"local" is not a node: give the node\'s address or name'
        if text.lower() in self.taken:
            return f"{text} is already in the list"
        return check_host(text)

    def result(self) -> NodeSettings | None:
        if not self.form_is_valid():
            return None
        runtime = self.query_one("#node-runtime", Select).value
        port = self.text("node-port")
        # replace, not a new NodeSettings: fields this dialog does not show (the sudo password
        # variable) stay as they were
        return dataclasses.replace(
            self.node,
            host=self.text("node-host"),
            ssh_user=self.text("node-user") or None,
            ssh_port=int(port) if port else None,
            identity_file=self.text("node-identity") or None,
            runtime=None if runtime == DEFAULT else str(runtime),
            sudo=_from_tri(self.query_one("#node-sudo", Select).value),
            os_trust_store=_from_tri(self.query_one("#node-os-store", Select).value),
            mirror_only=_from_tri(self.query_one("#node-mirror-only", Select).value),
        )


def optional_user(value: str) -> str | None:
    """An SSH user typed in a node dialog: empty (inherit) or a valid user name."""
    from app.validate import check_user

    return check_user(value.strip()) if value.strip() else None
