"""Add or edit one pull-through cache: a ``[[mirrors]]`` entry of the plan.

Each field is checked with its app.validate rule as you type. The rules between fields (a port
the registry or another mirror uses, an upstream mirrored twice, an upstream regwiz does not know
without a remote URL) come from ``validate_plan`` run on a copy of the plan that holds this
mirror, and show under the field they are about. Save stays disabled while anything is wrong.
Adding starts from a preset (a well-known upstream, its URL and a free port) or "Other…".

Dismisses with a MirrorSettings, or None when cancelled.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection

from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Button, Input, Label, Select, Static

from app.plan import (
    WELL_KNOWN_UPSTREAMS,
    WELL_KNOWN_VERIFY_IMAGES,
    MirrorSettings,
    Plan,
    validate_plan,
)
from screens import validators
from screens.form_modal import FormModal
from screens.widgets.dialog_buttons import DialogButtons
from screens.widgets.form_field import FormField, Warner
from screens.widgets.labeled_control import LabeledControl

OTHER = "other"  # the preset for any registry the user names
FIRST_PORT = 5001  # where mirrors' ports start: next to the registry's, easy to remember
# The plan key of each field of the form.
FIELDS = {"upstream": "mirror-upstream", "port": "mirror-port", "remote_url": "mirror-url",
          "remote_ca": "mirror-ca", "username": "mirror-user", "verify_image": "mirror-verify"}
_PROBLEM = re.compile(r"mirrors\[(\d+)\](?:\.(\w+))?: (.*)")
_MIRROR_KEY = re.compile(r"mirrors\[(\d+)\](?:\.port)?")


def free_port(plan: Plan, editing: int | None = None) -> int:
    """The first port from 5001 that neither the registry nor another mirror publishes."""
    taken = {plan.registry.port} | {mirror.port for index, mirror in enumerate(plan.mirrors)
                                    if index != editing}
    port = FIRST_PORT
    while port in taken:
        port += 1
    return port


def first_preset(plan: Plan) -> str:
    """The first well-known upstream the plan does not mirror yet (else "Other…")."""
    mirrored = {mirror.upstream for mirror in plan.mirrors}
    return next((name for name in WELL_KNOWN_UPSTREAMS if name not in mirrored), OTHER)


def verify_help(upstream: str) -> str:
    """What verify pulls through the cache when the field is left empty."""
    default = WELL_KNOWN_VERIFY_IMAGES.get(upstream)
    return (f"Empty: {default}." if default else
            "A small image verify pulls through the cache.")


def password_line(mirror: MirrorSettings | None, known: Collection[str]) -> str:
    """What the form says about access: public, or private and where the password comes from."""
    if mirror is None or not mirror.private:
        return "Public cache: anyone may pull, anonymously; pushes are refused."
    variable = mirror.password_env if mirror.upstream else "REGWIZ_MIRROR_<NAME>_PASSWORD"
    state = "set" if variable in known else "not set yet: export it before deploying"
    return (f"Private cache: only the plan's accounts may pull. The upstream password comes "
            f"from ${variable} ({state}); it is never saved in the plan.")


class MirrorEditModal(FormModal[MirrorSettings]):

    def __init__(self, plan: Plan, index: int | None = None, *,
                 known_passwords: Collection[str] = ()) -> None:
        super().__init__(classes="modal")
        self.plan = plan
        self.index = index  # None: a new mirror, appended
        self.known_passwords = set(known_passwords)
        self.preset = first_preset(plan) if index is None else OTHER
        self._checked: tuple[tuple[str, ...], dict[str, str]] | None = None

    def initial(self) -> MirrorSettings:
        if self.index is not None:
            return self.plan.mirrors[self.index]
        port = free_port(self.plan)
        return MirrorSettings(upstream="" if self.preset == OTHER else self.preset, port=port)

    def compose(self) -> ComposeResult:
        mirror = self.initial()
        registry_port = self.plan.registry.port
        title = "Add mirror" if self.index is None else f"Edit the mirror of {mirror.upstream}"
        with Vertical(classes="dialog node-dialog fields-dialog mirror-dialog"):
            yield Label(title, classes="dialog-title", markup=False)
            # the fields scroll when their messages need more rows than the screen has
            with VerticalScroll(classes="dialog-fields", can_focus=False), \
                    Grid(classes="form-grid"):
                if self.index is None:
                    yield LabeledControl("Preset", Select(
                        [(name, name) for name in WELL_KNOWN_UPSTREAMS] + [("Other…", OTHER)],
                        value=self.preset, allow_blank=False, id="mirror-preset",
                        compact=True), help_text="Fills name, URL and a free port.")
                yield self.checked_field(
                    "Upstream", "upstream", mirror.upstream,
                    validators.upstream(), "As image references name it.")
                yield self.checked_field(
                    "Port", "port", str(mirror.port), validators.port(),
                    f"On the registry host (not {registry_port}).")
                yield self.checked_field(
                    "Remote URL", "remote_url", mirror.url,
                    validators.remote_url(), "Empty: the well-known URL.")
                yield self.checked_field(
                    "Remote CA", "remote_ca", mirror.remote_ca or "", validators.local_path(),
                    "Optional: a PEM to trust the URL.", warn=self.missing_file)
                yield self.checked_field(
                    "Username", "username", mirror.username or "",
                    validators.upstream_user(), "Optional: an upstream login.")
                yield self.checked_field(
                    "Verify image", "verify_image", mirror.verify_image or "",
                    validators.repository_reference(), verify_help(mirror.upstream))
            yield Static(password_line(mirror, self.known_passwords), id="mirror-access",
                         classes="dialog-hint", markup=False)
            yield DialogButtons("Save", ok_id="save")

    def checked_field(self, label: str, key: str, value: str, check: validators.Checked,
                      help_text: str, warn: Warner | None = None) -> FormField:
        """A field with its own check, then the plan's rules between fields about ``key``."""
        cross = validators.Checked(lambda _value: self.plan_problem(key))
        return FormField(label, field_id=FIELDS[key], value=value, validators=[check, cross],
                         help_text=help_text, warn=warn)

    def on_mount(self) -> None:
        self.refresh_form()

    # --- the mirror and its problems --------------------------------------------------------

    def values(self) -> tuple[str, ...]:
        return tuple(self.text(field_id) for field_id in FIELDS.values())

    def candidate(self) -> MirrorSettings:
        """The mirror the form describes (a port that is no number is 0, which is refused)."""
        upstream, port, url, ca, user, verify = self.values()
        default_url = WELL_KNOWN_UPSTREAMS.get(upstream)
        return MirrorSettings(
            upstream=upstream, port=int(port) if port.isdigit() else 0,
            # the well-known URL is left out of the plan: it stays the default
            remote_url=None if url in ("", default_url) else url,
            remote_ca=ca or None, username=user or None,
            # the well-known default is left out too
            verify_image=None if verify in ("", WELL_KNOWN_VERIFY_IMAGES.get(upstream)) else verify)

    def plan_problem(self, key: str) -> str | None:
        try:
            return self.plan_problems().get(key)
        except NoMatches:  # checked while the form is still being built
            return None

    def plan_problems(self) -> dict[str, str]:
        """validate_plan's word on this mirror in a copy of the plan, by field (cached per
        form state: every field asks on every key press)."""
        values = self.values()
        if self._checked is None or self._checked[0] != values:
            self._checked = (values, self.problems_in_plan(self.candidate()))
        return self._checked[1]

    def problems_in_plan(self, mirror: MirrorSettings) -> dict[str, str]:
        mirrors = list(self.plan.mirrors)
        index = len(mirrors) if self.index is None else self.index
        mirrors[index:index + 1] = [mirror]
        names = [other.upstream for other in mirrors]
        found: dict[str, str] = {}
        for problem in validate_plan(dataclasses.replace(self.plan, mirrors=mirrors)):
            match = _PROBLEM.fullmatch(problem)
            if match is None or int(match.group(1)) != index:
                continue
            key = match.group(2) if match.group(2) in FIELDS else "upstream"
            found.setdefault(key, _name_mirrors(match.group(3), names))
        return found

    def missing_file(self, value: str) -> list[str]:
        path = self.plan.local_path(value)
        return [] if path.is_file() else [f"no file at {path} yet"]

    # --- events -------------------------------------------------------------------------------

    def refresh_form(self) -> None:
        """Re-judge every field (one field's value can be another's problem), the access line
        and whether Save can be pressed."""
        fields = list(self.query(FormField))
        for field in fields:
            field.show_message()
        mirror = self.candidate()
        self.query_one("#mirror-access", Static).update(
            password_line(mirror, self.known_passwords))
        self.query_one("#save", Button).disabled = any(field.problem for field in fields)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refresh_form()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "mirror-preset":
            return
        event.stop()
        self.apply_preset(str(event.value))

    def apply_preset(self, preset: str) -> None:
        """A well-known upstream fills its name and URL (and a port if none); Other… empties
        them for the user to type."""
        upstream = self.query_one("#mirror-upstream", Input)
        url = self.query_one("#mirror-url", Input)
        upstream.value = "" if preset == OTHER else preset
        url.value = WELL_KNOWN_UPSTREAMS.get(preset, "")
        self.query_one("#mirror-verify", Input).value = WELL_KNOWN_VERIFY_IMAGES.get(preset, "")
        port = self.query_one("#mirror-port", Input)
        if not port.value.strip().isdigit():
            port.value = str(free_port(self.plan, self.index))
        if preset == OTHER:
            upstream.focus()
        self.refresh_form()

    def result(self) -> MirrorSettings | None:
        if not self.form_is_valid():
            return None
        return self.candidate()


def _name_mirrors(problem: str, upstreams: list[str]) -> str:
    """validate_plan's ``mirrors[0].port`` said the way the form does: "the docker.io mirror"."""
    problem = re.sub(r" \(mirrors\[\d+\]\)", "", problem)  # "X already has a mirror (mirrors[0])"
    problem = problem.replace("registry.port", "the registry (registry.port)")
    return _MIRROR_KEY.sub(lambda match: f"the {upstreams[int(match.group(1))]} mirror", problem)
