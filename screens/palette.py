"""Command palette (ctrl+p) provider: every wizard step, plus the current step's own actions."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from screens.wizard_screen import WizardScreen

if TYPE_CHECKING:
    from screens.app import RegwizApp


class WizardCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = cast("RegwizApp", self.app)
        commands: list[tuple[str, str, Callable[[], object]]] = [
            (f"Go to: {step.title}", f"Step {n} of the wizard", partial(app.goto, step.name))
            for n, step in enumerate(app.steps, start=1)
        ]
        screen = self.screen
        if isinstance(screen, WizardScreen):
            commands += screen.palette_actions()
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
