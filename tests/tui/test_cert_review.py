"""Certificate review: generate, renew, new CA behind a confirm modal, CSR export, import."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from textual.widgets import Button, Input, Static

from app.certs import CertFiles, ensure_certificates, inspect_certificate
from app.plan import new_plan, save_plan
from screens.app import RegwizApp
from screens.cert_review import CertReviewScreen
from screens.confirm import ConfirmModal
from screens.import_cert import ImportCertModal
from tests.tui.conftest import AppFactory, save_with_certificates, settle


def text_of(app: RegwizApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def generate(app: RegwizApp, pilot: object, button: str = "#generate") -> None:
    app.screen.query_one(button, Button).press()
    await settle(app, pilot)  # type: ignore[arg-type]


async def test_generate_shows_fingerprints_and_unblocks_next(
    make_app: AppFactory, plan_path: Path
) -> None:
    app = make_app("review")
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, CertReviewScreen)
        assert app.screen.query_one("#next", Button).disabled
        assert "not generated yet" in text_of(app, "#on-disk")
        await generate(app, pilot)
        files = CertFiles(plan_path.parent / "certs")
        ca = inspect_certificate(files.ca_crt)
        assert ca.fingerprint in text_of(app, "#on-disk")
        assert "created" in text_of(app, "#cert-result")
        assert not app.screen.query_one("#next", Button).disabled
        # renew keeps the CA, changes the server serial
        serial = inspect_certificate(files.tls_crt).serial
        await generate(app, pilot, "#renew")
        assert inspect_certificate(files.ca_crt).fingerprint == ca.fingerprint
        assert inspect_certificate(files.tls_crt).serial != serial


async def test_new_ca_asks_first(make_app: AppFactory, plan_path: Path) -> None:
    app = make_app("review")
    async with app.run_test(size=(100, 32)) as pilot:
        await generate(app, pilot)
        files = CertFiles(plan_path.parent / "certs")
        before = inspect_certificate(files.ca_crt).fingerprint
        app.screen.query_one("#new-ca", Button).press()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("escape")  # refuse
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert inspect_certificate(files.ca_crt).fingerprint == before
        app.screen.query_one("#new-ca", Button).press()
        await pilot.pause()
        await pilot.click("#confirm")
        await settle(app, pilot)
        assert inspect_certificate(files.ca_crt).fingerprint != before
        assert "onboarded again" in text_of(app, "#cert-result")


async def test_export_csr_then_import_external_certificate(
    make_app: AppFactory, plan_path: Path, tmp_path: Path
) -> None:
    # An "external CA": another plan's directory signs a certificate for the same names.
    external = new_plan(tmp_path / "external" / "plan.toml")
    ensure_certificates(external)
    external_files = CertFiles(external.cert_dir)
    app = make_app("review")
    async with app.run_test(size=(100, 32)) as pilot:
        await generate(app, pilot, "#export-csr")
        assert "CSR written" in text_of(app, "#cert-result")
        assert (plan_path.parent / "certs" / "tls.csr").is_file()
        app.screen.query_one("#import", Button).press()
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ImportCertModal)
        modal.query_one("#import-cert", Input).value = str(tmp_path / "missing.pem")
        await pilot.click("#import")
        await pilot.pause()
        assert app.screen is modal  # a missing file blocks the import
        assert "no file at" in str(
            modal.query_one("#import-cert-field .field-message", Static).render()
        )
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(external_files.tls_crt.read_bytes() + external_files.ca_crt.read_bytes())
        modal.query_one("#import-cert", Input).value = str(bundle)
        modal.query_one("#import-key", Input).value = str(external_files.tls_key)
        await pilot.click("#import")
        await settle(app, pilot)
        assert isinstance(app.screen, CertReviewScreen)
        assert "imported" in text_of(app, "#cert-result")
        imported = inspect_certificate(plan_path.parent / "certs" / "tls.crt")
        assert imported.fingerprint == inspect_certificate(external_files.tls_crt).fingerprint


async def test_import_errors_are_shown_not_raised(
    make_app: AppFactory, plan_path: Path, tmp_path: Path
) -> None:
    other = new_plan(tmp_path / "other" / "plan.toml")
    other.certificate = dataclasses.replace(
        other.certificate, common_name="elsewhere.example.org", subject_alt_names=[]
    )
    other.registry.address = "elsewhere.example.org"
    ensure_certificates(other)
    files = CertFiles(other.cert_dir)
    app = make_app("review")
    async with app.run_test(size=(100, 32)) as pilot:
        app.screen.query_one("#import", Button).press()
        await pilot.pause()
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(files.tls_crt.read_bytes() + files.ca_crt.read_bytes())
        app.screen.query_one("#import-cert", Input).value = str(bundle)
        app.screen.query_one("#import-key", Input).value = str(files.tls_key)
        await pilot.click("#import")
        await settle(app, pilot)
        result = text_of(app, "#cert-result")
        assert result.startswith("✗")
        assert "registry.internal" in result  # the registry address the cert does not cover


async def test_a_new_san_is_flagged_and_generate_reissues(make_app: AppFactory) -> None:
    app = make_app("review")
    async with app.run_test(size=(100, 32)) as pilot:
        assert app.plan is not None
        # a CA with name constraints (the default since issue 11) cannot sign a new SAN
        app.plan.certificate.name_constraints = False
        await generate(app, pilot)
        assert "differs from the plan" not in text_of(app, "#on-disk")
        app.plan.certificate.subject_alt_names.append("mirror.example.internal")
        screen = app.screen
        assert isinstance(screen, CertReviewScreen)
        screen.show_on_disk()
        await pilot.pause()
        assert ("SAN mirror.example.internal is in the plan but not in the certificate"
                in text_of(app, "#on-disk"))
        await generate(app, pilot)
        assert "differs from the plan" not in text_of(app, "#on-disk")
        assert "reissued" in text_of(app, "#cert-result")


async def test_a_certificate_that_differs_from_the_plan_blocks_next_until_reissued(
    make_app: AppFactory, plan_path: Path
) -> None:
    # Issued for the plan as it was; then a SAN is added and the organisation renamed.
    plan = new_plan(plan_path)
    plan.certificate.name_constraints = False  # the SAN added below needs an unconstrained CA
    plan.certificate.organization = "Old Corp"
    save_with_certificates(plan)
    plan.certificate.organization = "New Corp"
    plan.certificate.subject_alt_names = ["mirror.example.internal"]
    save_plan(plan)
    app = make_app("review")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)) as pilot:
        on_disk = text_of(app, "#on-disk")
        assert "differs from the plan" in on_disk
        assert "SAN mirror.example.internal is in the plan but not in the certificate" in on_disk
        assert "the plan says 'New Corp', the certificate 'Old Corp'" in on_disk
        assert app.screen.query_one("#next", Button).disabled
        await generate(app, pilot)
        assert "reissued" in text_of(app, "#cert-result")
        assert "differs from the plan" not in text_of(app, "#on-disk")
        assert not app.screen.query_one("#next", Button).disabled
        served = inspect_certificate(CertFiles(plan_path.parent / "certs").tls_crt)
        assert "mirror.example.internal" in served.sans and "O=New Corp" in served.subject


async def test_subjects_name_the_email_attribute(make_app: AppFactory, plan_path: Path) -> None:
    plan = new_plan(plan_path)
    plan.certificate.email = "ops@example.com"
    save_with_certificates(plan)
    app = make_app("review")
    app.open_plan(plan_path)
    async with app.run_test(size=(100, 32)):
        for selector in ("#planned", "#on-disk"):
            shown = text_of(app, selector)
            assert "emailAddress=ops@example.com" in shown, shown
            assert "1.2.840.113549.1.9.1" not in shown
