"""CA rotation without hosts: which phases a run resumes with, the certificate folder through
add/switch/finish (re-runs change nothing, an encrypted key stays encrypted, the old CA is kept),
and a failing phase stopping the rotation and resuming there. Onboarding and deploy are fakes;
tests/lab/test_ca_rotation_lab.py does it on real nodes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from app import ca_rotation
from app.ca_rotation import CaFacts, RotationJob, RotationState, phases_to_run
from app.certs import (
    CertError,
    CertFiles,
    certificate_signed_by,
    ensure_certificates,
    inspect_certificate,
    issue_from_next_ca,
    prepare_next_ca,
    promote_next_ca,
)
from app.cli import main
from app.errors import UsageError
from app.plan import NodeSettings, Plan, Secrets, new_plan, save_plan
from app.status import pem_fingerprints

PASSPHRASE = "unit-passphrase"  # noqa: S105 - a test's own


def state(phase: str) -> RotationState:
    return RotationState(phase, "2026-01-01T00:00:00+00:00", "AB")


@pytest.mark.parametrize(("recorded", "facts", "expected"), [
    (None, CaFacts(False, False), ["add", "switch", "finish"]),
    ("add", CaFacts(False, False), ["add", "switch", "finish"]),
    ("switch", CaFacts(False, False), ["switch", "finish"]),
    ("switch", CaFacts(False, True), ["switch", "finish"]),  # a re-run switch changes nothing
    ("finish", CaFacts(False, True), ["finish"]),
    ("finish", CaFacts(True, True), ["finish"]),
    ("finish", CaFacts(True, False), ["finish"]),  # promoted: tls.crt is judged against it
    # tls.crt not from the new CA (a renew meanwhile?): nodes must not drop the old CA yet
    ("finish", CaFacts(False, False), ["switch", "finish"]),
])
def test_phases_to_run_resume_at_the_recorded_phase(
        recorded: str | None, facts: CaFacts, expected: list[str]) -> None:
    assert phases_to_run(state(recorded) if recorded else None, facts) == expected


@pytest.mark.parametrize("data", [{}, {"phase": "later"}, [], "add"])
def test_a_record_without_a_known_phase_is_refused(data: object) -> None:
    with pytest.raises(ValueError):
        RotationState.from_dict(data)


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    made = new_plan(tmp_path / "plan.toml")
    made.certificate.common_name = "registry.rotation.test"
    made.registry.address = "198.18.9.2"
    made.certificate.subject_alt_names = ["198.18.9.2"]
    save_plan(made)
    ensure_certificates(made, ca_passphrase=PASSPHRASE)
    return made


def fingerprint(path: Path) -> str:
    return inspect_certificate(path).fingerprint


def test_the_folder_through_add_switch_and_finish(plan: Plan) -> None:
    files = CertFiles(plan.cert_dir)
    old = fingerprint(files.ca_crt)
    assert plan.trusted_ca_path == files.ca_crt
    # add: a new pair (encrypted like ca.key) and the bundle nodes get; re-run reuses both
    current, new = prepare_next_ca(plan, PASSPHRASE)
    assert current.fingerprint == old and new.fingerprint != old
    assert b"ENCRYPTED" in files.ca_next_key.read_bytes()
    assert files.ca_next_key.stat().st_mode & 0o777 == 0o600
    assert plan.trusted_ca_path == files.ca_bundle
    assert pem_fingerprints(files.ca_bundle.read_bytes()) == [old, new.fingerprint]
    assert prepare_next_ca(plan, PASSPHRASE)[1].fingerprint == new.fingerprint
    # switch: tls.crt from the new CA, once; the normal certs run keeps it meanwhile
    tls_before = fingerprint(files.tls_crt)
    assert issue_from_next_ca(plan, PASSPHRASE).leaf_action == "reissued"
    switched = fingerprint(files.tls_crt)
    assert switched != tls_before and certificate_signed_by(files.tls_crt, files.ca_next_crt)
    assert issue_from_next_ca(plan, PASSPHRASE).leaf_action == "unchanged"
    assert ensure_certificates(plan, ca_passphrase=PASSPHRASE).leaf_action == "unchanged"
    assert fingerprint(files.tls_crt) == switched
    # finish: the new pair is ca.*, the old one kept (dated), the bundle gone; re-run safe
    backups = promote_next_ca(plan)
    assert sorted(name.split(".old-")[0] for name in backups) == ["ca.crt", "ca.key"]
    assert fingerprint(plan.cert_dir / backups[0]) == old
    assert fingerprint(files.ca_crt) == new.fingerprint
    assert b"ENCRYPTED" in files.ca_key.read_bytes()
    assert not files.ca_next_crt.exists() and not files.ca_bundle.exists()
    assert plan.trusted_ca_path == files.ca_crt
    assert promote_next_ca(plan) == []
    assert ensure_certificates(plan, ca_passphrase=PASSPHRASE).leaf_action == "unchanged"


def test_add_needs_the_passphrase_of_an_encrypted_ca_key(plan: Plan) -> None:
    with pytest.raises(CertError) as info:
        prepare_next_ca(plan, None)
    assert "REGWIZ_CA_KEY_PASSPHRASE" in (info.value.hint or "")
    assert not CertFiles(plan.cert_dir).ca_next_crt.exists()


def test_no_other_new_ca_while_a_rotation_is_under_way(plan: Plan) -> None:
    prepare_next_ca(plan, PASSPHRASE)
    before = fingerprint(plan.cert_dir / "ca.crt")
    with pytest.raises(CertError) as info:
        ensure_certificates(plan, new_ca=True, ca_passphrase=PASSPHRASE)
    assert "rotate-ca" in (info.value.hint or "")
    assert fingerprint(plan.cert_dir / "ca.crt") == before


def test_an_interrupted_promotion_is_not_backed_up_twice(plan: Plan) -> None:
    files = CertFiles(plan.cert_dir)
    prepare_next_ca(plan, PASSPHRASE)
    # killed after the new pair was placed, before ca-next.* were removed
    files.ca_key.write_bytes(files.ca_next_key.read_bytes())
    files.ca_crt.write_bytes(files.ca_next_crt.read_bytes())
    assert promote_next_ca(plan) == []
    assert not files.ca_next_crt.exists() and not files.ca_next_key.exists()


# --------------------------------------------------------------------------- the runs


@dataclass
class Fakes:
    """Onboarding and deploy stand-ins: what they saw, and failures to make."""

    onboarded: list[list[str]] = field(default_factory=list)  # the CAs nodes got, per run
    deploys: int = 0
    fail_onboard: int = 0  # the onboarding run (1, 2, ...) that fails; 0: none
    fail_deploy: bool = False


@pytest.fixture
def fakes(plan: Plan, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    from app import onboard, renewal

    made = Fakes()
    plan.nodes = [NodeSettings(host="198.18.9.3")]
    save_plan(plan)

    def onboard_nodes(plan: Plan, secrets: Secrets, **_: object) -> object:
        made.onboarded.append(pem_fingerprints(plan.trusted_ca_path.read_bytes()))
        failed = [SimpleNamespace(host="198.18.9.3", reason="unreachable", message="")]
        fails = len(made.onboarded) == made.fail_onboard
        return SimpleNamespace(failed=failed if fails else [], results=[object()])

    def deploy_and_read_back(plan: Plan, *_: object, **__: object) -> tuple[object, str]:
        made.deploys += 1
        failed = [SimpleNamespace(what="Run container registry", message="boom", hint=None)]
        report = SimpleNamespace(ok=not made.fail_deploy,
                                 failed=failed if made.fail_deploy else [])
        return report, fingerprint(plan.cert_dir / "tls.crt")  # it serves tls.crt

    monkeypatch.setattr(onboard, "onboard_nodes", onboard_nodes)
    monkeypatch.setattr(renewal, "deploy_and_read_back", deploy_and_read_back)
    monkeypatch.setattr("app.status.served_certificate", lambda *_, **__: SimpleNamespace(
        fingerprint=fingerprint(plan.cert_dir / "tls.crt")))
    yield made


def job(plan: Plan, events: list[ca_rotation.RotationEvent] | None = None) -> RotationJob:
    return RotationJob(plan, Secrets(ca_key_passphrase=PASSPHRASE), None,  # type: ignore[arg-type]
                       lambda: None,  # type: ignore[arg-type,return-value]
                       on_event=(events.append if events is not None else lambda e: None))


def test_a_full_rotation_onboards_both_cas_then_the_new_one_alone(
        plan: Plan, fakes: Fakes) -> None:
    old = fingerprint(plan.cert_dir / "ca.crt")
    events: list[ca_rotation.RotationEvent] = []
    report = ca_rotation.rotate_ca(job(plan, events))
    assert report.ok, report.lines()
    new = fingerprint(plan.cert_dir / "ca.crt")
    assert fakes.onboarded == [[old, new], [new]]
    assert fakes.deploys == 2  # the switch, then the registry host's trust at the finish
    assert [e.phase for e in events if e.started] == ["add", "switch", "finish"]
    assert ca_rotation.load_state(plan) is None
    assert report.lines()[-1].startswith("CA rotated")
    assert not [line for line in report.lines() if "PRIVATE" in line]


def test_a_failed_phase_stops_there_and_the_next_run_resumes_at_it(
        plan: Plan, fakes: Fakes) -> None:
    old = fingerprint(plan.cert_dir / "ca.crt")
    fakes.fail_deploy = True
    report = ca_rotation.rotate_ca(job(plan))
    assert report.failed_phase == "switch" and not report.ok
    assert "Run container registry" in (report.error or "")
    assert "resume at phase switch" in report.lines()[-1]
    assert ca_rotation.load_state(plan).phase == "switch"  # type: ignore[union-attr]
    assert fingerprint(plan.cert_dir / "ca.crt") == old  # nodes still trust the old CA
    fakes.fail_deploy = False
    again = ca_rotation.rotate_ca(job(plan))
    assert again.ok and again.resumed_at == "switch"
    assert [p.phase for p in again.phases] == ["switch", "finish"]
    assert len(fakes.onboarded) == 2  # add ran once


def test_a_node_the_finish_cannot_reach_keeps_both_cas_until_the_run_resumes(
        plan: Plan, fakes: Fakes) -> None:
    old = fingerprint(plan.cert_dir / "ca.crt")
    fakes.fail_onboard = 2  # the finish's onboarding
    events: list[ca_rotation.RotationEvent] = []
    first = ca_rotation.rotate_ca(job(plan, events))
    assert first.failed_phase == "finish" and "198.18.9.3 (unreachable)" in (first.error or "")
    assert events[-1].text.startswith("failed:")
    new = fingerprint(plan.cert_dir / "ca.crt")  # promoted before the nodes were onboarded
    assert new != old and first.backups
    assert ca_rotation.load_state(plan).phase == "finish"  # type: ignore[union-attr]
    fakes.fail_onboard = 0
    again = ca_rotation.rotate_ca(job(plan))
    assert again.ok and again.resumed_at == "finish" and again.backups == []
    assert fakes.onboarded == [[old, new], [new], [new]]
    assert len(list(plan.cert_dir.glob("ca.crt.old-*"))) == 1  # backed up once


def test_a_node_that_cannot_take_the_bundle_stops_the_add_phase(
        plan: Plan, fakes: Fakes) -> None:
    fakes.fail_onboard = 1
    report = ca_rotation.rotate_ca(job(plan))
    assert report.failed_phase == "add" and fakes.deploys == 0
    assert ca_rotation.load_state(plan).phase == "add"  # type: ignore[union-attr]
    fakes.fail_onboard = 0
    assert ca_rotation.rotate_ca(job(plan)).ok
    assert [len(cas) for cas in fakes.onboarded] == [2, 2, 1]


def test_a_finish_whose_certificate_is_not_from_the_new_ca_switches_again(
        plan: Plan, fakes: Fakes) -> None:
    ca_rotation.save_state(plan, RotationState("finish", "t"))
    prepare_next_ca(plan, PASSPHRASE)  # the new CA exists, but tls.crt is still the old CA's
    report = ca_rotation.rotate_ca(job(plan))
    assert report.ok and [p.phase for p in report.phases] == ["switch", "finish"]
    assert certificate_signed_by(plan.cert_dir / "tls.crt", plan.cert_dir / "ca.crt")


def test_status_notes_a_rotation_under_way(plan: Plan) -> None:
    assert ca_rotation.rotation_note(plan) is None
    ca_rotation.save_state(plan, RotationState("switch", "t"))
    assert "next: phase switch" in (ca_rotation.rotation_note(plan) or "")
    from app.commands.status import status_notes  # text and --json alike

    assert any("next: phase switch" in note for note in status_notes(plan))
    ca_rotation.state_path(plan).write_text("{broken")
    assert "cannot read the CA rotation record" in (ca_rotation.rotation_note(plan) or "")


def test_renew_is_refused_while_a_rotation_is_under_way(plan: Plan) -> None:
    from app.renewal import renew_and_deploy

    prepare_next_ca(plan, PASSPHRASE)
    with pytest.raises(UsageError) as info:
        renew_and_deploy(plan, Secrets(ca_key_passphrase=PASSPHRASE), None,
                         connect=lambda: None)  # type: ignore[arg-type,return-value]
    assert "rotate-ca" in (info.value.hint or "")


def test_cli_dry_run_and_confirmation(plan: Plan, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rotate-ca", "--plan", str(plan.path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "phase 1/3 add" in out and "phase 3/3 finish" in out
    assert not CertFiles(plan.cert_dir).ca_next_crt.exists()  # nothing changed
    assert main(["rotate-ca", "--plan", str(plan.path)]) == 2  # no terminal, no --yes
    assert "--yes" in capsys.readouterr().err
    ca_rotation.save_state(plan, RotationState("switch", "t"))
    assert main(["rotate-ca", "--plan", str(plan.path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "resuming at phase switch" in out and "phase 1/3" not in out
