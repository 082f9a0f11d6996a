"""One live row per node, each its own widget.

A DataTable re-renders every visible cell whenever one cell changes; with tens of nodes
reporting several times a second that stalled the event loop for 100-200 ms under load. Here an
update re-renders only the row that changed. Enter or a click on a row posts ListView.Selected.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import ListItem, ListView, Static


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None  # None: the rest of the line


def render_line(columns: tuple[Column, ...], values: dict[str, Text]) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    for column in columns:
        cell = values.get(column.key, Text("")).copy()
        if column.width is not None:
            cell.truncate(column.width, overflow="ellipsis", pad=True)
            cell.append(" ")
        line.append_text(cell)
    return line


class NodeRow(ListItem):
    # One line whatever the text (render_line never wraps), so an update needs no layout pass.
    DEFAULT_CSS = """
    NodeRow > .node-row-text { height: 1; }
    """

    def __init__(self, host: str, columns: tuple[Column, ...], values: dict[str, Text]) -> None:
        super().__init__(classes="node-row")
        self.host = host
        self.columns = columns
        self.values = dict(values)

    def compose(self) -> ComposeResult:
        yield Static(render_line(self.columns, self.values), classes="node-row-text")

    def set_values(self, **values: Text | str) -> None:
        changed = False
        for key, value in values.items():
            text = value if isinstance(value, Text) else Text(value)
            if self.values.get(key) != text:
                self.values[key] = text
                changed = True
        if changed and self.is_mounted:
            # layout=False: the row keeps its size; a layout pass re-arranges the whole screen.
            self.query_one(Static).update(render_line(self.columns, self.values), layout=False)


class NodeRows(ListView):
    """Rows keyed by host; ``cell(host, key)`` reads back what a row shows."""

    DEFAULT_CLASSES = "node-rows"

    def __init__(self, columns: tuple[Column, ...], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.columns = columns
        self.by_host: dict[str, NodeRow] = {}

    def header(self) -> Text:
        return render_line(self.columns, {c.key: Text(c.label, style="bold") for c in self.columns})

    def set_rows(self, rows: list[tuple[str, dict[str, Text]]]) -> None:
        self.clear()
        self.by_host = {host: NodeRow(host, self.columns, values) for host, values in rows}
        self.extend(self.by_host.values())
        if self.by_host:
            self.index = 0

    def update_row(self, host: str, **values: Text | str) -> None:
        row = self.by_host.get(host)
        if row is not None:
            row.set_values(**values)

    def cell(self, host: str, key: str) -> str:
        return self.by_host[host].values.get(key, Text("")).plain

    @property
    def hosts(self) -> list[str]:
        return list(self.by_host)
