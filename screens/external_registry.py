"""The registry the user already runs (Harbor, Quay, Nexus, Distribution): where it is, the CA that
signs its certificate, the login nodes pull with and the image verify pulls.

"Fetch CA" reads the chain the server presents in a thread worker (nothing is trusted yet), shows
every certificate with its fingerprint, and saves the root only after the user confirms it, as
with a host key. Next needs the CA file to exist: onboarding installs it on every node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Button, Input, Static

from app.errors import RegwizError
from app.plan import Plan, validate_plan
from screens import validators
from screens.messages import CaChainFetched, JobFailed
from screens.widgets.form_field import FormField
from screens.wizard_screen import PaletteAction, WizardScreen

if TYPE_CHECKING:
    from app.ca_fetch import PresentedChain

DEFAULT_CA_FILE = "registry-ca.crt"


class ExternalRegistryScreen(WizardScreen):
    STEP = "external"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("f5", "fetch_ca", "Fetch CA")]

    def compose_body(self) -> ComposeResult:
        registry = self.wizard.require_plan().registry
        with VerticalScroll(id="external-form", classes="form"):
            with Grid(classes="form-grid"):
                yield FormField("Address", field_id="address", value=registry.address,
                                validators=[validators.san()],
                                help_text="The name or IP in your image references.")
                yield FormField("Port", field_id="port", value=str(registry.port),
                                validators=[validators.port()],
                                help_text="443 for Harbor; 8443 for mirror-registry.")
                yield FormField("CA file", field_id="ca-file",
                                value=registry.ca_file or DEFAULT_CA_FILE,
                                validators=[validators.local_path(optional=False)],
                                help_text="The CA that signs its certificate (next to the plan "
                                          "when relative). Fetch CA saves it here.")
                yield FormField("Pull login file", field_id="pull-auth-file",
                                value=registry.pull_auth_file or "",
                                validators=[validators.local_path()],
                                help_text="Optional: a Docker config.json with the login nodes "
                                          "pull with (e.g. a Harbor robot account).")
                yield FormField("Verify image", field_id="verify-image",
                                value=registry.verify_image or "",
                                validators=[validators.repository_reference()],
                                help_text="An image every node should pull, e.g. "
                                          "library/busybox:latest.")
            with Horizontal(classes="button-row"):
                yield Button("Fetch CA", id="fetch-ca", variant="primary", compact=True)
                yield Static("", id="ca-state", markup=False)
            yield Static("", id="chain", markup=False)

    def on_mount(self) -> None:
        self.show_ca_state()
        self.refresh_next()

    # --- the form ----------------------------------------------------------------------------

    def candidate(self) -> Plan:
        plan = self.wizard.require_plan()
        old = plan.registry
        registry = dataclasses.replace(
            old,
            managed=False,
            address=self.field("address").value,
            port=self.field("port").int_or(old.port),
            ca_file=self.field("ca-file").value or None,
            pull_auth_file=self.field("pull-auth-file").value or None,
            verify_image=self.field("verify-image").value or None,
        )
        return dataclasses.replace(plan, registry=registry)

    def input_problems(self) -> list[str]:
        problems = [f"{field.label}: {field.problem}" for field in self.query(FormField)
                    if field.problem is not None]
        return problems or validate_plan(self.candidate())

    def problems(self) -> list[str]:
        problems = self.input_problems()
        if problems:
            return problems
        if not self.candidate().trusted_ca_path.is_file():
            return ["CA file: Fetch CA (F5), or name your registry's CA file"]
        return []

    def commit(self) -> bool:
        if self.input_problems():
            return False
        self.wizard.require_plan().registry = self.candidate().registry
        return True

    def show_ca_state(self) -> None:
        path = self.candidate().trusted_ca_path
        text = f"CA: {path}" if path.is_file() else f"no CA file yet at {path}"
        self.query_one("#ca-state", Static).update(text)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show_ca_state()
        self.refresh_next()

    # --- fetching the CA -----------------------------------------------------------------------

    def action_fetch_ca(self) -> None:
        for field_id in ("address", "port"):
            self.field(field_id).reveal()
        if self.field("address").problem or self.field("port").problem:
            self.notify("Fix the address and port first", severity="error")
            return
        self.query_one("#fetch-ca", Button).disabled = True
        self.query_one("#chain", Static).update("reading the certificates the server presents…")
        plan = self.candidate()
        self.fetch_chain(plan.registry.address, plan.registry.port)

    @work(thread=True, exit_on_error=False, group="external-ca", exclusive=True)
    def fetch_chain(self, address: str, port: int) -> None:
        from app.ca_fetch import fetch_chain

        self.report_job("Fetch CA", lambda: fetch_chain(address, port), CaChainFetched)

    def on_ca_chain_fetched(self, message: CaChainFetched) -> None:
        chain = message.chain
        self.query_one("#fetch-ca", Button).disabled = False
        self.query_one("#chain", Static).update("\n".join(chain.lines()))
        if chain.root_pem is None:
            self.notify("No root CA to save: " + "; ".join(chain.problems), severity="error",
                        timeout=10)
            return
        from screens.confirm import ConfirmModal

        root = chain.certificates[-1]
        self.app.push_screen(
            ConfirmModal(
                "Trust this root CA?",
                f"{root.subject}\nSHA-256 {root.fingerprint}\n\nCompare the fingerprint with "
                "the one your registry's administrator has. Every node will trust what this CA "
                "signs.",
                confirm_label="Trust and save",
                cancel_label="Do not trust",
            ),
            lambda trusted: self.save_root(chain) if trusted else None,
        )

    def save_root(self, chain: PresentedChain) -> None:
        from app.ca_fetch import save_root

        try:
            path = save_root(self.candidate(), chain)
        except RegwizError as error:
            self.wizard.show_error("The CA could not be saved", error)
            return
        self.notify(f"Saved the root CA to {path}")
        self.show_ca_state()
        self.refresh_next()

    def on_job_failed(self, message: JobFailed) -> None:
        self.query_one("#fetch-ca", Button).disabled = False
        self.query_one("#chain", Static).update(
            f"{message.error}" + (f"\nhint: {message.hint}" if message.hint else ""))

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {"fetch-ca": self.action_fetch_ca}

    def palette_actions(self) -> list[PaletteAction]:
        return [("Fetch CA", "Show the registry's certificate chain and save its root",
                 self.action_fetch_ca)]
