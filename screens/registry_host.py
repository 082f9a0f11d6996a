"""Step 4: where the registry container runs and how to reach that host.

Passwords typed here live only in ``app.secrets`` (memory). "Test connection" runs in a thread
worker: SSH with the host-key policy (unknown key -> modal, changed key -> warning that cannot be
accepted), then a command with sudo when sudo is on, then the docker CLI.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Select, Static
from textual.worker import Worker, get_current_worker

from app.distribution import IMAGE_CHOICES, choice_note
from app.errors import RegwizError
from app.plan import Plan, RegistrySettings, validate_plan
from app.transport.base import TransportError
from app.validate import AUTH_MODES
from screens import validators
from screens.host_key_changed import HostKeyChangedModal
from screens.host_key_prompt import ask_host_key_policy
from screens.messages import ConnectionChecked
from screens.widgets.form_field import FormField
from screens.wizard_screen import PaletteAction, WizardScreen

AUTH_METHODS = (("agent", "ssh-agent / ~/.ssh/config"), ("key", "identity file"),
                ("password", "password"))
OTHER_IMAGE = "other"
IMAGE_OPTIONS = [*((name, name) for name, _ in IMAGE_CHOICES),
                 ("another image (type it below)", OTHER_IMAGE)]


def _choice(image: str) -> str:
    return image if any(image == name for name, _ in IMAGE_CHOICES) else OTHER_IMAGE


class RegistryHostScreen(WizardScreen):
    STEP = "registry"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "test_connection", "Test connection"),
    ]

    def compose_body(self) -> ComposeResult:
        plan = self.wizard.require_plan()
        registry = plan.registry
        secrets = self.wizard.secrets
        method = "key" if registry.identity_file else "agent"
        if secrets.ssh_password:
            method = "password"
        with VerticalScroll(id="registry-form", classes="form"):
            with Grid(classes="form-grid"):
                yield FormField("Host", field_id="host", value=registry.host,
                                validators=[validators.host()],
                                help_text='SSH target, or "local" (no SSH).')
                yield FormField("SSH user", field_id="ssh-user", value=registry.ssh_user,
                                validators=[validators.user()],
                                help_text="Needs sudo or root, and docker.")
                yield FormField("SSH port", field_id="ssh-port", value=str(registry.ssh_port),
                                validators=[validators.port()], help_text="Usually 22.")
                with Vertical(classes="form-field"):
                    yield Label("Authentication", classes="field-label")
                    with RadioSet(id="auth-method", compact=True):
                        for key, label in AUTH_METHODS:
                            yield RadioButton(label, value=key == method, name=key)
                yield FormField("Identity file", field_id="identity-file",
                                value=registry.identity_file or "",
                                validators=[validators.key_file()],
                                help_text="Private key file, e.g. ~/.ssh/id_ed25519.")
                yield FormField("Key passphrase", field_id="key-passphrase",
                                value=secrets.key_passphrase or "", password=True,
                                help_text="Only if the key is encrypted. Memory only.")
                yield FormField("SSH password", field_id="ssh-password",
                                value=secrets.ssh_password or "", password=True,
                                help_text="Kept in memory only, never saved.")
                with Vertical(classes="form-field"):
                    yield Label("Sudo", classes="field-label")
                    yield Checkbox("run root commands with sudo", registry.sudo, id="sudo",
                                   compact=True)
                yield FormField("Sudo password", field_id="sudo-password",
                                value=secrets.sudo_password_for(registry.host) or "",
                                password=True,
                                help_text="Empty for passwordless sudo. Memory only.")
                yield FormField("Published port", field_id="port", value=str(registry.port),
                                validators=[validators.port()],
                                help_text="Host port the registry listens on (443 inside).")
                with Vertical(classes="form-field"):
                    yield Label("Registry image", classes="field-label")
                    yield Select(IMAGE_OPTIONS, value=_choice(registry.image),
                                 allow_blank=False, id="image-choice", compact=True)
                    yield Static("", id="image-note", classes="field-help", markup=False)
                yield FormField("Image", field_id="image", value=registry.image,
                                validators=[validators.image()],
                                help_text="The choice above fills it in; any image works.")
                yield FormField("Container name", field_id="container-name",
                                value=registry.container_name,
                                validators=[validators.container_name()])
                yield FormField("Data directory", field_id="data-dir", value=registry.data_dir,
                                validators=[validators.data_dir()],
                                help_text="Where images are stored on the host.")
                yield FormField("Certificate directory", field_id="certs-dir",
                                value=registry.certs_dir, validators=[validators.certs_dir()],
                                help_text="Where tls.crt and tls.key go on the host.")
                with Vertical(classes="form-field"):
                    yield Label("Registry authentication", classes="field-label")
                    yield Select([(mode, mode) for mode in AUTH_MODES], value=registry.auth,
                                 allow_blank=False, id="auth-mode", compact=True)
                yield Static("", id="auth-warning", markup=False)
                yield FormField("Operator password", field_id="registry-password",
                                value=secrets.registry_password or "", password=True,
                                help_text="Optional: the first deploy creates the accounts "
                                          "operator (push) and cluster (pull) with generated "
                                          "passwords, kept in credentials/NAME.json next to the "
                                          "plan. Memory only.")
            with Horizontal(classes="button-row"):
                yield Button("Test connection", id="test-connection", variant="primary",
                             compact=True)
                yield Static("", id="reference", markup=False)
            yield Static("", id="connection-result", markup=False)

    def on_mount(self) -> None:
        self.update_visibility()
        self.refresh_next()

    # --- the form ----------------------------------------------------------------------------

    def auth_method(self) -> str:
        pressed = self.query_one("#auth-method", RadioSet).pressed_button
        return (pressed.name if pressed else None) or "agent"

    def update_visibility(self) -> None:
        method = self.auth_method()
        self.field("identity-file").display = method == "key"
        self.field("key-passphrase").display = method == "key"
        self.field("ssh-password").display = method == "password"
        self.field("sudo-password").display = self.query_one("#sudo", Checkbox).value
        self.field("registry-password").display = (
            self.query_one("#auth-mode", Select).value == "htpasswd"
        )
        from app.plan import auth_warning

        warning = auth_warning(self.candidate())
        notice = self.query_one("#auth-warning", Static)
        notice.update(f"⚠ {warning}" if warning else "")
        notice.display = warning is not None
        local = self.field("host").value == "local"
        for field_id in ("ssh-user", "ssh-port"):
            self.field(field_id).disabled = local
        self.query_one("#reference", Static).update(
            f"images will be pushed as {self.candidate().registry_reference}/NAME:TAG"
        )
        self.query_one("#image-note", Static).update(self.image_note())

    def image_note(self) -> str:
        """What the chosen image means, and what happens to the pin."""
        image = self.field("image").value
        old = self.wizard.require_plan().registry
        note = choice_note(image)
        if old.image_digest is None:
            return note
        if image == old.image:
            return (f"{note}. Pinned to {old.image_digest[:19]}…: deploys run exactly that "
                    "image (regwiz upgrade moves the pin)")
        return f"{note}. The pin of {old.image} is dropped: the next deploy pins {image}"

    def candidate(self) -> Plan:
        plan = self.wizard.require_plan()
        old = plan.registry
        registry = dataclasses.replace(
            old,
            host=self.field("host").value,
            ssh_user=self.field("ssh-user").value,
            ssh_port=self.field("ssh-port").int_or(old.ssh_port),
            identity_file=(self.field("identity-file").value or None)
            if self.auth_method() == "key" else None,
            sudo=self.query_one("#sudo", Checkbox).value,
            port=self.field("port").int_or(old.port),
            image=self.field("image").value,
            # The pin belongs to the image it was taken of: another image is pinned anew at
            # its first deploy; every other edit keeps it.
            image_digest=old.image_digest if self.field("image").value == old.image else None,
            container_name=self.field("container-name").value,
            data_dir=self.field("data-dir").value,
            certs_dir=self.field("certs-dir").value,
            auth=str(self.query_one("#auth-mode", Select).value),
        )
        return dataclasses.replace(plan, registry=registry)

    def problems(self) -> list[str]:
        problems = [
            f"{field.label}: {field.problem}"
            for field in self.query(FormField)
            if field.display and not field.disabled and field.problem is not None
        ]
        if self.auth_method() == "key" and not self.field("identity-file").value:
            problems.append("Identity file: choose a key file, or use ssh-agent")
        if self.auth_method() == "password" and not self.field("ssh-password").value:
            problems.append("SSH password: type it, or choose another authentication")
        if problems:
            return problems
        return validate_plan(self.candidate())

    def apply_secrets(self) -> None:
        """Copy typed passwords into the in-memory secrets (None when not used)."""
        secrets = self.wizard.secrets
        method = self.auth_method()
        secrets.ssh_password = (self.field("ssh-password").input.value or None) \
            if method == "password" else None
        secrets.key_passphrase = (self.field("key-passphrase").input.value or None) \
            if method == "key" else None
        self.wizard.remember_sudo_password([self.field("host").value],
                                           self.field("sudo-password").input.value)
        secrets.registry_password = self.field("registry-password").input.value or None

    def commit(self) -> bool:
        if self.problems():
            return False
        self.apply_secrets()
        self.wizard.require_plan().registry = self.candidate().registry
        return True

    # --- events -------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("host", "image"):
            self.update_visibility()
        if event.input.id == "image":
            choice = self.query_one("#image-choice", Select)
            if choice.value != _choice(self.field("image").value):
                choice.value = _choice(self.field("image").value)
        self.refresh_next()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.update_visibility()
        self.refresh_next()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.update_visibility()
        self.refresh_next()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "image-choice" and event.value != OTHER_IMAGE:
            self.field("image").input.value = str(event.value)
        self.update_visibility()
        self.refresh_next()

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {"test-connection": self.action_test_connection}

    # --- test connection -----------------------------------------------------------------------

    def action_test_connection(self) -> None:
        problems = self.problems()
        if problems:
            self.notify("\n".join(problems[:5]), title="Fix these first", severity="error")
            return
        self.apply_secrets()
        self.query_one("#test-connection", Button).disabled = True
        self.show_result("Connecting…", state="running")
        self.test_connection(self.candidate().registry)

    @work(thread=True, exit_on_error=False, group="registry-host", name="Test connection",
          exclusive=True)
    def test_connection(self, registry: RegistrySettings) -> None:
        from app.connections import open_registry_transport

        worker = get_current_worker()
        plan = dataclasses.replace(self.wizard.require_plan(), registry=registry)
        policy = ask_host_key_policy(self.wizard)
        started = time.monotonic()
        lines: list[str] = []
        try:
            with open_registry_transport(plan, self.wizard.secrets, policy) as transport:
                lines.append(f"connected to {transport.name} "
                             f"in {time.monotonic() - started:.1f} s")
                if worker.is_cancelled:
                    return
                if registry.sudo:
                    transport.run(["true"], sudo=True, timeout=30)
                    lines.append("sudo works")
                result = transport.run(
                    ["docker", "version", "--format", "{{.Server.Version}}"],
                    sudo=registry.sudo, timeout=30,
                )
                lines.append(f"docker engine {result.stdout.strip() or '?'} answers")
        except TransportError as error:
            self.post_message(ConnectionChecked(False, "\n".join([*lines, error.message]),
                                                error.hint, error.kind, registry.host))
            return
        except RegwizError as error:
            self.post_message(ConnectionChecked(False, "\n".join([*lines, error.message]),
                                                error.hint, host=registry.host))
            return
        self.post_message(ConnectionChecked(True, "\n".join(lines), host=registry.host))

    def worker_failed(self, worker: Worker[object]) -> None:
        self.query_one("#test-connection", Button).disabled = False
        self.show_result("✗ the connection test stopped with an error", state="failed")

    def on_connection_checked(self, message: ConnectionChecked) -> None:
        self.query_one("#test-connection", Button).disabled = False
        text = ("✓ " if message.ok else "✗ ") + message.summary
        if message.hint:
            text += f"\nhint: {message.hint}"
        self.show_result(text, state="unchanged" if message.ok else "failed")
        if message.kind == "host-key-changed":
            self.app.push_screen(HostKeyChangedModal(message.host, message.summary, message.hint))

    def show_result(self, text: str, *, state: str) -> None:
        result = self.query_one("#connection-result", Static)
        result.update(text)
        for name in ("running", "unchanged", "failed"):
            result.set_class(name == state, f"state-{name}")

    def palette_actions(self) -> list[PaletteAction]:
        return [("Test connection", "Check SSH, host key, sudo and docker on the registry host",
                 self.action_test_connection)]
