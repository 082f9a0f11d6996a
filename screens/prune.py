"""Prune old tags, as a modal opened from the Status step (``regwiz prune`` in the wizard).

The rule's fields are checked as they are typed; **Preview** lists, in a thread worker, what
would go and what stays (and why) without changing anything; **Delete…** asks for confirmation,
then deletes in a thread worker with a progress bar and one row update per manifest. Editing a
field after a preview asks for a new preview before anything can be deleted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Static
from textual.worker import get_current_worker

from app.errors import RegwizError
from app.plan import Plan, Secrets
from app.retention import DeleteState, PrunePlan, RetentionRule, Verdict
from screens import validators
from screens.messages import JobFailed, PruneFinished, PrunePreviewed, PruneProgressed

if TYPE_CHECKING:
    from app.htpasswd import Credentials
    from app.image_facts import RegistryReader
    from app.retention import DeleteResult
    from screens.app import RegwizApp

JOB = "prune"
DELETE_OFF = "deleting is off (registry.delete_enabled = false)"
_GLOB = re.compile(r"^[A-Za-z0-9_.\-*?\[\]/]+$")
VERDICT_STYLE = {Verdict.KEEP: "green", Verdict.DELETE: "bold red"}
STATE_STYLE = {DeleteState.DELETED: "bold red", DeleteState.GONE: "dim",
               DeleteState.SKIPPED: "yellow", DeleteState.FAILED: "bold red reverse"}


def check_count(value: str, *, what: str, optional: bool = False) -> str | None:
    text = value.strip()
    if not text:
        return None if optional else "required"
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        return f"{what}: expected a whole number from 1 to 100000, got {text[:20]!r}"
    return None


def globs(value: str) -> tuple[str, ...]:
    """Patterns typed separated by spaces or commas."""
    return tuple(part for part in re.split(r"[\s,]+", value.strip()) if part)


def check_globs(value: str) -> str | None:
    bad = [glob for glob in globs(value) if not _GLOB.match(glob)]
    if bad:
        return (f"not a tag or repository pattern: {bad[0][:30]!r} (letters, digits, . _ - / "
                "and the wildcards * ? [ ])")
    return None


class PruneModal(ModalScreen[bool]):
    """Dismisses with True when something was deleted (the status should be refreshed)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, plan: Plan, secrets: Secrets, credentials: Credentials | None,
                 wizard: RegwizApp | None = None) -> None:
        super().__init__(classes="modal")
        self.wizard = wizard  # to turn delete on: save the plan, go to Deploy
        self.plan = plan
        self.secrets = secrets
        self.credentials = credentials
        self.preview: PrunePlan | None = None  # the last preview, for the fields as they are
        self.deleted_any = False
        self.deleting = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="prune-dialog"):
            yield Label("Prune old tags", classes="dialog-title")
            yield Static("Keeps each repository's newest N tags (by image creation time), "
                         "protected and undated tags, and any tag sharing a kept tag's "
                         "manifest. Disk is freed by the registry's garbage collection.",
                         classes="dialog-body", markup=False)
            with Horizontal(classes="prune-fields"):
                yield Label("keep last", classes="switch-label prune-label")
                yield Input("3", id="keep-last", compact=True, validators=[validators.Checked(
                    lambda v: check_count(v, what="keep last"))])
                yield Label("older than (days)", classes="switch-label")
                yield Input("", id="older-than", compact=True, placeholder="any age",
                            validators=[validators.Checked(
                                lambda v: check_count(v, what="older than", optional=True))])
            with Horizontal(classes="prune-fields"):
                yield Label("protect tags", classes="switch-label prune-label")
                yield Input("", id="protect", compact=True,
                            placeholder="tag patterns never deleted, e.g. latest stable-*",
                            validators=[validators.Checked(check_globs)])
            with Horizontal(classes="prune-fields"):
                yield Label("repositories", classes="switch-label prune-label")
                yield Input("", id="repos", compact=True,
                            placeholder="patterns, e.g. team/* (empty: every repository)",
                            validators=[validators.Checked(check_globs)])
            with Horizontal(classes="dialog-buttons"):
                yield Button("Preview", id="preview", variant="primary", compact=True)
                yield Button("Delete…", id="delete", variant="error", compact=True,
                             disabled=True)
                yield Button("Enable delete…", id="enable-delete", compact=True)
                yield Button("Close", id="close", compact=True)
            yield Static("", id="prune-problems", markup=False)
            yield DataTable(id="prune-table", cursor_type="row", zebra_stripes=True)
            yield ProgressBar(id="prune-progress", show_eta=False)
            yield Static("", id="prune-result", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#prune-table", DataTable)
        for key, label in (("repository", "repository"), ("tag", "tag"), ("verdict", "verdict"),
                           ("created", "created"), ("reason", "why")):
            table.add_column(label, key=key)
        self.query_one("#prune-progress", ProgressBar).display = False
        self.query_one("#enable-delete", Button).display = not self.plan.registry.delete_enabled
        if not self.plan.registry.delete_enabled:
            self.say(f"{DELETE_OFF}: Preview shows what would go; Enable delete… turns it on "
                     "(a redeploy with the same data)")

    def say(self, text: str) -> None:
        self.query_one("#prune-result", Static).update(text)

    # --- the rule ---------------------------------------------------------------------------

    def rule(self) -> RetentionRule | None:
        """The rule the fields describe, or None (the problems are shown)."""
        problems = [
            f"{result.failure_descriptions[0]}" for widget in self.query(Input)
            if (result := widget.validate(widget.value)) is not None and not result.is_valid]
        self.query_one("#prune-problems", Static).update("\n".join(f"✗ {p}" for p in problems))
        if problems:
            return None
        older = self.query_one("#older-than", Input).value.strip()
        return RetentionRule(int(self.query_one("#keep-last", Input).value.strip()),
                             int(older) if older else None,
                             globs(self.query_one("#protect", Input).value),
                             globs(self.query_one("#repos", Input).value))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.preview = None  # the listing no longer matches the fields
        self.query_one("#delete", Button).disabled = True
        self.rule()

    # --- buttons ----------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button = event.button.id
        if button == "close":
            self.action_close()
        elif self.deleting or any(not w.is_finished for w in self.workers):
            return
        elif button == "preview" and (rule := self.rule()) is not None:
            self.say("reading the registry…")
            self.query_one("#preview", Button).disabled = True
            self.run_preview(rule)
        elif button == "delete" and self.preview is not None:
            self.ask_delete(self.preview)
        elif button == "enable-delete":
            self.ask_enable_delete()

    def ask_enable_delete(self) -> None:
        """Set delete_enabled in the plan, save it and go to Deploy: deploying again recreates
        the registry container with the same data directory."""
        from screens.confirm import ConfirmModal

        def answered(yes: bool | None) -> None:
            if not yes or self.wizard is None:
                return
            self.plan.registry.delete_enabled = True
            if not self.wizard.save_plan():
                self.plan.registry.delete_enabled = False
                return
            self.dismiss(False)
            self.wizard.goto("deploy", save=False)

        self.app.push_screen(ConfirmModal(
            "Allow deleting?",
            "Sets registry.delete_enabled = true in the plan and opens the Deploy step: "
            "deploying again recreates the registry container with the same data directory "
            "(every image stays; pulls pause for a few seconds). Then come back to Prune.",
            confirm_label="Enable and go to Deploy", cancel_label="Not now"), answered)

    def ask_delete(self, prune: PrunePlan) -> None:
        from screens.confirm import ConfirmModal

        doomed = prune.to_delete
        names = [f"{r.name}:{d.tag}" for r in prune.repositories for d in r.decisions
                 if d.deleted]
        shown = "\n".join(names[:12]) + (f"\n… and {len(names) - 12} more"
                                         if len(names) > 12 else "")
        body = (f"Delete {len(doomed)} tag(s) ({prune.manifest_count} manifest(s)) from "
                f"{self.plan.registry_reference}? This cannot be undone.\n\n{shown}")

        def answered(yes: bool | None) -> None:
            if yes and self.preview is prune:
                self.start_delete(prune)

        self.app.push_screen(ConfirmModal("Delete tags?", body, confirm_label="Delete",
                                          cancel_label="Keep them", danger=True), answered)

    def start_delete(self, prune: PrunePlan) -> None:
        self.deleting = True
        for widget in (*self.query(Input), self.query_one("#preview", Button),
                       self.query_one("#delete", Button)):
            widget.disabled = True
        bar = self.query_one("#prune-progress", ProgressBar)
        bar.display = True
        bar.update(total=max(prune.manifest_count, 1), progress=0)
        self.say(f"deleting {prune.manifest_count} manifest(s)…")
        self.run_delete(prune)

    def action_close(self) -> None:
        # a running deletion stops between two manifests (the worker is cancelled with us)
        self.dismiss(self.deleted_any)

    # --- workers ----------------------------------------------------------------------------

    def reader(self) -> RegistryReader:
        from app.image_facts import RegistryReader
        from app.verify import registry_auth

        auth = registry_auth(self.plan, self.secrets, self.credentials)
        return RegistryReader.for_plan(self.plan, auth)

    @work(thread=True, exit_on_error=False, group=JOB, name="Prune preview")
    def run_preview(self, rule: RetentionRule) -> None:
        from app.retention import plan_prune, require_prunable

        try:
            require_prunable(self.plan, deleting=False)
            prune = plan_prune(self.reader(), rule)
        except RegwizError as error:
            self.post_message(JobFailed(JOB, error.message, error.hint))
            return
        self.post_message(PrunePreviewed(prune))

    @work(thread=True, exit_on_error=False, group=JOB, name="Prune")
    def run_delete(self, prune: PrunePlan) -> None:
        from app.retention import require_prunable, run_prune

        worker = get_current_worker()

        def progressed(result: DeleteResult) -> None:
            self.post_message(PruneProgressed(result))

        try:
            require_prunable(self.plan, deleting=True)
            report = run_prune(self.reader(), prune, on_progress=progressed,
                               cancelled=lambda: worker.is_cancelled)
        except RegwizError as error:
            self.post_message(JobFailed(JOB, error.message, error.hint))
            return
        self.post_message(PruneFinished(report))

    # --- results ----------------------------------------------------------------------------

    def on_prune_previewed(self, message: PrunePreviewed) -> None:
        prune = message.prune
        self.query_one("#preview", Button).disabled = False
        table = self.query_one("#prune-table", DataTable)
        table.clear()
        if prune.error is not None:
            self.say(f"✗ cannot list the registry: {prune.error}")
            return
        for repository in prune.repositories:
            for decision in repository.decisions:
                # Text, not str: a str cell is read as markup ("protected (v[12])")
                table.add_row(Text(repository.name), Text(decision.tag),
                              Text(decision.verdict.value,
                                   style=VERDICT_STYLE[decision.verdict]),
                              Text((decision.created or "unknown")[:10]), Text(decision.reason),
                              key=f"{repository.name}:{decision.tag}")
        self.preview = prune
        count = len(prune.to_delete)
        allowed = self.plan.registry.delete_enabled
        self.query_one("#delete", Button).disabled = not (count and allowed)
        text = (f"{count} tag(s) to delete ({prune.manifest_count} manifest(s)), "
                f"{len(prune.to_keep)} kept, in {len(prune.repositories)} repositories")
        if count and not allowed:
            text += (f"\n{DELETE_OFF}: Enable delete… sets registry.delete_enabled = true and "
                     "opens Deploy (a redeploy with the same data)")
        self.say(text)

    def on_prune_progressed(self, message: PruneProgressed) -> None:
        result = message.result
        self.query_one("#prune-progress", ProgressBar).update(progress=result.done)
        table = self.query_one("#prune-table", DataTable)
        for tag in result.tags:
            key = f"{result.repository}:{tag}"
            if key in table.rows:
                table.update_cell(key, "verdict", Text(result.state.value,
                                                       style=STATE_STYLE[result.state]))
                if result.message:
                    table.update_cell(key, "reason", Text(result.message))
        if result.state is DeleteState.DELETED:
            self.deleted_any = True
        self.say(f"{result.done}/{result.total}: {result.state.value} "
                 f"{result.repository}:{', '.join(result.tags)}")

    def on_prune_finished(self, message: PruneFinished) -> None:
        report = message.report
        self.deleting = False
        self.preview = None
        for widget in (*self.query(Input), self.query_one("#preview", Button)):
            widget.disabled = False
        text = (f"{'✓' if report.ok else '✗'} {len(report.deleted_tags)} tag(s) deleted, "
                f"{len(report.failed)} failed; the space comes back when the registry's "
                "garbage collection runs")
        if report.stopped:
            text += f"\nstopped: {report.stopped}"
        self.say(text)

    def on_job_failed(self, message: JobFailed) -> None:
        message.stop()
        self.deleting = False
        self.query_one("#preview", Button).disabled = False
        for widget in self.query(Input):
            widget.disabled = False
        hint = f"\nhint: {message.hint}" if message.hint else ""
        self.say(f"✗ {message.error}{hint}")
