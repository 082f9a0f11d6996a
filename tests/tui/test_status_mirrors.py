"""The status panel's node rows show which mirrors each node uses (issue 14)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from app.status import MirrorState, NodeMirrorStatus
from screens.status import StatusScreen
from tests.tui.conftest import AppFactory
from tests.tui.test_snapshots import sample_report


async def test_node_rows_name_each_mirror_and_a_missing_one_is_stale(
    make_app: AppFactory, plan_path: Path
) -> None:
    report = sample_report()
    assert report.nodes is not None
    report.nodes[0].mirrors = [
        NodeMirrorStatus("docker.io", "docker", MirrorState.CONFIGURED),
        NodeMirrorStatus("quay.io", "docker", MirrorState.MISSING, "no hosts.toml")]
    app = make_app("nodes")
    async with app.run_test(size=(160, 40)) as pilot:
        screen = StatusScreen(live=False)
        await app.switch_screen(screen)
        await pilot.pause()
        screen.show_report(report)
        await pilot.pause()
        table = screen.query_one("#trust-table", DataTable)
        detail = str(table.get_cell("198.18.0.3", "detail"))
        assert detail.endswith("; mirrors: docker.io ✓, quay.io ✗ (no hosts.toml)")
        state = str(screen.query_one("#status-state", Static).render())
        assert "3 node(s) not trusting the current CA or not using the mirrors" in state
