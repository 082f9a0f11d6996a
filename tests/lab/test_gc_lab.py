"""Garbage collection in a read-only window (issue 15, item 3) on a registry regwiz deployed (front,
accounts): three tags of one repository with layers of their own and one of another, a
multi-platform image, `regwiz prune --keep-last 1` on the first, then `regwiz gc`:

- bytes are freed, every remaining tag reads back with the same digest and its blobs are there,
  the multi-platform image (index, both platforms, their layers) is intact;
- during the window a pull succeeds and a push is refused (HTTP 405);
- afterwards pushes work again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.connections import host_key_policy, open_registry_transport
from app.gc import collect_garbage
from app.plan import Secrets, load_plan
from tests.image_helpers import Pusher, basic_header
from tests.lab.lab import Lab
from tests.lab.status_actions import run_status_action
from tests.lab.test_private_lab import Private, private_registry

pytestmark = pytest.mark.lab
LAYER = 300_000


@pytest.fixture
def deployed(lab: Lab, tmp_path: Path) -> Iterator[Private]:
    with private_registry(lab, tmp_path, "rwp-gc-lab") as made:
        assert made.cli("deploy") == 0
        yield made


def pusher(private: Private, account: str = "operator") -> Pusher:
    return Pusher(f"https://{private.address}", private.certs / "ca.crt",
                  basic_header(account, private.password(account)))


def blob_present(private: Private, repository: str, digest: str) -> bool:
    status, _, _ = pusher(private, "cluster").call("HEAD", f"/v2/{repository}/blobs/{digest}")
    return status == 200


def test_gc_frees_deleted_images_in_a_read_only_window_and_keeps_everything_tagged(
        deployed: Private) -> None:
    push = pusher(deployed)
    for number, created in enumerate(("2026-01-01", "2026-02-01", "2026-03-01"), start=1):
        push.image("team/app", f"v{number}", [os.urandom(LAYER)], f"{created}T00:00:00Z")
    other = push.image("team/other", "1.0", [os.urandom(LAYER)], "2026-01-05T00:00:00Z")
    amd = push.image("team/multi", None, [os.urandom(LAYER)], "2026-01-02T00:00:00Z")
    arm = push.image("team/multi", None, [os.urandom(LAYER)], "2026-01-02T00:00:00Z",
                     arch="arm64")
    multi = push.index("team/multi", "1.0", [(amd, "amd64"), (arm, "arm64")])
    kept = push.head("team/app", "v3")
    base = ["--plan", str(deployed.plan)]
    assert main(["prune", *base, "--keep-last", "1", "--repo", "team/app", "--yes"]) == 0
    assert push.head("team/app", "v1") is None and push.head("team/app", "v2") is None

    plan = load_plan(deployed.plan)
    policy = host_key_policy(False, known_hosts=deployed.known_hosts)  # all lab keys known
    seen: dict[str, object] = {}

    def probe_the_window() -> None:
        reader = pusher(deployed, "cluster")
        seen["pull"] = reader.head("team/app", "v3")
        status, _, body = pusher(deployed).call("POST", "/v2/team/app/blobs/uploads/")
        seen["push"] = (status, body[:200])

    report = collect_garbage(plan, Secrets(), connect=lambda: open_registry_transport(
        plan, Secrets(), policy), while_read_only=probe_the_window)
    assert report.ok, report.lines()
    assert report.freed is not None and report.freed >= 2 * LAYER, report.lines()
    assert seen["pull"] == kept
    assert seen["push"][0] == 405, seen["push"]  # type: ignore[index]

    assert push.head("team/app", "v3") == kept
    assert push.head("team/other", "1.0") == other.digest
    assert push.head("team/multi", "1.0") == multi.digest
    for child in (amd, arm):  # each platform of the index, and its blobs
        assert push.head("team/multi", child.digest) == child.digest
    _, _, manifest = push.call("GET", f"/v2/team/multi/manifests/{amd.digest}",
                               extra={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    layer = json.loads(manifest)["layers"][0]["digest"]
    assert blob_present(deployed, "team/multi", layer)
    # read-write again: a push goes through
    push.image("team/app", "v4", [os.urandom(1000)], "2026-04-01T00:00:00Z")
    assert push.head("team/app", "v4") is not None


def test_gc_of_a_registry_nothing_was_pushed_to_succeeds(deployed: Private) -> None:
    """Distribution's collector exits 1 when the repositories folder does not exist yet."""
    plan = load_plan(deployed.plan)
    policy = host_key_policy(False, known_hosts=deployed.known_hosts)
    report = collect_garbage(plan, Secrets(), connect=lambda: open_registry_transport(
        plan, Secrets(), policy))
    assert report.ok, report.lines()
    assert report.collector_output.startswith("nothing to collect")


async def test_the_status_step_collects_garbage_after_a_confirmation(
        deployed: Private, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    push = pusher(deployed)
    push.image("team/app", "old", [os.urandom(LAYER)], "2026-01-01T00:00:00Z")
    push.image("team/app", "new", [os.urandom(LAYER)], "2026-02-01T00:00:00Z")
    assert main(["prune", "--plan", str(deployed.plan), "--keep-last", "1", "--yes"]) == 0
    text = await run_status_action(
        deployed, tmp_path / "data", monkeypatch, "#gc",
        lambda shown: "read-write again" in shown or "READ-ONLY" in shown)
    assert "read-write again" in text and "freed" in text, text
    assert push.head("team/app", "new") is not None
