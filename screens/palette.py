"""Command palette (ctrl+p) provider: every wizard step, plus the current step's own actions.

It knows the App and the step screens only by the two small protocols below, so the App (which
lists this provider) and the screens (which offer actions) never import each other through it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from screens.steps import Step

# (title, help, callback) of one palette entry.
PaletteAction = tuple[str, str, Callable[[], object]]


@runtime_checkable
class OffersPaletteActions(Protocol):
    """A screen with actions of its own (every WizardScreen)."""

    def palette_actions(self) -> list[PaletteAction]: ...


class StepNavigator(Protocol):
    """What the palette needs of the App (RegwizApp)."""

    @property
    def steps(self) -> tuple[Step, ...]: ...

    def goto(self, name: str, *, save: bool = True) -> bool: ...


class WizardCommands(Provider):
    def _commands(self) -> list[PaletteAction]:
        app = cast("StepNavigator", self.app)
        commands: list[PaletteAction] = [
            (f"Go to: {step.title}", f"Step {n} of the wizard", partial(app.goto, step.name))
            for n, step in enumerate(app.steps, start=1)
        ]
        screen = self.screen
        if isinstance(screen, OffersPaletteActions):
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
