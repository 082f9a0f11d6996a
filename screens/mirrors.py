"""The Mirrors step: pull-through caches of other registries (docker.io, ...) on the registry host.

A table of the plan's ``[[mirrors]]``; add (from a preset), edit and remove them through
screens.mirror_edit. Nothing runs here: deploy starts the caches and onboarding points the nodes
at them. Only plans whose registry regwiz deploys show this step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Static

from app.plan import MirrorSettings, Plan, validate_plan
from screens.mirror_edit import MirrorEditModal
from screens.wizard_screen import PaletteAction, WizardScreen

COLUMNS = (("upstream", "upstream"), ("port", "port"), ("url", "fetched from"),
           ("access", "access"))
INTRO = (
    "A pull-through cache keeps a copy of what nodes pull from another registry: the first pull "
    "of an image fetches it from the upstream, every later one is served from the registry host "
    "(faster, and no rate limits). Onboarding points every node's runtime at these mirrors. "
    "Caches of public upstreams are served anonymously and pull-only; a private one (with an "
    "upstream login) only to the plan's accounts."
)


def _access(mirror: MirrorSettings) -> Text:
    if mirror.private:
        return Text(f"private ({mirror.username})", style="bold")
    return Text("public")


class MirrorsScreen(WizardScreen):
    STEP = "mirrors"
    AUTO_FOCUS: ClassVar[str | None] = "#mirrors-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("delete,x", "remove", "Remove"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(INTRO, id="mirrors-intro", markup=False)
        with Horizontal(classes="button-row", id="mirror-actions"):
            yield Button("Add", id="add-mirror", variant="primary", compact=True)
            yield Button("Edit", id="edit-mirror", compact=True)
            yield Button("Remove", id="remove-mirror", compact=True)
        yield DataTable(id="mirrors-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="mirrors-summary", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#mirrors-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.refresh_table()

    @property
    def plan(self) -> Plan:
        return self.wizard.require_plan()

    # --- table ----------------------------------------------------------------------------------

    def refresh_table(self, select: int | None = None) -> None:
        table = self.query_one("#mirrors-table", DataTable)
        table.clear()
        for mirror in self.plan.mirrors:
            table.add_row(Text(mirror.upstream), Text(str(mirror.port)), Text(mirror.url),
                          _access(mirror))
        if select is not None and self.plan.mirrors:
            table.move_cursor(row=min(select, len(self.plan.mirrors) - 1))
        self.show_summary()
        self.refresh_next()

    def show_summary(self) -> None:
        count = len(self.plan.mirrors)
        example = self.plan.mirror_address(self.plan.mirrors[0]).reference if count else ""
        text = (f"{count} mirror(s) on the registry host, at the registry's address on their "
                f"own ports (nodes pull through {example}, ...). Enter or e edits, a adds, "
                "Delete removes."
                if count else
                "No mirrors: nodes pull other registries' images straight from them. "
                "Add one (a) to cache docker.io, registry.k8s.io, quay.io, ghcr.io or any "
                "registry; or go on (Next): mirrors are optional.")
        self.query_one("#mirrors-summary", Static).update(text)

    def selected(self) -> int | None:
        table = self.query_one("#mirrors-table", DataTable)
        if not self.plan.mirrors or table.cursor_row < 0:
            return None
        return min(table.cursor_row, len(self.plan.mirrors) - 1)

    def problems(self) -> list[str]:
        return [problem for problem in validate_plan(self.plan) if problem.startswith("mirrors")]

    # --- actions --------------------------------------------------------------------------------

    def open_editor(self, index: int | None) -> None:
        def saved(mirror: MirrorSettings | None) -> None:
            if mirror is None:
                return
            if index is None:
                self.plan.mirrors.append(mirror)
            else:
                self.plan.mirrors[index] = mirror
            self.refresh_table(select=len(self.plan.mirrors) - 1 if index is None else index)

        self.app.push_screen(MirrorEditModal(
            self.plan, index, known_passwords=self.wizard.secrets.mirror_passwords), saved)

    def action_add(self) -> None:
        self.open_editor(None)

    def action_edit(self) -> None:
        index = self.selected()
        if index is not None:
            self.open_editor(index)

    def action_remove(self) -> None:
        index = self.selected()
        if index is not None:
            removed = self.plan.mirrors.pop(index)
            self.refresh_table(select=index)
            self.notify(f"Removed the mirror of {removed.upstream}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_edit()

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {"add-mirror": self.action_add, "edit-mirror": self.action_edit,
                "remove-mirror": self.action_remove}

    def palette_actions(self) -> list[PaletteAction]:
        return [
            ("Add mirror", "A pull-through cache of docker.io, quay.io, ... or any registry",
             self.action_add),
            ("Edit mirror", "Change the selected mirror", self.action_edit),
            ("Remove mirror", "Drop the selected mirror from the plan", self.action_remove),
        ]
