"""Step 2: the certificate request: subject fields, SANs, key type and validity.

Every field is checked as you type by app.validate (through screens.validators); Next stays
disabled while anything is invalid. The common name and the registry address are always SANs.
"""

from __future__ import annotations

import dataclasses

from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.widgets import Checkbox, Input, Select

from app.plan import Plan, validate_plan
from app.validate import KEY_TYPES, check_san, warnings_for_san
from screens import validators
from screens.widgets.form_field import FormField
from screens.widgets.labeled_control import LabeledControl
from screens.widgets.san_list import SanList
from screens.wizard_screen import PaletteAction, WizardScreen

KEY_TYPE_HELP = {
    "ecdsa-p256": "ECDSA P-256 (default: small, fast, supported everywhere)",
    "ecdsa-p384": "ECDSA P-384",
    "rsa-2048": "RSA 2048 (oldest clients)",
    "rsa-3072": "RSA 3072",
    "rsa-4096": "RSA 4096 (slow)",
    "ed25519": "Ed25519 (not accepted by every TLS client)",
}

# (field id, label, plan attribute, help text)
SUBJECT_FIELDS = (
    ("country", "Country (C)", "country", "Two-letter ISO code, e.g. KR, DE, US."),
    ("state", "State or province (ST)", "state", "Optional, e.g. Seoul."),
    ("locality", "Locality (L)", "locality", "Optional city or district."),
    ("organization", "Organization (O)", "organization", "Optional, e.g. Example Corp."),
    ("org-unit", "Organizational unit (OU)", "organizational_unit", "Optional team name."),
    ("email", "Email", "email", "Optional contact e-mail."),
)


def common_name_warnings(value: str) -> list[str]:
    """A valid CN that is not a host name is allowed, but then it is not a SAN: say so."""
    if check_san(value) is not None:
        return ["not a host name or IP, so it is not added to the SANs"]
    return warnings_for_san(value)


class CertRequestScreen(WizardScreen):
    STEP = "certificate"

    def compose_body(self) -> ComposeResult:
        plan = self.wizard.require_plan()
        cert = plan.certificate
        with VerticalScroll(id="cert-form", classes="form"):
            with Grid(classes="form-grid"):
                yield FormField(
                    "Common name (CN)",
                    field_id="common-name",
                    value=cert.common_name,
                    validators=[validators.common_name()],
                    warn=common_name_warnings,
                    help_text="Usually the registry's DNS name.",
                )
                yield FormField(
                    "Registry address",
                    field_id="address",
                    value=plan.registry.address,
                    validators=[validators.san()],
                    warn=warnings_for_san,
                    help_text="Name or IP that image references use.",
                )
                for field_id, label, attribute, help_text in SUBJECT_FIELDS:
                    yield FormField(
                        label,
                        field_id=field_id,
                        value=str(getattr(cert, attribute) or ""),
                        validators=[self._validator_for(field_id, label)],
                        help_text=help_text,
                    )
            yield SanList(list(cert.subject_alt_names), id="sans")
            with Grid(classes="form-grid"):
                yield LabeledControl("Key type", Select(
                    [(KEY_TYPE_HELP.get(kt, kt), kt) for kt in KEY_TYPES],
                    value=cert.key_type if cert.key_type in KEY_TYPES else KEY_TYPES[0],
                    allow_blank=False, id="key-type", compact=True))
                yield LabeledControl("Name constraints", Checkbox(
                    "limit the CA to these SANs", cert.name_constraints, id="name-constraints",
                    compact=True))
                yield FormField(
                    "CA validity (days)",
                    field_id="ca-days",
                    value=str(cert.ca_validity_days),
                    validators=[validators.days()],
                    help_text="3650 = ten years.",
                )
                yield FormField(
                    "Certificate validity (days)",
                    field_id="cert-days",
                    value=str(cert.cert_validity_days),
                    validators=[validators.days()],
                    help_text="825 or less: Apple clients refuse longer.",
                )

    @staticmethod
    def _validator_for(field_id: str, label: str) -> validators.Checked:
        if field_id == "country":
            return validators.country()
        if field_id == "email":
            return validators.email()
        return validators.text_field(label)

    def on_mount(self) -> None:
        self.update_automatic_sans()
        self.refresh_next()

    # --- reading the form --------------------------------------------------------------------

    def candidate(self) -> Plan:
        """The plan as it would be with this form's values (invalid numbers kept as before)."""
        plan = self.wizard.require_plan()
        cert = plan.certificate
        values = {attr: self.field(fid).value for fid, _, attr, _ in SUBJECT_FIELDS}
        values["country"] = values["country"].upper()
        new_cert = dataclasses.replace(
            cert,
            common_name=self.field("common-name").value,
            subject_alt_names=list(self.query_one(SanList).sans),
            key_type=str(self.query_one("#key-type", Select).value),
            name_constraints=self.query_one("#name-constraints", Checkbox).value,
            ca_validity_days=self.field("ca-days").int_or(cert.ca_validity_days),
            cert_validity_days=self.field("cert-days").int_or(cert.cert_validity_days),
            **values,
        )
        registry = dataclasses.replace(plan.registry, address=self.field("address").value)
        return dataclasses.replace(plan, certificate=new_cert, registry=registry)

    def problems(self) -> list[str]:
        problems = [
            f"{field.label}: {field.problem}"
            for field in self.query(FormField)
            if field.problem is not None
        ]
        if problems:
            return problems
        candidate = self.candidate()
        if not candidate.all_sans():
            problems.append("SANs: add at least one DNS name or IP address")
        return problems + validate_plan(candidate)

    def update_automatic_sans(self) -> None:
        automatic = [
            (self.field("common-name").value, "common name"),
            (self.field("address").value, "registry address"),
        ]
        self.query_one(SanList).set_automatic(automatic)

    # --- events ------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("common-name", "address"):
            self.update_automatic_sans()
        self.refresh_next()

    def on_san_list_changed(self, event: SanList.Changed) -> None:
        self.refresh_next()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.refresh_next()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.refresh_next()

    def action_next(self) -> None:
        for field in self.query(FormField):
            field.reveal()
        super().action_next()

    def commit(self) -> bool:
        if self.problems():
            return False
        candidate = self.candidate()
        plan = self.wizard.require_plan()
        plan.certificate = candidate.certificate
        plan.registry = candidate.registry
        return True

    def palette_actions(self) -> list[PaletteAction]:
        return [("Add SAN", "Focus the SAN input", lambda: self.query_one("#san-input").focus())]
