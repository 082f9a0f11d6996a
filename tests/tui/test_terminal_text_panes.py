"""Issue 12 item 7 in the TUI: a node's log pane shows remote text without its controls."""

from __future__ import annotations

from textual.app import App
from textual.widgets import RichLog

from screens.node_log import NodeLogModal


async def test_node_log_pane_drops_terminal_control() -> None:
    app: App[None] = App()
    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(NodeLogModal("198.18.0.9", [
            "failed: stderr before\x1b]0;evil\x07middle\x1b[2Jafter"]))
        await pilot.pause()
        log = app.screen.query_one(RichLog)
        text = "\n".join(line.text for line in log.lines)
        assert "beforemiddleafter" in text
        assert "\x1b" not in text and "\x07" not in text
