"""Import a certificate signed elsewhere: paths of the certificate, its key, and an optional chain.

Dismisses with (cert, key, chain-or-None) paths, or None when cancelled. The files are only
checked for existence here; app.certs.import_certificate does the real checks.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from app.paths import expand_user
from screens.form_modal import FormModal
from screens.validators import Checked, local_file_problem
from screens.widgets.dialog_buttons import DialogButtons
from screens.widgets.form_field import FormField

ImportPaths = tuple[Path, Path, Path | None]


def check_existing_file(value: str) -> str | None:
    return local_file_problem(value, must_exist=True)


class ImportCertModal(FormModal[ImportPaths]):

    def __init__(self) -> None:
        super().__init__(classes="modal")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Import a certificate", classes="dialog-title")
            yield FormField("Certificate (PEM)", field_id="import-cert",
                            validators=[Checked(check_existing_file)],
                            help_text="The signed server certificate, optionally with its chain.")
            yield FormField("Private key (PEM)", field_id="import-key",
                            validators=[Checked(check_existing_file)],
                            help_text="The key the CSR was made with (tls.key if exported here).")
            yield FormField("Chain (optional)", field_id="import-chain",
                            validators=[Checked(check_existing_file, optional=True)],
                            help_text="Intermediates and root, if not in the certificate file.")
            yield DialogButtons("Import", ok_id="import")

    def result(self) -> ImportPaths | None:
        if not self.form_is_valid():
            return None
        chain = self.text("import-chain")
        return (expand_user(self.text("import-cert")), expand_user(self.text("import-key")),
                expand_user(chain) if chain else None)
