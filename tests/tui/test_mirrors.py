"""Mirrors step: add from a preset, edit with every field checked (the plan's rules between
fields named under the field, Save blocked until fixed), remove, the plan saved with its comments;
mirror_only in the node dialogs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, DataTable, Input, Select, Static

from app.plan import MirrorSettings, NodeSettings, Secrets, load_plan, new_plan, save_plan
from screens.app import RegwizApp
from screens.mirror_edit import MirrorEditModal, free_port
from screens.mirrors import MirrorsScreen
from screens.node_bulk_edit import NodeBulkEditModal
from screens.node_defaults import NodeDefaultsModal
from screens.node_edit import NodeEditModal
from screens.widgets.form_field import FormField
from tests.tui.conftest import AppFactory, settle

HUB = MirrorSettings("docker.io", 5001)
LAB = MirrorSettings("upstream.lab:5000", 5002, remote_url="https://198.18.0.9:5000",
                     username="robot")


def mirrors_plan(plan_path: Path, mirrors: list[MirrorSettings],
                 nodes: list[NodeSettings] | None = None) -> Path:
    plan = new_plan(plan_path)
    plan.mirrors = list(mirrors)
    plan.nodes = nodes or []
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    return save_plan(plan, plan_path)


def opened(make_app: AppFactory, plan_path: Path, start: str = "mirrors") -> RegwizApp:
    app = make_app(start)
    app.open_plan(plan_path)
    return app


def message(modal: MirrorEditModal, field_id: str) -> str:
    """What the form shows under a field (its problem, once shown)."""
    field = modal.query_one(f"#{field_id}-field", FormField)
    shown = field.query_one(".field-message", Static)
    return str(shown.render()) if shown.display else ""


def save_button(modal: MirrorEditModal) -> Button:
    return modal.query_one("#save", Button)


async def open_add(app: RegwizApp, pilot: Pilot[Any]) -> MirrorEditModal:
    await pilot.press("a")
    await pilot.pause()
    assert isinstance(app.screen, MirrorEditModal)
    return app.screen


async def open_edit(app: RegwizApp, pilot: Pilot[Any], row: int) -> MirrorEditModal:
    table = app.screen.query_one("#mirrors-table", DataTable)
    table.focus()
    table.move_cursor(row=row)
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(app.screen, MirrorEditModal)
    return app.screen


async def type_into(pilot: Pilot[Any], modal: MirrorEditModal, field_id: str,
                    value: str) -> None:
    modal.query_one(f"#{field_id}", Input).value = value
    await pilot.pause()


async def test_add_from_a_preset_fills_the_defaults_and_saves(make_app: AppFactory,
                                                              plan_path: Path) -> None:
    app = make_app("mirrors")
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, MirrorsScreen)
        modal = await open_add(app, pilot)
        # the first well-known upstream, its URL and the first port after the registry's own
        assert modal.values() == ("docker.io", "5001", "https://registry-1.docker.io", "", "",
                                  "library/busybox:latest")
        modal.query_one("#mirror-preset", Select).value = "quay.io"
        await pilot.pause()
        assert modal.values() == ("quay.io", "5001", "https://quay.io", "", "", "")
        assert "Public cache" in str(modal.query_one("#mirror-access", Static).render())
        await pilot.click("#save")
        await pilot.pause()
        assert isinstance(app.screen, MirrorsScreen)
        assert app.plan is not None
        # the well-known URL stays the default: the plan does not spell it out
        assert app.plan.mirrors == [MirrorSettings("quay.io", 5001)]
        table = app.screen.query_one("#mirrors-table", DataTable)
        assert [str(cell) for cell in table.get_row_at(0)] == [
            "quay.io", "5001", "https://quay.io", "public"]
        summary = str(app.screen.query_one("#mirrors-summary", Static).render())
        assert "nodes pull through registry.internal:5001" in summary
        # the next add offers the next free upstream and port
        modal = await open_add(app, pilot)
        assert modal.values()[:2] == ("docker.io", "5002")
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert app.current_step == "deploy"
    assert load_plan(plan_path).mirrors == [MirrorSettings("quay.io", 5001)]
    assert "remote_url" not in plan_path.read_text()


async def test_an_invalid_value_blocks_save_until_fixed(make_app: AppFactory,
                                                        plan_path: Path) -> None:
    mirrors_plan(plan_path, [HUB])
    app = opened(make_app, plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        modal = await open_edit(app, pilot, 0)
        await type_into(pilot, modal, "mirror-url", "ftp://mirror.example.org")
        assert "expected https://HOST" in message(modal, "mirror-url")
        assert save_button(modal).disabled
        await pilot.click("#save")
        await pilot.press("enter")  # Enter in a field is Save too: refused the same way
        await pilot.pause()
        assert app.screen is modal
        await type_into(pilot, modal, "mirror-url", "https://mirror.example.org")
        await type_into(pilot, modal, "mirror-port", "5010")
        assert message(modal, "mirror-url") == ""
        assert not save_button(modal).disabled
        await pilot.click("#save")
        await pilot.pause()
        assert isinstance(app.screen, MirrorsScreen)
        await pilot.press("ctrl+n")
        await settle(app, pilot)
    assert load_plan(plan_path).mirrors == [
        MirrorSettings("docker.io", 5010, remote_url="https://mirror.example.org")]


async def test_port_clashes_and_a_second_mirror_of_one_upstream_are_named(
    make_app: AppFactory, plan_path: Path
) -> None:
    mirrors_plan(plan_path, [HUB, LAB])
    app = opened(make_app, plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        modal = await open_add(app, pilot)
        assert modal.values()[:2] == ("registry.k8s.io", "5003")  # docker.io has one
        await type_into(pilot, modal, "mirror-port", "8443")
        assert "8443 is already used by the registry (registry.port)" in \
            message(modal, "mirror-port")
        assert save_button(modal).disabled
        await type_into(pilot, modal, "mirror-port", "5002")
        assert "5002 is already used by the upstream.lab:5000 mirror" in \
            message(modal, "mirror-port")
        await type_into(pilot, modal, "mirror-port", "5003")
        await type_into(pilot, modal, "mirror-upstream", "docker.io")
        assert "docker.io already has a mirror" in message(modal, "mirror-upstream")
        assert message(modal, "mirror-port") == ""
        await pilot.click("#save")
        await pilot.pause()
        assert app.screen is modal
        assert app.plan is not None and len(app.plan.mirrors) == 2
        # editing a mirror does not clash with itself
        await pilot.press("escape")
        await pilot.pause()
        modal = await open_edit(app, pilot, 1)
        assert message(modal, "mirror-port") == "" and not save_button(modal).disabled


async def test_any_registry_needs_its_url_and_a_private_one_names_its_password_variable(
    make_app: AppFactory, plan_path: Path
) -> None:
    app = make_app("mirrors")
    async with app.run_test(size=(100, 32)) as pilot:
        modal = await open_add(app, pilot)
        modal.query_one("#mirror-preset", Select).value = "other"
        await pilot.pause()
        assert modal.values()[0:3:2] == ("", "")  # the name and URL are the user's
        assert app.focused is modal.query_one("#mirror-upstream", Input)
        await pilot.press(*"upstream.lab:5000")
        await pilot.pause()
        assert save_button(modal).disabled  # no URL regwiz could know
        await pilot.press("enter")
        await pilot.pause()
        assert "remote_url: missing" not in message(modal, "mirror-url")
        assert "upstream.lab:5000 is not one regwiz knows" in message(modal, "mirror-url")
        await type_into(pilot, modal, "mirror-url", "https://198.18.0.9:5000")
        await type_into(pilot, modal, "mirror-user", "robot")
        await type_into(pilot, modal, "mirror-verify", "https://lab/second")
        assert message(modal, "mirror-verify") and save_button(modal).disabled
        await type_into(pilot, modal, "mirror-verify", "lab/second:1.0")
        access = str(modal.query_one("#mirror-access", Static).render())
        assert "$REGWIZ_MIRROR_UPSTREAM_LAB_5000_PASSWORD" in access
        assert "never saved" in access and "not set yet" in access
        await pilot.click("#save")
        await pilot.pause()
        assert app.plan is not None
        assert app.plan.mirrors == [MirrorSettings("upstream.lab:5000", 5001,
                                                   remote_url="https://198.18.0.9:5000",
                                                   username="robot",
                                                   verify_image="lab/second:1.0")]
        table = app.screen.query_one("#mirrors-table", DataTable)
        assert str(table.get_cell_at((0, 3))) == "private (robot)"  # type: ignore[arg-type]


async def test_the_password_variable_is_reported_set_when_it_is(make_app: AppFactory,
                                                                plan_path: Path,
                                                                tmp_path: Path) -> None:
    mirrors_plan(plan_path, [LAB])
    app = RegwizApp(plan_path, data_dir=tmp_path / "data", start="mirrors", secrets=Secrets(
        mirror_passwords={"REGWIZ_MIRROR_UPSTREAM_LAB_5000_PASSWORD": "s3cret"}))
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        modal = await open_edit(app, pilot, 0)
        access = str(modal.query_one("#mirror-access", Static).render())
        assert "REGWIZ_MIRROR_UPSTREAM_LAB_5000_PASSWORD (set)" in access
        assert "s3cret" not in access
        await pilot.click("#save")
        await pilot.press("ctrl+n")
        await settle(app, pilot)
    assert "s3cret" not in plan_path.read_text()


async def test_remove_and_comments_survive_the_round_trip(make_app: AppFactory,
                                                          plan_path: Path) -> None:
    mirrors_plan(plan_path, [HUB, LAB])
    plan_path.write_text(plan_path.read_text().replace(
        'upstream = "docker.io"', '# the public hub, cached\nupstream = "docker.io"'))
    app = opened(make_app, plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        table = app.screen.query_one("#mirrors-table", DataTable)
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("x")
        await pilot.pause()
        assert app.plan is not None
        assert [mirror.upstream for mirror in app.plan.mirrors] == ["docker.io"]
        assert table.row_count == 1
        modal = await open_edit(app, pilot, 0)
        await type_into(pilot, modal, "mirror-port", "5011")
        await pilot.click("#save")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await settle(app, pilot)
    assert load_plan(plan_path).mirrors == [MirrorSettings("docker.io", 5011)]
    assert "# the public hub, cached" in plan_path.read_text()


async def test_the_step_blocks_next_while_the_plan_has_a_mirror_problem(
    make_app: AppFactory, plan_path: Path
) -> None:
    mirrors_plan(plan_path, [HUB])
    app = opened(make_app, plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        assert app.plan is not None
        app.plan.registry.port = 5001  # changed elsewhere: now the mirror's port clashes
        screen = app.screen
        assert isinstance(screen, MirrorsScreen)
        screen.refresh_table()
        assert any("mirrors[0].port" in problem for problem in screen.problems())
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.current_step == "mirrors"


async def test_palette_and_keys_reach_every_action(make_app: AppFactory,
                                                   plan_path: Path) -> None:
    mirrors_plan(plan_path, [HUB])
    app = opened(make_app, plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        assert app.focused is app.screen.query_one("#mirrors-table", DataTable)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Add mirror")
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, MirrorEditModal)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, MirrorEditModal)
        assert app.screen.index == 0
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("delete")
        await pilot.pause()
        assert app.plan is not None and app.plan.mirrors == []


def test_free_ports_skip_the_registry_and_other_mirrors(plan_path: Path) -> None:
    plan = new_plan(plan_path)
    plan.registry.port = 5001
    plan.mirrors = [MirrorSettings("docker.io", 5002), MirrorSettings("quay.io", 5004)]
    assert free_port(plan) == 5003
    assert free_port(plan, editing=0) == 5002  # its own port is free for the one edited


async def test_mirror_only_in_the_defaults_a_node_and_marked_nodes(make_app: AppFactory,
                                                                   plan_path: Path) -> None:
    mirrors_plan(plan_path, [HUB], [NodeSettings("198.18.0.3"), NodeSettings("198.18.0.4"),
                                    NodeSettings("198.18.0.5")])
    app = opened(make_app, plan_path, "nodes")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("d")
        await pilot.pause()
        defaults = app.screen
        assert isinstance(defaults, NodeDefaultsModal)
        assert "no fallback to the upstream" in str(defaults.query_one(
            "#default-mirror-only").parent.query_one(".field-help", Static).render())
        defaults.query_one("#default-mirror-only", Checkbox).value = True
        await pilot.click("#save")
        await pilot.pause()
        table = app.screen.query_one("#nodes-table", DataTable)
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("e")
        await pilot.pause()
        node = app.screen
        assert isinstance(node, NodeEditModal)
        node.query_one("#node-mirror-only", Select).value = "no"
        await pilot.click("#save")
        await pilot.pause()
        table.move_cursor(row=1)
        await pilot.press("space", "space")  # marks the second and third
        await pilot.press("e")
        await pilot.pause()
        bulk = app.screen
        assert isinstance(bulk, NodeBulkEditModal)
        bulk.query_one("#bulk-mirror-only", Select).value = "no"
        await pilot.click("#apply")
        await pilot.pause()
        assert app.plan is not None
        assert app.plan.nodes[2].mirror_only is False
        assert [str(table.get_cell(host, "mirror-only")) for host in
                ("198.18.0.3", "198.18.0.4", "198.18.0.5")] == ["no", "no", "no"]
        # back on the first node: "default" again
        table.move_cursor(row=0)
        await pilot.press("ctrl+a", "ctrl+a")  # all marked, then none
        await pilot.press("e")
        await pilot.pause()
        node = app.screen
        assert isinstance(node, NodeEditModal)
        assert node.query_one("#node-mirror-only", Select).value == "no"
        node.query_one("#node-mirror-only", Select).value = "default"
        await pilot.click("#save")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await settle(app, pilot)
    saved = load_plan(plan_path)
    assert saved.node_defaults.mirror_only is True
    assert [node.mirror_only for node in saved.nodes] == [None, False, False]
    assert [node.mirror_only for node in saved.resolved_nodes()] == [True, False, False]
