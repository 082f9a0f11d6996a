"""Sizes, the manifest cache and ``regwiz prune`` against a real Distribution registry on
127.0.0.1 (tests/deploy_helpers.local_registry; issue 15 parts 1 and 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from app.image_facts import CACHE_NAME, ManifestCache, RegistryReader
from app.plan import Plan, load_plan, save_plan
from app.status import collect_catalog
from tests.deploy_helpers import LocalRegistry, local_registry, make_pki
from tests.image_helpers import Pushed, Pusher, local_plan


@dataclass
class Setup:
    registry: LocalRegistry
    pusher: Pusher
    plan_path: Path

    @property
    def plan(self) -> Plan:
        return load_plan(self.plan_path)

    def reader(self) -> RegistryReader:
        return RegistryReader.for_plan(self.plan, None)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with local_registry(tmp_path / "reg", make_pki(["127.0.0.1"]),
                        delete_enabled=True) as registry:
        yield Setup(registry, Pusher(registry.base, registry.ca_path),
                    local_plan(tmp_path / "plan" / "plan.toml", registry))


BASE = b"base layer " * 100  # shared by every app image


def push_app(setup: Setup) -> dict[str, Pushed]:
    """app:v1..v3 (a shared base layer, each its own second layer, made a day apart) and
    other:1."""
    pushed = {
        f"v{n}": setup.pusher.image("app", f"v{n}", [BASE, f"layer {n}".encode() * 50],
                                    f"2026-01-0{n}T00:00:00Z")
        for n in (1, 2, 3)
    }
    pushed["other"] = setup.pusher.image("other", "1", [b"other layer"], "2026-01-01T00:00:00Z")
    return pushed


def test_sizes_count_a_shared_layer_once_and_follow_an_index(setup: Setup) -> None:
    pushed = push_app(setup)
    amd = setup.pusher.image("multi", None, [b"amd64 layer" * 10], "2026-02-01T00:00:00Z")
    arm = setup.pusher.image("multi", None, [b"arm64 layer" * 10], "2026-02-03T00:00:00Z",
                             arch="arm64")
    index = setup.pusher.index("multi", "1.0", [(amd, "amd64"), (arm, "arm64")])
    facts = {repo.name: repo for repo in
             (setup.reader().repository(name) for name in ("app", "multi", "other"))}
    distinct = sum(p.blob_bytes for k, p in pushed.items() if k != "other") - 2 * len(BASE)
    assert facts["app"].unique_bytes == distinct
    assert facts["other"].unique_bytes == pushed["other"].blob_bytes
    multi = facts["multi"].tags[0]
    assert multi.digest == index.digest
    assert multi.manifests == [index.digest, amd.digest, arm.digest]
    assert facts["multi"].unique_bytes == amd.blob_bytes + arm.blob_bytes
    assert multi.created == "2026-02-03T00:00:00+00:00"  # the newest child


def test_the_cache_fetches_only_manifests_it_has_not_seen(setup: Setup) -> None:
    push_app(setup)
    first = ManifestCache.for_plan(setup.plan)
    assert len(first) == 0
    catalog = collect_catalog(setup.plan, setup.plan.trusted_ca_path, None)
    assert catalog.manifests_fetched == 4
    sizes = {s.name: s for s in catalog.sizes}
    assert (sizes["app"].tag_count, sizes["other"].tag_count) == (3, 1)
    cache_file = setup.plan_path.parent / CACHE_NAME
    assert cache_file.stat().st_mode & 0o777 == 0o600
    assert len(json.loads(cache_file.read_text())["manifests"]) == 4
    again = collect_catalog(setup.plan, setup.plan.trusted_ca_path, None)
    assert again.manifests_fetched == 0
    assert [(s.name, s.unique_bytes) for s in again.sizes] == \
        [(s.name, s.unique_bytes) for s in catalog.sizes]
    setup.pusher.image("app", "v4", [BASE, b"four"], "2026-01-04T00:00:00Z")
    setup.pusher.image("app", "v1", [BASE, b"retagged"], "2026-01-05T00:00:00Z")  # tag moved
    third = collect_catalog(setup.plan, setup.plan.trusted_ca_path, None)
    assert third.manifests_fetched == 2
    assert {s.name: s.tag_count for s in third.sizes}["app"] == 4


def test_a_broken_cache_file_is_only_slower(setup: Setup) -> None:
    push_app(setup)
    (setup.plan_path.parent / CACHE_NAME).write_text("{not json")
    catalog = collect_catalog(setup.plan, setup.plan.trusted_ca_path, None)
    assert catalog.manifests_fetched == 4 and not any(s.error for s in catalog.sizes)


def cli(setup: Setup, *args: str) -> int:
    return main(["prune", "--plan", str(setup.plan_path), *args])


def test_prune_deletes_exactly_the_older_tags(setup: Setup,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pushed = push_app(setup)
    assert cli(setup, "--keep-last", "1", "--repo", "app", "--dry-run") == 0
    listing = capsys.readouterr().out
    assert "delete v2" in " ".join(listing.split()) and "keep v3" in " ".join(listing.split())
    assert setup.pusher.head("app", "v1") == pushed["v1"].digest  # dry run: nothing deleted
    assert cli(setup, "--keep-last", "1", "--repo", "app", "--yes") == 0
    out = capsys.readouterr().out
    assert "2 tag(s) deleted, 0 failed" in out
    assert setup.pusher.head("app", "v1") is None and setup.pusher.head("app", "v2") is None
    assert setup.pusher.head("app", "v3") == pushed["v3"].digest
    assert setup.pusher.head("other", "1") == pushed["other"].digest


def test_prune_refuses_without_a_terminal_or_delete_enabled_or_management(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = push_app(setup)
    assert cli(setup, "--keep-last", "1") == 2  # pytest's stdin is not a terminal
    assert "add --yes" in capsys.readouterr().err
    plan = setup.plan
    plan.registry.delete_enabled = False
    save_plan(plan)
    assert cli(setup, "--keep-last", "1", "--yes") == 2
    err = capsys.readouterr().err
    assert "delete_enabled = false" in err and "regwiz deploy" in err
    plan.registry.managed = False
    plan.registry.delete_enabled = True
    save_plan(plan)
    assert cli(setup, "--keep-last", "1", "--yes") == 2
    assert "managed = false" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse: at least 1
        cli(setup, "--keep-last", "0")
    assert refused.value.code == 2
    assert all(setup.pusher.head("app", t) == pushed[t].digest for t in ("v1", "v2", "v3"))


def test_a_registry_refusing_delete_stops_at_the_first_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with local_registry(tmp_path / "reg", make_pki(["127.0.0.1"])) as registry:
        setup = Setup(registry, Pusher(registry.base, registry.ca_path),
                      local_plan(tmp_path / "plan.toml", registry))  # the plan says enabled
        push_app(setup)
        assert cli(setup, "--keep-last", "1", "--yes") == 1
        out = capsys.readouterr().out
        assert "[1/2] failed" in out and "[2/2]" not in out and "delete_enabled" in out


def test_status_shows_the_volume_and_warns_at_the_threshold(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.plan import Secrets
    from app.status import registry_host_status

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    push_app(setup)
    _, disk = registry_host_status(setup.plan, Secrets(), None)
    assert disk.volume_error is None and disk.volume_bytes and disk.volume_free_bytes
    assert disk.used_percent is not None and 1 <= disk.used_percent <= 100
    assert disk.warn_percent == 85 and disk.used_bytes
    plan = setup.plan
    plan.registry.disk_warn_percent = 1
    save_plan(plan)
    _, disk = registry_host_status(setup.plan, Secrets(), None)
    assert disk.too_full
    assert main(["status", "--plan", str(setup.plan_path), "--no-nodes", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["disk"]["too_full"] is True and report["healthy"] is False
    assert {s["name"]: s["tag_count"] for s in report["catalog"]["sizes"]} == {
        "app": 3, "other": 1}
    main(["status", "--plan", str(setup.plan_path), "--no-nodes"])
    out = capsys.readouterr().out
    assert "WARNING: the volume is" in out and "disk_warn_percent = 1" in out
    assert "app: v1, v2, v3  [3 tags," in out


@pytest.mark.parametrize("output, expected", [
    ("Filesystem 1024-blocks Used Available Capacity Mounted on\n"
     "/dev/sda1 1000 600 400 60% /registry-image\n", (1000 * 1024, 600 * 1024, 400 * 1024)),
    # a long device name wraps the line (POSIX df -P does not, busybox may)
    ("Filesystem 1024-blocks Used Available Capacity Mounted on\n"
     "/dev/mapper/a-very-long-volume-name\n 2048 1024 1024 50% /data dir\n",
     (2048 * 1024, 1024 * 1024, 1024 * 1024)),
    ("df: /nope: No such file or directory\n", None),
    ("", None),
])
def test_df_output_parses(output: str, expected: tuple[int, int, int] | None) -> None:
    from app.status import parse_df_output

    assert parse_df_output(output) == expected


def test_used_percent_rounds_up_like_df() -> None:
    from app.status import DiskStatus

    disk = DiskStatus("/d", volume_bytes=1000, volume_used_bytes=1, volume_free_bytes=999,
                      warn_percent=1)
    assert disk.used_percent == 1 and disk.too_full
    disk.warn_percent = 2
    assert not disk.too_full
    assert DiskStatus("/d").used_percent is None and not DiskStatus("/d").too_full


def test_a_manifest_another_tag_came_to_use_after_the_preview_is_kept(setup: Setup) -> None:
    from app.retention import DeleteState, RetentionRule, plan_prune, run_prune

    pushed = push_app(setup)
    reader = setup.reader()
    prune = plan_prune(reader, RetentionRule(1, repositories=("app",)))
    assert {d.tag for d in prune.to_delete} == {"v1", "v2"}
    # meanwhile someone tags v1's image again
    status, _, manifest = setup.pusher.call(
        "GET", f"/v2/app/manifests/{pushed['v1'].digest}",
        extra={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 200
    setup.pusher.put_manifest("app", "pinned", manifest,
                              "application/vnd.oci.image.manifest.v1+json")
    seen: list[tuple[str, DeleteState]] = []
    report = run_prune(reader, prune, on_progress=lambda r: seen.append((r.tags[0], r.state)))
    assert seen == [("v2", DeleteState.DELETED), ("v1", DeleteState.SKIPPED)]
    assert report.ok and report.deleted_tags == ["app:v2"]
    assert "pinned" in report.results[1].message
    assert setup.pusher.head("app", "pinned") == pushed["v1"].digest
    assert setup.pusher.head("app", "v1") == pushed["v1"].digest
    assert setup.pusher.head("app", "v2") is None
