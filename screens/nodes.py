"""Step 6: the cluster nodes that must trust the registry's CA.

A table of nodes (values inherited from the node defaults are dimmed); add / edit / remove, import
from a file of ``[user@]host[:port]`` lines or from ``kubectl get nodes`` run on a host that has
kubectl. Parsing and the kubectl call are app.nodes_import's; reading happens in thread workers.
Space marks rows (ctrl+a all or none); with rows marked, Edit changes a setting on all of them at
once (screens.node_bulk_edit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Static

from app.errors import RegwizError
from app.nodes_import import NodeEntry, add_nodes, parse_node_line, read_nodes_file
from app.paths import expand_user
from app.plan import NodeDefaults, NodeSettings, Plan, validate_plan
from screens.host_key_prompt import ask_host_key_policy
from screens.import_cert import check_existing_file
from screens.messages import NodesFound
from screens.node_bulk_edit import NodeBulkEditModal, NodeChanges
from screens.node_defaults import NodeDefaultsModal
from screens.node_edit import NodeEditModal
from screens.text_prompt import TextPromptModal
from screens.validators import Checked
from screens.widgets.form_field import FormField
from screens.wizard_screen import PaletteAction, WizardScreen

MARK = "✓"
COLUMNS = (("mark", " "), ("host", "host"), ("user", "user"), ("port", "port"),
           ("runtime", "runtime"), ("sudo", "sudo"), ("os-store", "OS store"))
MIRROR_ONLY_COLUMN = ("mirror-only", "mirror only")  # shown when the plan has mirrors


def check_node_target(value: str) -> str | None:
    try:
        parse_node_line(value.strip())
    except ValueError as error:
        return str(error)
    return None


def _cell(value: object, inherited: object) -> Text:
    if value is None:
        return Text(_show(inherited), style="dim italic")
    return Text(_show(value))


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class NodesScreen(WizardScreen):
    STEP = "nodes"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("delete,x", "remove", "Remove"),
        Binding("i", "import_file", "Import file"),
        Binding("k", "import_kubectl", "From kubectl"),
        Binding("d", "edit_defaults", "Defaults"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("ctrl+a", "mark_all", "Mark all"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: set[str] = set()  # hosts of the marked rows

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="button-row", id="node-actions"):
            yield Button("Add", id="add-node", variant="primary", compact=True)
            yield Button("Edit", id="edit-node", compact=True)
            yield Button("Remove", id="remove-node", compact=True)
            yield Button("Import file…", id="import-file", compact=True)
            yield Button("From kubectl…", id="import-kubectl", compact=True)
            yield Button("Defaults…", id="edit-defaults", compact=True)
        yield DataTable(id="nodes-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="nodes-summary", markup=False)
        yield FormField("Sudo password", field_id="nodes-sudo-password", password=True,
                        value=self.wizard.secrets.sudo_password or "",
                        help_text="For nodes whose sudo asks for one (the same for every "
                                  "host). Memory only, never saved.")

    def on_mount(self) -> None:
        table = self.query_one("#nodes-table", DataTable)
        for key, label in self.columns:
            table.add_column(label, key=key)
        self.refresh_table()

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        return COLUMNS + ((MIRROR_ONLY_COLUMN,) if self.plan.mirrors else ())

    @property
    def plan(self) -> Plan:
        return self.wizard.require_plan()

    # --- table ----------------------------------------------------------------------------------

    def refresh_table(self, select: str | None = None) -> None:
        table = self.query_one("#nodes-table", DataTable)
        table.clear()
        defaults = self.plan.node_defaults
        self.marked &= {node.host for node in self.plan.nodes}  # removed or renamed: unmarked
        mirrors = bool(self.plan.mirrors)
        for node in self.plan.nodes:
            cells = [
                self.mark_cell(node.host),
                Text(node.host),
                _cell(node.ssh_user, defaults.ssh_user),
                _cell(node.ssh_port, defaults.ssh_port),
                _cell(node.runtime, defaults.runtime),
                _cell(node.sudo, defaults.sudo),
                _cell(node.os_trust_store, defaults.os_trust_store),
            ]
            if mirrors:
                cells.append(_cell(node.mirror_only, defaults.mirror_only))
            table.add_row(*cells, key=node.host)
        if select is not None:
            hosts = [node.host for node in self.plan.nodes]
            if select in hosts:
                table.move_cursor(row=hosts.index(select))
        self.show_summary()
        self.refresh_next()

    def mark_cell(self, host: str) -> Text:
        return Text(MARK if host in self.marked else "", style="bold green")

    def show_summary(self) -> None:
        count, defaults = len(self.plan.nodes), self.plan.node_defaults
        marked = (f" {len(self.marked)} marked: Edit changes them all (space marks, "
                  "ctrl+a all or none)." if self.marked else "")
        self.query_one("#nodes-summary", Static).update(
            f"{count} node(s).{marked} Dimmed values come from the defaults "
            f"(user {defaults.ssh_user}, port {defaults.ssh_port}, runtime {defaults.runtime})."
            if count else "No nodes yet: add them, or import a file or kubectl's node list."
        )
        self.query_one("#edit-node", Button).label = \
            f"Edit {len(self.marked)} marked" if self.marked else "Edit"

    def show_marks(self) -> None:
        table = self.query_one("#nodes-table", DataTable)
        for node in self.plan.nodes:
            table.update_cell(node.host, "mark", self.mark_cell(node.host))
        self.show_summary()

    def selected(self) -> NodeSettings | None:
        table = self.query_one("#nodes-table", DataTable)
        if not self.plan.nodes or table.cursor_row < 0:
            return None
        index = min(table.cursor_row, len(self.plan.nodes) - 1)
        return self.plan.nodes[index]

    def problems(self) -> list[str]:
        return [p for p in validate_plan(self.plan) if p.startswith("nodes")]

    def commit(self) -> bool:
        password = self.query_one("#nodes-sudo-password", Input).value
        self.wizard.remember_sudo_password([node.host for node in self.plan.nodes], password,
                                           shared=True)
        return True

    # --- actions ----------------------------------------------------------------------------------

    def action_add(self) -> None:
        taken = {node.host for node in self.plan.nodes}

        def added(node: NodeSettings | None) -> None:
            if node is not None:
                self.plan.nodes.append(node)
                self.refresh_table(select=node.host)

        self.app.push_screen(NodeEditModal(None, self.plan.node_defaults, taken=taken), added)

    def action_toggle_mark(self) -> None:
        """Mark or unmark the cursor row, then go to the next row (to mark a run quickly)."""
        current = self.selected()
        if current is None:
            return
        self.marked ^= {current.host}
        self.show_marks()
        self.query_one("#nodes-table", DataTable).action_cursor_down()

    def action_mark_all(self) -> None:
        hosts = {node.host for node in self.plan.nodes}
        self.marked = set() if hosts and self.marked >= hosts else hosts
        self.show_marks()

    def action_edit(self) -> None:
        if self.marked:
            self.edit_marked()
            return
        current = self.selected()
        if current is None:
            return
        taken = {node.host for node in self.plan.nodes if node is not current}

        def edited(node: NodeSettings | None) -> None:
            if node is not None and current in self.plan.nodes:
                self.plan.nodes[self.plan.nodes.index(current)] = node
                self.refresh_table(select=node.host)

        self.app.push_screen(NodeEditModal(dataclasses.replace(current),
                                           self.plan.node_defaults, taken=taken), edited)

    def edit_marked(self) -> None:
        hosts = [node.host for node in self.plan.nodes if node.host in self.marked]
        cursor = self.selected()

        def edited(changes: NodeChanges | None) -> None:
            if changes is None:
                return
            self.plan.nodes = [changes.apply(node) if node.host in hosts else node
                               for node in self.plan.nodes]
            self.refresh_table(select=cursor.host if cursor else None)
            self.notify(f"{len(hosts)} node(s): {changes.describe()}")

        self.app.push_screen(NodeBulkEditModal(hosts, self.plan.node_defaults), edited)

    def action_remove(self) -> None:
        current = self.selected()
        if current is not None:
            self.plan.nodes.remove(current)
            self.refresh_table()
            self.notify(f"Removed {current.host}")

    def action_edit_defaults(self) -> None:
        def edited(defaults: NodeDefaults | None) -> None:
            if defaults is not None:
                self.plan.node_defaults = defaults
                self.refresh_table()

        self.app.push_screen(NodeDefaultsModal(self.plan.node_defaults), edited)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_edit()

    def action_import_file(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.read_file(expand_user(path))

        self.app.push_screen(
            TextPromptModal("Import nodes from a file", "File",
                            validator=Checked(check_existing_file),
                            help_text="One node per line: [user@]host[:port]; # comments.",
                            ok_label="Import"),
            chosen,
        )

    def action_import_kubectl(self) -> None:
        def chosen(target: str | None) -> None:
            if target:
                self.query_kubectl(parse_node_line(target))

        self.app.push_screen(
            TextPromptModal("Import nodes from kubectl", "Host with kubectl",
                            validator=Checked(check_node_target),
                            help_text="[user@]host[:port] of a node where "
                                      "`kubectl get nodes` works (a control-plane node).",
                            ok_label="Import"),
            chosen,
        )

    @work(thread=True, exit_on_error=False, group="nodes-import", name="Import nodes")
    def read_file(self, path: Path) -> None:
        try:
            entries = read_nodes_file(path)
        except RegwizError as error:
            self.app.call_from_thread(self.wizard.show_error, f"Cannot import {path}", error)
            return
        self.post_message(NodesFound(entries, str(path)))

    @work(thread=True, exit_on_error=False, group="nodes-import", name="kubectl get nodes")
    def query_kubectl(self, entry: NodeEntry) -> None:
        from app.nodes_import import nodes_via_kubectl

        policy = ask_host_key_policy(self.wizard)
        try:
            addresses = nodes_via_kubectl(self.plan, entry, self.wizard.secrets, policy)
        except RegwizError as error:
            self.app.call_from_thread(self.wizard.show_error,
                                      f"kubectl on {entry.host} failed", error)
            return
        self.post_message(NodesFound([NodeEntry(ip) for ip in addresses],
                                     f"kubectl on {entry.host}"))

    def on_nodes_found(self, message: NodesFound) -> None:
        entries = message.entries
        added = add_nodes(self.plan, entries)
        skipped = len(entries) - len(added)
        self.refresh_table(select=added[0] if added else None)
        self.notify(f"{len(added)} node(s) added from {message.source}"
                    + (f", {skipped} already listed" if skipped else ""))

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {
            "add-node": self.action_add,
            "edit-node": self.action_edit,
            "remove-node": self.action_remove,
            "import-file": self.action_import_file,
            "import-kubectl": self.action_import_kubectl,
            "edit-defaults": self.action_edit_defaults,
        }

    def palette_actions(self) -> list[PaletteAction]:
        return [
            ("Add node", "Add one cluster node", self.action_add),
            ("Import nodes from file", "One [user@]host[:port] per line", self.action_import_file),
            ("Import nodes from kubectl", "InternalIPs of `kubectl get nodes`",
             self.action_import_kubectl),
            ("Edit node defaults", "User, port, runtime... for every node",
             self.action_edit_defaults),
            ("Mark all nodes", "Mark every row (again: none) to edit them together",
             self.action_mark_all),
        ]
