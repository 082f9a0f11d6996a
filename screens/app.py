"""The Textual wizard's App and its entry point (``regwiz`` with no subcommand, or ``--web``).

``RegwizApp`` holds the plan being edited, the in-memory secrets and the session (job outcomes
later steps show again), moves between the wizard's steps of ``screens.steps`` (saving the plan
atomically on every move) and offers the helpers every screen shares: asking the user a question
from a worker thread, showing an error, confirming quit while jobs run. All domain work is done by
``app.*`` modules; of those only ``app.cli`` imports this package, inside ``main`` when the wizard
is asked for, so the domain never loads textual.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import platformdirs
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from app.errors import RegwizError, UsageError
from app.paths import expand_user, unknown_home
from app.plan import default_plan_path
from assets import asset
from screens.palette import WizardCommands
from screens.session import WizardSession
from screens.steps import Step, step_by_name, steps_for

if TYPE_CHECKING:
    from app.plan import Plan, Secrets

ResultT = TypeVar("ResultT")

# How many recently used plan files the welcome screen lists.
RECENT_LIMIT = 8


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("regwiz"))


class RecentPlans:
    """The recently opened plan files, newest first, kept as JSON in the user's data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.file = data_dir / "recent.json"

    def load(self) -> list[Path]:
        try:
            raw = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # a missing or damaged list is simply empty
        if not isinstance(raw, list):
            return []
        return [Path(item) for item in raw if isinstance(item, str)][:RECENT_LIMIT]

    def remember(self, path: Path) -> None:
        from app.plan import atomic_write

        path = expand_user(path).resolve()
        paths = [path] + [p for p in self.load() if p != path]
        text = json.dumps([str(p) for p in paths[:RECENT_LIMIT]], indent=1)
        # A temp file of its own per write: --web runs one wizard process per browser tab.
        with contextlib.suppress(OSError):  # the list is a convenience: never fail the wizard
            atomic_write(self.file, text.encode("utf-8"), 0o644)


class RegwizApp(App[int]):
    """regwiz's interactive wizard."""

    TITLE = "regwiz"
    SUB_TITLE = "private TLS registry wizard"
    CSS_PATH = str(asset("regwiz.tcss"))
    COMMANDS = App.COMMANDS | {WizardCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1,question_mark", "help", "Help"),
        Binding("ctrl+t", "toggle_dark", "Theme", show=False),
    ]

    def __init__(
        self,
        plan_path: Path | None = None,
        *,
        data_dir: Path | None = None,
        secrets: Secrets | None = None,
        start: str = "welcome",
    ) -> None:
        super().__init__()
        self.plan_path: Path = expand_user(plan_path or default_plan_path())
        self.recent = RecentPlans(data_dir or default_data_dir())
        self.plan: Plan | None = None
        self._plan_on_disk: dict[str, Any] | None = None  # plan_to_dict at the last load/save
        self._secrets = secrets
        self.start_step = start
        self.current_step = "welcome"
        # Job outcomes that later screens show again survive screen switches.
        self.session = WizardSession()
        # What jobs time nodes with (their waits for the user left out); tests inject one.
        self.job_clock: Callable[[], float] = time.monotonic

    @property
    def steps(self) -> tuple[Step, ...]:
        """The plan's steps in order (screens.steps), for the step indicator, the palette and
        Back/Next: a registry regwiz did not deploy has no certificate or deploy steps."""
        return steps_for(self.plan is None or self.plan.registry.managed)

    # --- state -----------------------------------------------------------------------------

    @property
    def secrets(self) -> Secrets:
        """Secrets typed into the wizard (or from REGWIZ_* env vars); memory only, never saved."""
        if self._secrets is None:
            from app.plan import Secrets

            self._secrets = Secrets.from_env()
        return self._secrets

    @property
    def sudo_passwords(self) -> dict[str, str]:
        """The sudo passwords typed so far, per host (memory only, like every secret)."""
        return self.secrets.sudo_passwords

    def remember_sudo_password(self, hosts: Iterable[str], password: str | None, *,
                               shared: bool = False) -> None:
        """The sudo password the user typed for ``hosts`` (None or empty: none typed).

        Kept per host, so one step never overwrites another host's password. ``shared`` also
        makes it the fallback for hosts that have none of their own (the Nodes step's field,
        which is "the same for every node", so nodes added later use it too).
        """
        for host in hosts:
            if password:
                self.secrets.sudo_passwords[host] = password
            else:
                self.secrets.sudo_passwords.pop(host, None)
        if shared:
            self.secrets.sudo_password = password or None

    def require_plan(self) -> Plan:
        """The plan being edited; a new default plan if none was opened yet."""
        if self.plan is None:
            from app.plan import new_plan

            self.plan = new_plan()
            self.plan.path = self.plan_path
        return self.plan

    def open_plan(self, path: Path) -> Plan:
        """Load ``path`` (PlanError lists the problems) and make it the plan being edited."""
        from app.plan import load_plan

        path = expand_user(path)
        plan = load_plan(path)
        self.plan, self.plan_path = plan, path
        self._remember_plan_on_disk()
        self.session.clear()  # job outcomes shown again belong to the previous plan
        self.recent.remember(path)
        return plan

    def start_new_plan(self, path: Path | None = None) -> Plan:
        from app.plan import new_plan

        self.plan_path = expand_user(path or self.plan_path)
        self.plan = new_plan()
        self.plan.path = self.plan_path
        self._plan_on_disk = None
        self.session.clear()
        return self.plan

    def save_plan(self) -> bool:
        """Write the plan atomically; show the problem and return False when that fails."""
        if self.plan is None:
            return True
        from app.plan import save_plan

        try:
            self._take_changes_made_outside()
            save_plan(self.plan, self.plan_path)  # creates the folder; OSError -> RegwizError
        except (RegwizError, OSError) as error:
            self.show_error("The plan could not be saved", error)
            return False
        self.plan.path = self.plan_path
        self._remember_plan_on_disk()
        self.recent.remember(self.plan_path)
        return True

    def _remember_plan_on_disk(self) -> None:
        """The plan as the file now holds it: what a later save compares the file with."""
        from app.plan import plan_to_dict

        # a copy: the plan's lists (SANs, nodes) are edited in place and must not edit it too
        self._plan_on_disk = (copy.deepcopy(plan_to_dict(self.plan)) if self.plan is not None
                              else None)

    def _take_changes_made_outside(self) -> None:
        """Keep what another program wrote to the plan file since the wizard last read or wrote
        it (e.g. the pin a CLI deploy records); where both changed a key, the wizard's value
        wins and the other version stays in the .bak file."""
        from app.plan import PlanError, adopt_plan, load_plan, merge_plan_changes, plan_to_dict

        if self._plan_on_disk is None or self.plan is None or not self.plan_path.exists():
            return
        try:
            theirs = load_plan(self.plan_path)
        except PlanError:
            return  # save_plan refuses to overwrite it and says why
        if plan_to_dict(theirs) == self._plan_on_disk:
            return
        merge = merge_plan_changes(self._plan_on_disk, self.plan, theirs)
        adopt_plan(self.plan, merge.plan)
        if merge.taken:
            self.notify(f"{self.plan_path.name} was changed outside the wizard; kept: "
                        f"{', '.join(merge.taken)}", timeout=8)
        if merge.conflicts:
            self.notify(f"{self.plan_path.name} was also changed outside the wizard at "
                        f"{', '.join(merge.conflicts)}: the wizard's values were saved, the "
                        f"other version is in {self.plan_path.name}.bak",
                        severity="warning", timeout=12)

    # --- navigation ------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(self.make_screen(self.start_step))
        self.current_step = self.start_step

    def make_screen(self, name: str) -> Screen[Any]:
        return step_by_name(name).screen_class()()

    def goto(self, name: str, *, save: bool = True) -> bool:
        """Switch to the wizard step ``name``, saving the plan first. False when blocked."""
        step_by_name(name)  # KeyError for a typo is a programming error, not user input
        if self.busy_workers():
            self.notify(
                "A job is still running: wait for it or cancel it first.",
                severity="warning",
            )
            return False
        if save and not self.save_plan():
            return False
        self.current_step = name
        while len(self.screen_stack) > 2:
            self.pop_screen()  # drop any modal left above the step screen
        self.switch_screen(self.make_screen(name))
        return True

    def goto_relative(self, offset: int) -> bool:
        names = [step.name for step in self.steps]
        if self.current_step not in names:  # e.g. the plan's kind changed on this step
            return self.goto(names[0 if offset < 0 else min(1, len(names) - 1)])
        index = names.index(self.current_step) + offset
        if 0 <= index < len(names):
            return self.goto(names[index])
        return False

    # --- workers, questions and errors ----------------------------------------------------

    def busy_workers(self) -> list[Worker[Any]]:
        """Workers doing real jobs (the status panel's periodic refresh does not count)."""
        return [
            worker
            for worker in self.workers
            if worker.state in (WorkerState.PENDING, WorkerState.RUNNING)
            and not worker.group.startswith("background")
        ]

    def ask_from_thread(
        self,
        screen: Screen[ResultT],
        should_stop: Callable[[], bool] | None = None,
    ) -> ResultT | None:
        """From a worker thread: show ``screen`` and block until the user dismisses it.

        Returns None when the worker is cancelled (or the app closes) before an answer.
        """
        answered = threading.Event()
        box: list[ResultT | None] = [None]

        def receive(result: ResultT | None) -> None:
            box[0] = result
            answered.set()

        try:
            self.call_from_thread(self.push_screen, screen, receive)
            while not answered.wait(0.1):
                if not self.is_running:
                    return None  # the app is gone: nobody can answer
                if should_stop and should_stop():
                    self.call_from_thread(_dismiss_quietly, screen)
                    return None
        except RuntimeError:
            return None  # the app stopped between the check and the call
        return box[0]

    def show_error(self, title: str, error: BaseException | str) -> None:
        from screens.error_modal import ErrorModal

        self.push_screen(ErrorModal.from_error(title, error))

    def report_worker_failure(self, worker: Worker[Any]) -> None:
        """Called by screens on Worker.StateChanged(ERROR): an error modal, never a crash."""
        error = worker.error or RuntimeError("unknown error")
        self.show_error(f"{worker.name or 'A job'} failed", error)

    # --- actions -----------------------------------------------------------------------------

    def action_help(self) -> None:
        from screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(step_by_name(self.current_step)))

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    async def action_quit(self) -> None:
        if not self.busy_workers():
            self.exit(0)
            return
        from screens.confirm import ConfirmModal

        def decide(quit_now: bool | None) -> None:
            if quit_now:
                self.workers.cancel_all()
                self.exit(0)

        self.push_screen(
            ConfirmModal(
                "A job is still running",
                "Quit anyway? Running jobs are cancelled between steps; a step already "
                "started on a host finishes or times out first.",
                confirm_label="Cancel jobs and quit",
                cancel_label="Keep working",
                danger=True,
            ),
            decide,
        )

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Keys and what each wizard step does", self.action_help)
        yield SystemCommand(
            "Toggle light/dark", "Switch between light and dark", self.action_toggle_dark
        )


def _dismiss_quietly(screen: Screen[Any]) -> None:
    if screen.is_attached:
        screen.dismiss(None)


def run_tui(args: argparse.Namespace) -> int:
    """Entry point from ``regwiz`` with no subcommand."""
    plan_arg = getattr(args, "plan", None)
    if plan_arg and unknown_home(plan_arg):  # "~someone/plan.toml", no such user here
        raise UsageError(f"--plan {plan_arg}: no such user's home directory",
                         "give the plan file's full path")
    plan_path = expand_user(plan_arg) if plan_arg else None
    if getattr(args, "web", False):
        from screens.web import DEFAULT_BIND, DEFAULT_PORT, serve_web

        return serve_web(plan_path, int(getattr(args, "web_port", None) or DEFAULT_PORT),
                         str(getattr(args, "web_bind", None) or DEFAULT_BIND))
    result = RegwizApp(plan_path).run()
    return int(result or 0)
