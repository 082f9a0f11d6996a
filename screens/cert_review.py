"""Step 3: what will be (or was) generated, and the certificate actions.

Generate / Renew / New CA (confirmed first) / Export CSR / Import run app.certs in a thread
worker; the screen shows the plan's subject and SANs and the files on disk with fingerprints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static
from textual.worker import Worker

from app.certs import (
    CertError,
    CertFiles,
    CertInfo,
    CertSummary,
    inspect_certificate,
    on_disk_differences,
)
from app.errors import RegwizError
from screens.confirm import ConfirmModal
from screens.import_cert import ImportCertModal, ImportPaths
from screens.messages import CertificatesChanged
from screens.widgets.form_field import FormField
from screens.wizard_screen import PaletteAction, WizardScreen

ACTIONS = (
    ("generate", "Generate", "primary"),
    ("renew", "Renew", "default"),
    ("new-ca", "New CA…", "error"),
    ("export-csr", "Export CSR", "default"),
    ("import", "Import…", "default"),
)


class CertReviewScreen(WizardScreen):
    STEP = "review"

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="button-row", id="cert-actions"):
            for action_id, label, variant in ACTIONS:
                yield Button(label, id=action_id, variant=variant,  # type: ignore[arg-type]
                             compact=True)
        with VerticalScroll(id="review", classes="form"):
            yield Static("", id="cert-result", classes="summary", markup=False)
            yield Static("Planned", classes="section-title")
            yield Static("", id="planned", classes="summary", markup=False)
            yield Static("On disk", classes="section-title")
            yield Static("", id="on-disk", classes="summary", markup=False)
            yield FormField(
                "CA key passphrase (recommended)", field_id="ca-passphrase", password=True,
                value=self.wizard.secrets.ca_key_passphrase or "",
                help_text="Encrypts ca.key; needed again to renew. Memory only. You may leave "
                          "it empty: ca.key is then stored unencrypted, and anyone who can read "
                          "it can sign certificates your nodes trust.",
            )

    def show_result(self, text: str) -> None:
        result = self.query_one("#cert-result", Static)
        result.update(text)
        result.display = bool(text)

    def on_mount(self) -> None:
        self.show_result("")
        self.show_planned()
        self.show_on_disk()
        self.refresh_next()

    # --- display ------------------------------------------------------------------------------

    @property
    def files(self) -> CertFiles:
        return CertFiles(self.wizard.require_plan().cert_dir)

    def show_planned(self) -> None:
        from app.certs import SUBJECT_ATTRIBUTE_NAMES, subject_name

        plan = self.wizard.require_plan()
        cert = plan.certificate
        lines = [
            f"subject:   {subject_name(cert).rfc4514_string(SUBJECT_ATTRIBUTE_NAMES)}",
            f"SANs:      {', '.join(plan.all_sans())}",
            f"key:       {cert.key_type}",
            f"validity:  CA {cert.ca_validity_days} days, server {cert.cert_validity_days} days",
            f"directory: {plan.cert_dir}",
        ]
        self.query_one("#planned", Static).update("\n".join(lines))

    def inspect(self, path: Path) -> CertInfo | str:
        if not path.exists():
            return "not generated yet"
        try:
            return inspect_certificate(path)
        except RegwizError as error:
            return f"unreadable: {error.message}"

    def show_on_disk(self) -> None:
        lines: list[str] = []
        for title, path in (("CA", self.files.ca_crt), ("server", self.files.tls_crt)):
            info = self.inspect(path)
            if isinstance(info, str):
                lines.append(f"{title} ({path.name}): {info}")
                continue
            lines.append(f"{title} ({path.name}):")
            lines += [f"  {line}" for line in info.lines()]
            if title == "server" and (drift := self.drift()):
                lines.append("  differs from the plan (Generate reissues it):")
                lines += [f"    {line}" for line in drift]
        self.query_one("#on-disk", Static).update("\n".join(lines))

    def input_problems(self) -> list[str]:
        return []  # nothing typed here needs saving

    def drift(self) -> list[str]:
        """How the server certificate on disk differs from the plan as it is now."""
        return on_disk_differences(self.wizard.require_plan())

    def problems(self) -> list[str]:
        if not (self.files.ca_crt.exists() and self.files.tls_crt.exists()):
            return ["Certificates: generate or import them first"]
        if drift := self.drift():
            # Deploying now would ship a certificate the plan no longer describes.
            return [f"Certificates: the server certificate differs from the plan ({drift[0]}"
                    f"{'; …' if len(drift) > 1 else ''}): press Generate to reissue it"]
        return []

    # --- actions ------------------------------------------------------------------------------

    def button_actions(self) -> dict[str, Callable[[], object]]:
        return {
            "generate": lambda: self.start("generate"),
            "renew": lambda: self.start("renew"),
            "new-ca": self.action_new_ca,
            "export-csr": lambda: self.start("export-csr"),
            "import": self.action_import,
        }

    def action_new_ca(self) -> None:
        def decide(confirmed: bool | None) -> None:
            if confirmed:
                self.start("new-ca")

        self.app.push_screen(
            ConfirmModal(
                "Replace the CA?",
                "A new CA makes every node distrust the registry until it is onboarded again. "
                "The old ca.crt and ca.key are kept aside, not deleted.",
                confirm_label="Create a new CA",
                cancel_label="Keep the CA",
                danger=True,
            ),
            decide,
        )

    def action_import(self) -> None:
        def received(paths: ImportPaths | None) -> None:
            if paths is not None:
                self.start("import", paths)

        self.app.push_screen(ImportCertModal(), received)

    def start(self, action: str, paths: ImportPaths | None = None) -> None:
        passphrase = self.field("ca-passphrase").input.value or None
        self.wizard.secrets.ca_key_passphrase = passphrase
        if not self.wizard.save_plan():
            return
        self.set_busy(True)
        self.show_result(f"{action}: working…")
        self.run_certificates(action, passphrase, paths)

    def worker_failed(self, worker: Worker[object]) -> None:
        self.set_busy(False)

    def set_busy(self, busy: bool) -> None:
        for action_id, _, _ in ACTIONS:
            self.query_one(f"#{action_id}", Button).disabled = busy

    @work(thread=True, exit_on_error=False, group="certificates", name="Certificates")
    def run_certificates(
        self, action: str, passphrase: str | None, paths: ImportPaths | None
    ) -> None:
        from app import certs

        plan = self.wizard.require_plan()
        try:
            if action == "export-csr":
                csr = certs.export_csr(plan)
                text = (f"CSR written to {csr}\nHave your CA sign it, then use Import with "
                        f"the signed certificate and {CertFiles(plan.cert_dir).tls_key}.")
            elif action == "import" and paths is not None:
                text = _summary_text(certs.import_certificate(plan, *paths))
            else:
                summary = certs.ensure_certificates(
                    plan, renew=action == "renew", new_ca=action == "new-ca",
                    ca_passphrase=passphrase,
                )
                text = _summary_text(summary)
        except CertError as error:
            text = f"✗ {error.message}" + (f"\nhint: {error.hint}" if error.hint else "")
        self.post_message(CertificatesChanged(text))

    def on_certificates_changed(self, message: CertificatesChanged) -> None:
        self.set_busy(False)
        self.show_result(message.summary)
        self.show_on_disk()
        self.refresh_next()

    def palette_actions(self) -> list[PaletteAction]:
        return [
            ("Generate certificates", "Create the CA (once) and the server certificate",
             lambda: self.start("generate")),
            ("Renew server certificate", "Reissue tls.crt with the same CA",
             lambda: self.start("renew")),
            ("New CA", "Replace the CA (asks first)", self.action_new_ca),
            ("Export CSR", "Write tls.csr for an external CA", lambda: self.start("export-csr")),
            ("Import certificate", "Use a certificate signed elsewhere", self.action_import),
        ]


def _summary_text(summary: CertSummary) -> str:
    return "✓ " + "\n".join(summary.lines())
