"""Nodes step: add / edit / remove through the modal, marked rows edited together, import from
a file, plan saved on Next."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Select

from app.plan import NodeSettings, load_plan, new_plan, save_plan
from screens.app import RegwizApp
from screens.error_modal import ErrorModal
from screens.node_bulk_edit import NodeBulkEditModal
from screens.node_defaults import NodeDefaultsModal
from screens.node_edit import NodeEditModal
from screens.nodes import NodesScreen
from screens.text_prompt import TextPromptModal
from tests.tui.conftest import AppFactory, settle


def hosts(app: RegwizApp) -> list[str]:
    assert app.plan is not None
    return [node.host for node in app.plan.nodes]


async def add_node(app: RegwizApp, pilot: object, host: str, user: str = "") -> None:
    await pilot.press("a")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]
    modal = app.screen
    assert isinstance(modal, NodeEditModal)
    modal.query_one("#node-host", Input).value = host
    modal.query_one("#node-user", Input).value = user
    await pilot.click("#save")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


async def test_add_edit_remove_and_save(make_app: AppFactory, plan_path: Path) -> None:
    app = make_app("nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, NodesScreen)
        await add_node(app, pilot, "198.18.0.3", "root")
        await add_node(app, pilot, "198.18.0.4")
        assert hosts(app) == ["198.18.0.3", "198.18.0.4"]
        # a duplicate host is refused inside the modal
        await pilot.press("a")
        await pilot.pause()
        modal = app.screen
        modal.query_one("#node-host", Input).value = "198.18.0.3"
        await pilot.click("#save")
        await pilot.pause()
        assert app.screen is modal
        await pilot.press("escape")
        await pilot.pause()
        # edit the second node: explicit runtime
        table = app.screen.query_one("#nodes-table", DataTable)
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("e")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, NodeEditModal)
        modal.query_one("#node-runtime", Select).value = "containerd"
        modal.query_one("#node-port", Input).value = "2222"
        await pilot.click("#save")
        await pilot.pause()
        assert app.plan is not None
        assert app.plan.nodes[1].runtime == "containerd"
        assert app.plan.nodes[1].ssh_port == 2222
        # remove the first
        table.move_cursor(row=0)
        await pilot.press("x")
        await pilot.pause()
        assert hosts(app) == ["198.18.0.4"]
        await pilot.press("ctrl+n")
        await pilot.pause()
    saved = load_plan(plan_path)
    assert [(n.host, n.runtime, n.ssh_port) for n in saved.nodes] == [
        ("198.18.0.4", "containerd", 2222)
    ]


async def test_invalid_port_in_modal_is_refused(make_app: AppFactory) -> None:
    app = make_app("nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("a")
        await pilot.pause()
        modal = app.screen
        modal.query_one("#node-host", Input).value = "node1.example.internal"
        modal.query_one("#node-port", Input).value = "99999"
        await pilot.click("#save")
        await pilot.pause()
        assert app.screen is modal
        assert hosts(app) == []


async def test_import_from_file(make_app: AppFactory, tmp_path: Path) -> None:
    nodes_file = tmp_path / "nodes.txt"
    nodes_file.write_text("# workers\nroot@198.18.0.3\nrwops@198.18.0.4:2222\n198.18.0.3\n")
    app = make_app("nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, TextPromptModal)
        app.screen.query_one("#prompt", Input).value = str(nodes_file)
        await pilot.press("enter")
        await settle(app, pilot)
        assert hosts(app) == ["198.18.0.3", "198.18.0.4"]
        assert app.plan is not None
        assert app.plan.nodes[1].ssh_user == "rwops"
        assert app.plan.nodes[1].ssh_port == 2222
        assert app.screen.query_one("#nodes-table", DataTable).row_count == 2


async def test_import_file_with_bad_lines_shows_every_problem(
    make_app: AppFactory, tmp_path: Path
) -> None:
    nodes_file = tmp_path / "nodes.txt"
    nodes_file.write_text("good.example.internal\nbad host\nroot@x:notaport\n")
    app = make_app("nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("i")
        await pilot.pause()
        app.screen.query_one("#prompt", Input).value = str(nodes_file)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ErrorModal)
        assert "line 2" in app.screen.message and "line 3" in app.screen.message
        assert hosts(app) == []


async def test_sudo_password_is_typed_not_a_shortcut_and_never_saved(
    make_app: AppFactory, plan_path: Path
) -> None:
    app = make_app("nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#nodes-sudo-password", Input).focus()
        await pilot.press(*"axe-ki")  # letters that are shortcuts elsewhere on this screen
        await pilot.pause()
        assert isinstance(app.screen, NodesScreen)
        await pilot.press("ctrl+n")
        await pilot.pause()
    assert app.secrets.sudo_password == "axe-ki"
    assert "axe-ki" not in plan_path.read_text()


async def test_defaults_apply_to_rows_without_their_own_values(
    make_app: AppFactory, plan_path: Path
) -> None:
    app = make_app("nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        await add_node(app, pilot, "198.18.0.3")
        await pilot.press("d")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, NodeDefaultsModal)
        modal.query_one("#default-user", Input).value = "bad user"
        await pilot.click("#save")
        await pilot.pause()
        assert app.screen is modal  # invalid: stays open
        modal.query_one("#default-user", Input).value = "ops"
        modal.query_one("#default-runtime", Select).value = "containerd"
        await pilot.click("#save")
        await pilot.pause()
        table = app.screen.query_one("#nodes-table", DataTable)
        assert str(table.get_cell("198.18.0.3", "user")) == "ops"
        assert str(table.get_cell("198.18.0.3", "runtime")) == "containerd"
        await pilot.press("ctrl+n")
        await pilot.pause()
    saved = load_plan(plan_path)
    assert saved.node_defaults.ssh_user == "ops"
    assert saved.resolved_nodes()[0].runtime == "containerd"


def nodes_plan(plan_path: Path, nodes: list[NodeSettings]) -> Path:
    plan = new_plan(plan_path)
    plan.nodes = nodes
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    return save_plan(plan, plan_path)


def marks(app: RegwizApp) -> list[str]:
    table = app.screen.query_one("#nodes-table", DataTable)
    return [str(table.get_cell_at(Coordinate(row, 0))) for row in range(table.row_count)]


async def test_marked_rows_are_edited_together_and_the_rest_kept(
    make_app: AppFactory, plan_path: Path
) -> None:
    nodes_plan(plan_path, [
        NodeSettings(host="198.18.0.3", ssh_user="ops", runtime="docker"),
        NodeSettings(host="198.18.0.4", sudo_password_env="REGWIZ_SUDO_PASSWORD_N4"),
        NodeSettings(host="198.18.0.5", ssh_port=2200),
    ])
    app = make_app("nodes")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#nodes-table", DataTable).focus()
        await pilot.press("space", "space")  # marks 0 and 1 (the cursor moves down)
        await pilot.pause()
        assert marks(app) == ["✓", "✓", ""]
        assert "2 marked" in str(app.screen.query_one("#nodes-summary").render())
        await pilot.press("e")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, NodeBulkEditModal) and modal.hosts == ["198.18.0.3",
                                                                        "198.18.0.4"]
        modal.query_one("#bulk-port", Input).value = "2222"
        modal.query_one("#bulk-runtime", Select).value = "containerd"
        modal.query_one("#bulk-os-store", Select).value = "yes"
        await pilot.click("#apply")
        await pilot.pause()
        assert isinstance(app.screen, NodesScreen)
        assert marks(app) == ["✓", "✓", ""]  # still marked, for the next change
        await pilot.press("ctrl+n")
        await pilot.pause()
    saved = load_plan(plan_path)
    assert saved.nodes == [
        NodeSettings(host="198.18.0.3", ssh_user="ops", ssh_port=2222, runtime="containerd",
                     os_trust_store=True),
        NodeSettings(host="198.18.0.4", ssh_port=2222, runtime="containerd",
                     os_trust_store=True, sudo_password_env="REGWIZ_SUDO_PASSWORD_N4"),
        NodeSettings(host="198.18.0.5", ssh_port=2200),  # not marked: untouched
    ]


async def test_mark_all_and_default_clears_the_nodes_own_value(
    make_app: AppFactory, plan_path: Path
) -> None:
    nodes_plan(plan_path, [NodeSettings(host="198.18.0.3", runtime="docker", sudo=False),
                           NodeSettings(host="198.18.0.4", runtime="cri-o")])
    app = make_app("nodes")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#nodes-table", DataTable).focus()
        await pilot.press("ctrl+a")
        await pilot.pause()
        assert marks(app) == ["✓", "✓"]
        await pilot.press("enter")  # Enter on a row edits the marked rows too
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, NodeBulkEditModal)
        modal.query_one("#bulk-runtime", Select).value = "default"
        await pilot.click("#apply")
        await pilot.pause()
        assert app.plan is not None
        assert [(n.runtime, n.sudo) for n in app.plan.nodes] == [(None, False), (None, None)]
        table = app.screen.query_one("#nodes-table", DataTable)
        assert str(table.get_cell("198.18.0.3", "runtime")) == "auto"  # the default's value
        await pilot.press("ctrl+a")  # all marked: ctrl+a unmarks all
        await pilot.pause()
        assert marks(app) == ["", ""]
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, NodeEditModal)  # no marks: the cursor row's own dialog


async def test_invalid_bulk_input_keeps_the_dialog_and_the_plan(
    make_app: AppFactory, plan_path: Path, tmp_path: Path
) -> None:
    original = [NodeSettings(host="198.18.0.3", ssh_user="ops"),
                NodeSettings(host="198.18.0.4", ssh_port=2200)]
    nodes_plan(plan_path, [dataclasses.replace(node) for node in original])
    app = make_app("nodes")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#nodes-table", DataTable).focus()
        await pilot.press("ctrl+a", "e")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, NodeBulkEditModal)
        await pilot.click("#apply")  # nothing filled in: nothing to apply, the dialog stays
        await pilot.pause()
        assert app.screen is modal
        for field, bad in (("#bulk-port", "99999"), ("#bulk-user", "bad user"),
                           ("#bulk-identity", str(tmp_path / "no-such-key")),
                           ("#bulk-sudo-env", "HOME")):
            modal.query_one(field, Input).value = bad
            await pilot.click("#apply")
            await pilot.pause()
            assert app.screen is modal, field
            assert "-error" in modal.query_one(f"{field}-field .field-message").classes
            modal.query_one(field, Input).value = ""
        assert app.plan is not None and app.plan.nodes == original
        modal.query_one("#bulk-user", Input).value = "deploy"
        await pilot.press("escape")  # cancelled: nothing applied
        await pilot.pause()
        assert isinstance(app.screen, NodesScreen) and app.plan.nodes == original


async def test_single_edit_keeps_the_sudo_password_variable(
    make_app: AppFactory, plan_path: Path
) -> None:
    """The single dialog does not show sudo_password_env; saving it must not drop it."""
    nodes_plan(plan_path, [NodeSettings(host="198.18.0.3",
                                        sudo_password_env="REGWIZ_SUDO_PASSWORD_N3")])
    app = make_app("nodes")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#nodes-table", DataTable).focus()
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#node-port", Input).value = "2222"
        await pilot.click("#save")
        await pilot.pause()
        assert app.plan is not None
        assert app.plan.nodes == [NodeSettings(host="198.18.0.3", ssh_port=2222,
                                               sudo_password_env="REGWIZ_SUDO_PASSWORD_N3")]
