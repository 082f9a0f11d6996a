"""The editable list of Subject Alternative Names.

Entries the operator added can be removed; the common name and the registry address are always
included by app.plan's ``all_sans`` and are listed as automatic, without a remove button.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from app.validate import check_san, is_ip_address, warnings_for_san
from screens import validators


class SanRow(Horizontal):
    DEFAULT_CLASSES = "san-row"

    def __init__(self, san: str, *, automatic: str | None = None) -> None:
        super().__init__()
        self.san = san
        self.automatic = automatic

    def compose(self) -> ComposeResult:
        yield Label(self.san, classes="san-value", markup=False)
        if self.automatic:
            yield Label(f"automatic: {self.automatic}", classes="san-auto")
        else:
            warnings = warnings_for_san(self.san)
            yield Label(
                f"⚠ {warnings[0]}" if warnings else "", classes="san-warning", markup=False
            )
            button = Button("Remove", classes="san-remove", compact=True)
            button.tooltip = f"Remove {self.san}"
            yield button


class SanList(Vertical):
    """``sans`` are the operator's entries; ``set_automatic`` shows the derived ones."""

    DEFAULT_CLASSES = "san-list"

    @dataclass
    class Changed(Message):
        san_list: SanList

    def __init__(self, sans: list[str], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.sans: list[str] = list(dict.fromkeys(sans))
        self.automatic: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Label("Subject alternative names (SANs)", classes="field-label")
        with Horizontal(id="san-add-row"):
            yield Input(
                placeholder="DNS name or IP, e.g. registry.lan or 198.18.0.2",
                compact=True,
                id="san-input",
                validators=[validators.san()],
                validate_on=["submitted"],
            )
            yield Button("Add", id="san-add", compact=True)
        yield Static("", id="san-message", classes="field-message", markup=False)
        yield Vertical(id="san-rows")
        yield Static(
            "Every name and IP that image references use must be listed; clients reject "
            "certificates whose SANs do not match.",
            classes="field-help",
        )

    def on_mount(self) -> None:
        self.query_one("#san-message", Static).display = False
        self.rebuild()

    def set_automatic(self, entries: list[tuple[str, str]]) -> None:
        """(value, why) pairs, e.g. ("registry.lan", "common name"); invalid values are skipped."""
        cleaned = [(v, why) for v, why in entries if v and check_san(v) is None]
        if cleaned != self.automatic:
            self.automatic = cleaned
            if self.is_mounted:
                self.rebuild()

    def all_values(self) -> list[str]:
        values = [value for value, _ in self.automatic] + self.sans
        return list(dict.fromkeys(v if is_ip_address(v) else v.lower() for v in values))

    def rebuild(self) -> None:
        rows = self.query_one("#san-rows", Vertical)
        rows.remove_children()
        auto_values = {value.lower() for value, _ in self.automatic}
        new_rows: list[SanRow] = []
        for value, why in self.automatic:
            if value.lower() not in {row.san.lower() for row in new_rows}:
                new_rows.append(SanRow(value, automatic=why))
        new_rows += [SanRow(san) for san in self.sans if san.lower() not in auto_values]
        rows.mount_all(new_rows)

    def add_san(self, value: str) -> str | None:
        """Add ``value``; returns the problem instead when it is invalid or already listed."""
        value = value.strip()
        problem = check_san(value) if value else "type a DNS name or an IP address first"
        if problem is None and value.lower() in {v.lower() for v in self.all_values()}:
            problem = f"{value} is already in the list"
        if problem is None:
            self.sans.append(value)
            self.rebuild()
            self.post_message(self.Changed(self))
        self._show(problem)
        return problem

    def remove_san(self, value: str) -> None:
        if value in self.sans:
            self.sans.remove(value)
            self.rebuild()
            self.post_message(self.Changed(self))

    def _show(self, problem: str | None) -> None:
        message = self.query_one("#san-message", Static)
        message.update(problem or "")
        message.set_class(bool(problem), "-error")
        message.display = bool(problem)

    def _add_from_input(self) -> None:
        field = self.query_one("#san-input", Input)
        if self.add_san(field.value) is None:
            field.value = ""

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "san-add":
            event.stop()
            self._add_from_input()
        elif event.button.has_class("san-remove"):
            event.stop()
            row = next(a for a in event.button.ancestors if isinstance(a, SanRow))
            self.remove_san(row.san)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "san-input":
            event.stop()
            self._add_from_input()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "san-input":
            event.stop()
            self._show(None)
