"""The registry image pinned by digest (registry.image_digest): what is recorded, what a deploy
runs when the tag moved, what upgrade does with the pin, what status says; and what differs for
a Distribution 3 image (read from the image, never from its tag)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from app.deploy import Deployment, DeployReport, container_spec
from app.deploy.report import _record_pin
from app.distribution import (
    DISTRIBUTION_2,
    DISTRIBUTION_3,
    IMAGE_CHOICES,
    V3_CONFIG,
    choice_note,
    from_image_config,
)
from app.errors import DeployError
from app.gc import collector_argv
from app.image_pin import IMAGE_ID, REPO_DIGEST, ImageFacts, familiar_repository
from app.plan import Plan, PlanError, RegistrySettings, Secrets, load_plan, parse_plan, save_plan
from app.status import ContainerStatus, compare_with_pin
from app.steps import Outcome

ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64
MANIFEST = "sha256:" + "c" * 64
PLAN = """\
[certificate]
common_name = "registry.example.internal"

[registry]
host = "198.18.0.2"
address = "198.18.0.2"
image = "registry:2"   # the image (a comment to keep)
"""

# --- the pin from docker image inspect -------------------------------------------------------


@pytest.mark.parametrize(("image", "familiar"), [
    ("registry:2", "registry"),
    ("docker.io/library/registry:3", "registry"),
    ("library/registry:2.8.3", "registry"),
    ("ghcr.io/team/registry:2", "ghcr.io/team/registry"),
    ("mirror.local:5000/registry@" + MANIFEST, "mirror.local:5000/registry"),
])
def test_familiar_repository_is_how_repo_digests_spell_it(image: str, familiar: str) -> None:
    assert familiar_repository(image) == familiar


def test_a_pulled_image_is_pinned_by_its_repository_digest() -> None:
    facts = ImageFacts.from_attrs({"Id": ID_A, "RepoDigests": [
        "mirror.local/registry@sha256:" + "d" * 64, f"registry@{MANIFEST}"]})
    assert facts.pin_for("registry:2") == MANIFEST
    assert facts.pin_kind(MANIFEST) == REPO_DIGEST
    assert facts.matches(MANIFEST) and facts.matches(ID_A)
    assert facts.run_reference("registry:2", MANIFEST) == f"registry@{MANIFEST}"


def test_a_locally_built_image_is_pinned_by_its_image_id() -> None:
    facts = ImageFacts.from_attrs({"Id": ID_A, "RepoDigests": None})
    assert facts.pin_for("registry:2") == ID_A
    assert facts.pin_kind(ID_A) == IMAGE_ID
    assert facts.run_reference("registry:2", ID_A) == ID_A  # never the tag
    assert not facts.matches(ID_B)


# --- the plan key ------------------------------------------------------------------------------


def test_the_pin_is_validated_naming_the_key() -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(PLAN + 'image_digest = "sha256:ABC"\n')
    assert any(line.startswith("registry.image_digest: expected sha256: and 64")
               for line in caught.value.problems), caught.value.problems
    assert parse_plan(PLAN + f'image_digest = "{ID_A}"\n').registry.image_digest == ID_A
    assert parse_plan(PLAN).registry.image_digest is None


def test_saving_keeps_the_pin_and_the_comments(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN)
    plan = load_plan(path)
    plan.registry.image_digest = ID_A
    save_plan(plan)
    plan = load_plan(path)
    plan.registry.port = 9443  # an unrelated edit keeps the pin
    save_plan(plan)
    text = path.read_text()
    assert f'image_digest = "{ID_A}"' in text and "# the image (a comment to keep)" in text
    assert load_plan(path).registry.image_digest == ID_A


def test_a_successful_deploy_records_the_pin_once(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN)
    plan = load_plan(path)
    report = _report(image_digest=ID_A)
    assert _record_pin(plan, report) is True
    assert load_plan(path).registry.image_digest == ID_A
    assert any("registry.image_digest = " in line for line in
               dataclasses.replace(report, pin_recorded=True).image_lines())
    # A pinned plan keeps its pin: only upgrade moves it.
    assert _record_pin(plan, _report(image_digest=ID_B)) is False
    assert load_plan(path).registry.image_digest == ID_A


# --- what a deploy runs --------------------------------------------------------------------------


class FakeImage:
    def __init__(self, image_id: str, repo_digests: list[str] | None = None,
                 config: dict[str, Any] | None = None) -> None:
        self.id = image_id
        self.attrs = {"Id": image_id, "RepoDigests": repo_digests or [],
                      "Config": config or {"Cmd": ["/etc/docker/registry/config.yml"]}}


class FakeImages:
    """Docker's image store: names (tags, repo@digest, IDs) to images."""

    def __init__(self, names: dict[str, FakeImage]) -> None:
        self.names = names
        self.pulled: list[str] = []

    def get(self, name: str) -> FakeImage:
        if name not in self.names:
            raise docker.errors.ImageNotFound(f"no such image: {name}")
        return self.names[name]

    def pull(self, name: str) -> None:
        self.pulled.append(name)
        raise docker.errors.APIError("no route to the internet")


class FakeDocker:
    def __init__(self, names: dict[str, FakeImage]) -> None:
        self.images = FakeImages(names)


def _deployment(names: dict[str, FakeImage], pin: str | None, image: str = "registry:2"
                ) -> Deployment:
    plan = Plan(registry=RegistrySettings(host="198.18.0.2", address="198.18.0.2", image=image,
                                          image_digest=pin))
    deployment = Deployment(plan, Secrets(), transport=object())  # type: ignore[arg-type]
    deployment.options.local_docker = None
    deployment.host._docker = FakeDocker(names)
    return deployment


def _run_reference(deployment: Deployment) -> str:
    return deployment._run_reference


def test_without_a_pin_the_tag_is_used_and_becomes_the_pin() -> None:
    image = FakeImage(ID_A)
    deployment = _deployment({"registry:2": image, ID_A: image}, None)
    assert deployment._ensure_image() is Outcome.UNCHANGED
    assert _run_reference(deployment) == "registry:2" and deployment.pin == ID_A
    assert deployment.notes == []


def test_a_moved_tag_is_noted_and_the_pinned_image_runs() -> None:
    pinned, moved = FakeImage(ID_A), FakeImage(ID_B)
    deployment = _deployment({"registry:2": moved, ID_A: pinned, ID_B: moved}, ID_A)
    assert deployment._ensure_image() is Outcome.UNCHANGED
    assert _run_reference(deployment) == ID_A  # the image ID: the tag names another image
    assert deployment.pin == ID_A
    assert len(deployment.notes) == 1
    note = deployment.notes[0]
    assert "the tag registry:2 on 198.18.0.2 moved to sha256:bbbbbbbbbbbb" in note
    assert "regwiz upgrade --plan FILE --image registry:2" in note


def test_a_pin_by_repository_digest_runs_as_repo_at_digest() -> None:
    pinned = FakeImage(ID_A, [f"registry@{MANIFEST}"])
    moved = FakeImage(ID_B)
    deployment = _deployment({"registry:2": moved, f"registry@{MANIFEST}": pinned,
                              ID_A: pinned}, MANIFEST)
    deployment._ensure_image()
    assert _run_reference(deployment) == f"registry@{MANIFEST}"
    assert deployment.image is not None and deployment.image.image_id == ID_A


def test_the_tag_still_naming_the_pinned_image_changes_nothing() -> None:
    pinned = FakeImage(ID_A)
    deployment = _deployment({"registry:2": pinned, ID_A: pinned}, ID_A)
    deployment._ensure_image()
    assert _run_reference(deployment) == "registry:2" and deployment.notes == []


def test_a_pinned_image_that_cannot_be_found_is_refused_with_the_fix() -> None:
    deployment = _deployment({"registry:2": FakeImage(ID_B), ID_B: FakeImage(ID_B)}, ID_A)
    with pytest.raises(DeployError) as caught:
        deployment._ensure_image()
    assert "registry.image_digest" in caught.value.message
    assert "regwiz upgrade --plan FILE --image registry:2" in (caught.value.hint or "")
    # A pull by digest was tried (a repository digest would come back that way).
    assert deployment.host._docker.images.pulled == [f"registry@{ID_A}"]


# --- upgrade moves the pin only when the new image serves ---------------------------------------


def _report(ok: bool = True, image_digest: str | None = None) -> DeployReport:
    from app.address import RegistryAddress
    from app.steps import StepResult

    results = [StepResult("Run container registry", "host",
                          Outcome.CHANGED if ok else Outcome.FAILED, "" if ok else "rolled back")]
    return DeployReport(results=results, planned=[], dry_run=False, dry_run_lines=[],
                        container_id="c", log_tail="", generated_password=False,
                        credentials_file=None, registry=RegistryAddress("198.18.0.2", 8443),
                        seconds=0.0, image_digest=image_digest)


@pytest.mark.parametrize("ok", [True, False])
def test_upgrade_moves_the_pin_only_on_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               ok: bool) -> None:
    import app.deploy
    from app.upgrade import upgrade_registry

    path = tmp_path / "plan.toml"
    path.write_text(PLAN + f'image_digest = "{ID_A}"\n')
    seen: list[Plan] = []

    def fake_deploy(plan: Plan, secrets: Secrets, options: Any, **kwargs: Any) -> DeployReport:
        seen.append(plan)
        assert options.record_pin is False  # upgrade writes the pin itself
        return _report(ok, ID_B)

    monkeypatch.setattr(app.deploy, "deploy", fake_deploy)
    report = upgrade_registry(load_plan(path), Secrets(), "registry:3",
                              connect=lambda: None)  # type: ignore[arg-type, return-value]
    # The candidate runs what the new tag names: no pin of the old image goes with it.
    assert seen[0].registry.image == "registry:3" and seen[0].registry.image_digest is None
    saved = load_plan(path).registry
    if ok:
        assert (saved.image, saved.image_digest) == ("registry:3", ID_B)
        assert f"pinned to {ID_B}" in report.lines()[0]
    else:
        assert (saved.image, saved.image_digest) == ("registry:2", ID_A)
        assert f"(pinned to {ID_A})" in report.lines()[1]


# --- status -------------------------------------------------------------------------------------


def test_status_says_whether_the_container_runs_the_pin() -> None:
    running = ContainerStatus("registry", found=True, running=True, image_id=ID_A,
                              pinned_digest=ID_A)
    compare_with_pin(running, ImageFacts(ID_A))
    assert running.matches_pin is True and running.pin_kind == IMAGE_ID
    assert running.pin_line() == f"{ID_A} (image ID): the container runs it"

    by_digest = ContainerStatus("registry", found=True, image_id=ID_A, pinned_digest=MANIFEST)
    compare_with_pin(by_digest, ImageFacts(ID_A, (f"registry@{MANIFEST}",)))
    assert by_digest.matches_pin is True and by_digest.pin_kind == REPO_DIGEST

    other = ContainerStatus("registry", found=True, image_id=ID_B, pinned_digest=ID_A)
    compare_with_pin(other, ImageFacts(ID_B))
    assert other.off_pin and "NOT the pinned image" in other.pin_line()

    unpinned = ContainerStatus("registry", found=True, image_id=ID_A)
    compare_with_pin(unpinned, ImageFacts(ID_A))
    assert unpinned.matches_pin is None and not unpinned.off_pin
    assert unpinned.pin_line().startswith("none yet")


def test_a_container_off_its_pin_needs_attention() -> None:
    from app.status import (
        CatalogStatus,
        CertificateStatus,
        DiskStatus,
        RegistryHealth,
        StatusReport,
    )

    container = ContainerStatus("registry", found=True, running=True, image_id=ID_B,
                                pinned_digest=ID_A)
    compare_with_pin(container, ImageFacts(ID_B))
    report = StatusReport(
        collected_at="now", registry_reference="r:1",
        registry=RegistryHealth("https://r:1/v2/", reachable=True, tls_valid=True),
        server_certificate=CertificateStatus("served"), ca_certificate=CertificateStatus("ca"),
        served_matches_local=True, catalog=CatalogStatus(), container=container,
        disk=DiskStatus("/registry-image"))
    assert not report.healthy
    data = report.to_dict()
    assert data["container"]["off_pin"] is True
    assert data["container"]["pinned_digest"] == ID_A
    container.image_id, container.matches_pin = ID_A, True
    assert report.healthy


# --- Distribution 2 or 3, read from the image ----------------------------------------------------


@pytest.mark.parametrize(("config", "expected"), [
    # the official images: /entrypoint.sh runs `registry serve FILE`
    ({"Entrypoint": ["/entrypoint.sh"], "Cmd": ["/etc/docker/registry/config.yml"]},
     DISTRIBUTION_2),
    ({"Entrypoint": ["/entrypoint.sh"], "Cmd": ["/etc/distribution/config.yml"]},
     DISTRIBUTION_3),
    # the lab's registry:2 (Debian's binary) and a build that runs the binary directly
    ({"Entrypoint": ["registry"], "Cmd": ["serve", "/etc/docker/registry/config.yml"]},
     DISTRIBUTION_2),
    ({"Entrypoint": ["registry", "serve", "/etc/distribution/config.yml"]}, DISTRIBUTION_3),
    ({"Cmd": ["serve", "/srv/registry.yaml"]}, DISTRIBUTION_2.__class__(2, "/srv/registry.yaml")),
    ({}, DISTRIBUTION_2),
    (None, DISTRIBUTION_2),
])
def test_the_distribution_is_read_from_the_image(config: dict[str, Any] | None,
                                                 expected: object) -> None:
    assert from_image_config(config) == expected


@pytest.mark.parametrize("auth", ["htpasswd", "none"])
def test_the_container_spec_for_distribution_3(auth: str) -> None:
    plan = Plan(registry=RegistrySettings(image="registry:3", auth=auth))
    v3 = container_spec(plan, distribution=DISTRIBUTION_3)
    v2 = container_spec(dataclasses.replace(plan, registry=dataclasses.replace(
        plan.registry, image="registry:2")), distribution=DISTRIBUTION_2)
    assert v3.environment["OTEL_TRACES_EXPORTER"] == "none"  # 3.x traces to :4318 otherwise
    assert all(key.startswith(("REGISTRY_", "OTEL_")) for key in v3.environment)
    assert v3.environment == v2.environment  # REGISTRY_* keep their names in 3.x
    assert [v["bind"] for v in v3.volumes.values()][-1] == "/var/lib/registry"
    assert any(V3_CONFIG in line and "Distribution 3" in line for line in v3.details())
    # Read from the image, the version is no setting of its own: an existing 2.x container is
    # not recreated because regwiz now knows its version.
    assert container_spec(plan).settings_hash() == v3.settings_hash()


def test_garbage_collection_is_given_the_config_file_of_the_running_version() -> None:
    v3 = {"Entrypoint": ["/entrypoint.sh"], "Cmd": ["/etc/distribution/config.yml"]}
    assert collector_argv(v3, dry_run=True) == ["registry", "garbage-collect", "--dry-run",
                                                "/etc/distribution/config.yml"]
    v2 = {"Entrypoint": ["registry"], "Cmd": ["serve", "/etc/docker/registry/config.yml"]}
    assert collector_argv(v2, dry_run=False)[-1] == "/etc/docker/registry/config.yml"


def test_registry_2_and_3_are_offered_with_what_changes() -> None:
    assert [name for name, _ in IMAGE_CHOICES] == ["registry:2", "registry:3"]
    assert "default" in choice_note("registry:2")
    assert "/etc/distribution/config.yml" in choice_note("registry:3")
    assert "read" in choice_note("example.com/mirror/registry:2.8.3")


@pytest.mark.parametrize(("pin", "expected"), [
    (None, "not pinned yet: runs what registry:2 names now"),
    (ID_A, f"pinned: runs {ID_A} (registry.image_digest) whatever registry:2 names now"),
])
def test_the_dry_run_says_which_image_will_run(pin: str | None, expected: str) -> None:
    plan = Plan(registry=RegistrySettings(host="198.18.0.2", address="198.18.0.2",
                                          image_digest=pin))
    steps = Deployment(plan, Secrets(), connect=lambda: None).steps()  # type: ignore[arg-type, return-value]
    image_step = next(step for step in steps if step.what == "Make image registry:2 available")
    assert any(detail.startswith(expected) for detail in image_step.details)


def test_a_repository_digest_pin_is_not_judged_without_the_image_data() -> None:
    container = ContainerStatus("registry", found=True, image_id=ID_A, pinned_digest=MANIFEST)
    compare_with_pin(container, None)
    assert container.matches_pin is None and not container.off_pin
    assert "not compared: Docker did not describe the running image" in container.pin_line()


def test_the_deploy_reads_the_distribution_from_the_image_it_runs() -> None:
    v3 = FakeImage(ID_A, config={"Entrypoint": ["/entrypoint.sh"],
                                 "Cmd": ["/etc/distribution/config.yml"]})
    deployment = _deployment({"registry:3": v3, ID_A: v3}, None, image="registry:3")
    deployment._ensure_image()
    spec = deployment._spec()
    assert spec.distribution == DISTRIBUTION_3 and spec.image == "registry:3"
