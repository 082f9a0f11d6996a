"""Pull-through caches on the registry host (issue 14): their container spec and config, the
dry run, and the purge guard that accepts their directories."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from app.deploy import DeployOptions, deploy
from app.deploy.container import CONTAINER_DATA_DIR
from app.deploy.mirrors import (
    CONTAINER_CONFIG,
    CONTAINER_REMOTE_CA,
    LABEL_CONFIG,
    cache_dir,
    config_digest,
    config_password,
    expected_status,
    mirror_container_name,
    mirror_labels,
    mirror_notes,
    mirror_spec,
    render_config,
)
from app.deploy.probes import LIST_DATA_DIR, foreign_entries
from app.plan import MirrorSettings, Plan, RegistrySettings, Secrets, validate_plan
from app.transport.base import Transport

PASSWORD = "s3cret-upstream-Passw0rd"  # noqa: S105 - a test value


def never_connect() -> Transport:
    raise AssertionError("nothing may connect here")


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    registry = dataclasses.replace(RegistrySettings(host="198.18.4.2", address="198.18.4.2"),
                                   port=8443, container_name="reg", data_dir="/srv/reg",
                                   certs_dir="/etc/reg-certs")
    mirrors = [MirrorSettings("docker.io", 5001),
               MirrorSettings("upstream.lab:5000", 5002, remote_url="https://198.18.4.9:5000",
                              remote_ca="up-ca.crt", username="robot")]
    return Plan(registry=registry, path=tmp_path / "plan.toml", mirrors=mirrors)


def test_a_cache_is_a_proxy_registry_with_the_plans_certificate(plan: Plan) -> None:
    hub, lab = plan.mirrors
    spec = mirror_spec(plan, hub)
    assert (spec.name, spec.port, spec.image) == ("reg-mirror-docker-io", 5001, "registry:2")
    assert spec.volumes["/srv/reg/mirrors/docker-io"] == {"bind": CONTAINER_DATA_DIR,
                                                          "mode": "rw"}
    assert spec.volumes["/etc/reg-certs/mirrors/docker-io/config.yml"] == {
        "bind": CONTAINER_CONFIG, "mode": "ro"}
    assert not any("htpasswd" in source for source in spec.volumes)  # public: no accounts
    config = render_config(plan, hub, None).decode()
    assert 'remoteurl: "https://registry-1.docker.io"' in config
    assert "auth:" not in config and "username" not in config
    assert "enabled: false" in config  # deletes stay off
    assert expected_status(hub) == 200 and expected_status(lab) == 401


def test_a_private_cache_requires_the_plans_accounts(plan: Plan) -> None:
    lab = plan.mirrors[1]
    config = render_config(plan, lab, PASSWORD).decode()
    assert 'remoteurl: "https://198.18.4.9:5000"' in config
    assert 'username: "robot"' in config and f'password: "{PASSWORD}"' in config
    assert 'path: "/docker-in-certs/htpasswd"' in config  # the front's file, same accounts
    spec = mirror_spec(plan, lab)
    assert spec.volumes["/etc/reg-certs/htpasswd"]["mode"] == "ro"
    assert spec.environment["SSL_CERT_FILE"] == CONTAINER_REMOTE_CA  # its upstream's CA only
    assert "SSL_CERT_FILE" not in mirror_spec(plan, plan.mirrors[0]).environment


def test_the_password_is_read_back_from_the_config_it_was_written_to(plan: Plan) -> None:
    lab = plan.mirrors[1]
    tricky = 'a "quoted" \\ pass: word'
    assert config_password(render_config(plan, lab, tricky)) == tricky
    assert config_password(render_config(plan, plan.mirrors[0], None)) is None  # public


def test_the_upstream_password_is_in_no_container_setting(plan: Plan) -> None:
    lab = plan.mirrors[1]
    spec = mirror_spec(plan, lab)
    config = render_config(plan, lab, PASSWORD)
    labels = mirror_labels(plan, lab, spec, cert_fingerprint="AB", htpasswd="0" * 64,
                           config=config_digest(config, b"server key"))
    everything = repr((spec.environment, spec.volumes, spec.details(), labels))
    assert PASSWORD not in everything
    # the label changes with the password (a rotated password recreates the cache) ...
    other = config_digest(render_config(plan, lab, "another"), b"server key")
    assert labels[LABEL_CONFIG] != other
    # ... but is keyed: it is not the plain digest one could test guesses against
    import hashlib
    assert labels[LABEL_CONFIG] != hashlib.sha256(config).hexdigest()


def test_the_dry_run_lists_every_cache_step_without_the_password(plan: Plan) -> None:
    secrets = Secrets(mirror_passwords={plan.mirrors[1].password_env: PASSWORD})
    report = deploy(plan, secrets, DeployOptions(), connect=never_connect, dry_run=True)
    text = "\n".join(report.dry_run_lines)
    assert PASSWORD not in text
    whats = [what for what, _ in report.planned]
    assert "Check the caches' ports 5001, 5002 are free" in whats
    assert "Remove caches no longer in the plan" in whats
    for name, port in (("reg-mirror-docker-io", 5001), ("reg-mirror-upstream-lab-5000", 5002)):
        assert f"Run cache {name} of " in text and f" on {port}" in text
        assert f"Health check cache https://198.18.4.2:{port}/v2/" in whats
    assert "proxy.password from $REGWIZ_MIRROR_UPSTREAM_LAB_5000_PASSWORD" in text
    assert whats[-1] == "Remove the previous caches"


def test_without_mirrors_only_the_stale_cache_cleanup_is_added(plan: Plan) -> None:
    plan.mirrors = []
    report = deploy(plan, Secrets(), DeployOptions(), connect=never_connect, dry_run=True)
    assert [what for what, _ in report.planned][-1] == "Remove caches no longer in the plan"
    assert not any("cache" in what.lower() for what, _ in report.planned[:-1])


def test_auth_notes_say_who_may_pull(plan: Plan) -> None:
    hub, lab = mirror_notes(plan)
    assert "anyone who reaches it, without an account" in hub
    assert "198.18.4.2:5001" in hub
    assert "serves only the plan's accounts" in lab


def test_a_private_mirror_needs_the_plans_accounts(plan: Plan) -> None:
    plan.registry.auth = "none"
    assert any(problem.startswith("mirrors[1].username") for problem in validate_plan(plan))
    plan.mirrors = plan.mirrors[:1]  # a public cache needs none
    assert not any(problem.startswith("mirrors") for problem in validate_plan(plan))


def test_names_and_directories(plan: Plan) -> None:
    hub = plan.mirrors[0]
    assert mirror_container_name(plan, hub) == "reg-mirror-docker-io"
    assert cache_dir(plan, hub) == "/srv/reg/mirrors/docker-io"


# -- the purge guard ---------------------------------------------------------------------------

def listing_of(directory: Path) -> str:
    """LIST_DATA_DIR run for real on a local directory."""
    done = subprocess.run(["sh", "-c", LIST_DATA_DIR, "sh", str(directory)],
                          capture_output=True, text=True, check=True)
    return done.stdout


def make_tree(root: Path, *paths: str) -> Path:
    for path in paths:
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x")
    return root


REGISTRY = ("docker/registry/v2/", ".regwiz-registry-data")
CACHE = ("mirrors/docker-io/docker/registry/v2/blobs/",
         "mirrors/docker-io/scheduler-state.json", "mirrors/quay-io/")


def test_purge_accepts_a_data_dir_with_caches(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", *REGISTRY, *CACHE)
    assert foreign_entries(listing_of(data)) == []


@pytest.mark.parametrize(("extra", "found"), [
    ("mirrors/notes.txt", "mirrors/notes.txt"),  # a file where caches go
    ("mirrors/Home/", "mirrors/Home"),  # not a cache's name
    ("mirrors/docker-io/etc/", "mirrors/docker-io/etc"),
    ("mirrors/docker-io/docker/other/", "mirrors/docker-io/docker/other"),
    ("mirrors/docker-io/docker/registry/passwd", "mirrors/docker-io/docker/registry/passwd"),
])
def test_purge_refuses_anything_else_under_mirrors(tmp_path: Path, extra: str,
                                                   found: str) -> None:
    data = make_tree(tmp_path / "data", *REGISTRY, *CACHE, extra)
    assert foreign_entries(listing_of(data)) == [found]


def test_purge_refuses_a_linked_cache(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", *REGISTRY, "mirrors/")
    (data / "mirrors" / "docker-io").symlink_to("/etc")
    assert "mirrors/docker-io" in foreign_entries(listing_of(data))  # a link, not a cache


def test_uninstall_removes_the_caches_and_their_configs(plan: Plan) -> None:
    from app.deploy import Uninstall
    from app.steps import dry_run_lines

    steps = Uninstall(plan, connect=never_connect).steps()
    text = "\n".join(dry_run_lines(steps))
    assert "Remove the pull-through caches" in [step.what for step in steps]
    assert "docker rm -f reg-mirror-* (only those regwiz created for this registry)" in text
    assert "rm -rf /etc/reg-certs/mirrors (their configs)" in text
    assert "cached blobs stay in /srv/reg/mirrors unless --purge" in text
