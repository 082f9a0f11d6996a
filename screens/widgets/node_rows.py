"""One live row per node, each its own widget.

A DataTable re-renders every visible cell whenever one cell changes; with tens of nodes
reporting several times a second that stalled the event loop for 100-200 ms under load. Here an
update re-renders only the row that changed. Enter or a click on a row posts ListView.Selected.
Cells wrap inside their column (an error message is read, not cut off at 80 columns); a row
asks for a layout pass only when its number of lines changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import ListItem, ListView, Static


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None  # None: the rest of the line


def render_row(columns: tuple[Column, ...], values: dict[str, Text]) -> RenderableType:
    """One row as a grid: fixed columns, the last one takes the rest; long text wraps."""
    grid = Table.grid(padding=(0, 1, 0, 0), expand=True)
    for column in columns:
        if column.width is None:
            grid.add_column(ratio=1, overflow="fold")
        else:
            grid.add_column(width=column.width, overflow="fold")
    grid.add_row(*(values.get(column.key, Text("")) for column in columns))
    return grid


class NodeRow(ListItem):
    DEFAULT_CSS = """
    NodeRow > .node-row-text { height: auto; }
    """

    def __init__(self, host: str, columns: tuple[Column, ...], values: dict[str, Text]) -> None:
        super().__init__(classes="node-row")
        self.host = host
        self.columns = columns
        self.values = dict(values)
        self.lines = 0  # lines the row had when last drawn (0: not measured yet)

    def compose(self) -> ComposeResult:
        yield Static(render_row(self.columns, self.values), classes="node-row-text")

    def set_values(self, **values: Text | str) -> None:
        changed = False
        for key, value in values.items():
            text = value if isinstance(value, Text) else Text(value)
            if self.values.get(key) != text:
                self.values[key] = text
                changed = True
        if changed and self.is_mounted:
            self.redraw()

    def redraw(self) -> None:
        row = render_row(self.columns, self.values)
        lines = self.count_lines(row)
        # layout=False while the height stays: a layout pass re-arranges the whole screen.
        self.query_one(Static).update(row, layout=lines is None or lines != self.lines)
        self.lines = lines or 0

    def on_resize(self) -> None:
        self.lines = 0  # wrapped at another width now: the next update measures afresh

    def count_lines(self, row: RenderableType) -> int | None:
        """How many lines ``row`` takes at this row's width (None before the first layout)."""
        width = self.query_one(Static).content_region.width
        if width <= 0:
            return None
        console = self.app.console
        return len(console.render_lines(row, console.options.update_width(width), pad=False))


class NodeRows(ListView):
    """Rows keyed by host; ``cell(host, key)`` reads back what a row shows."""

    DEFAULT_CLASSES = "node-rows"

    def __init__(self, columns: tuple[Column, ...], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.columns = columns
        self.by_host: dict[str, NodeRow] = {}

    def header(self) -> RenderableType:
        return render_row(self.columns, {c.key: Text(c.label, style="bold") for c in self.columns})

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
