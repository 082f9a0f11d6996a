"""Back / Next buttons at the bottom of every wizard step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static


class NavBar(Horizontal):
    """Back on the left, an optional status text, Next on the right."""

    def __init__(
        self,
        *,
        back: bool = True,
        next_label: str = "Next ›",
        show_next: bool = True,
    ) -> None:
        super().__init__(id="nav-bar")
        self.show_back = back
        self.next_label = next_label
        self.show_next = show_next

    def compose(self) -> ComposeResult:
        yield Button("‹ Back", id="back", disabled=not self.show_back, compact=True)
        yield Static("", id="nav-status", markup=False)
        if self.show_next:
            yield Button(self.next_label, id="next", variant="primary", compact=True)

    def set_status(self, text: str) -> None:
        self.query_one("#nav-status", Static).update(text)

    def block_next(self, blocked: bool) -> None:
        for button in self.query("#next").results(Button):
            button.disabled = blocked
