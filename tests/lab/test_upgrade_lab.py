"""Registry upgrades (issue 15, item 5) on a registry regwiz deployed (front, accounts):

- an upgrade to an image that cannot start is rolled back: exit 1, the old container runs under
  its name with every image (same digests), and the plan still names the old image;
- an upgrade to a working image (the lab's registry image under a new tag, standing in for a newer
  release) is deployed with the same data and written into the plan; status shows the image the
  container really runs;
- the image is pinned (registry.image_digest; the lab's images are built locally, so by image
  ID): registry:2 re-tagged to another image on the host does not change what a redeploy runs
  (the deploy says the tag moved), a failed upgrade keeps the pin, and upgrade moves it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.plan import load_plan
from tests.image_helpers import Pusher, basic_header
from tests.lab.lab import BUSYBOX_IMAGE, REGISTRY_IMAGE, Lab
from tests.lab.test_private_lab import Private, private_registry

pytestmark = pytest.mark.lab
BROKEN = "regwiz-lab/registry-broken:upgrade"
NEWER = "regwiz-lab/registry:upgrade"


@pytest.fixture
def deployed(lab: Lab, tmp_path: Path) -> Iterator[Private]:
    host = lab["registry"]
    dockerfile = f'FROM {BUSYBOX_IMAGE}\nENTRYPOINT ["sh", "-c", "exit 3"]\n'.encode()
    host.exec(["docker", "build", "-q", "-t", BROKEN, "-"], input=dockerfile, timeout=120)
    host.exec(["docker", "tag", REGISTRY_IMAGE, NEWER])
    try:
        with private_registry(lab, tmp_path, "rwp-upgrade-lab") as made:
            assert made.cli("deploy") == 0
            yield made
    finally:
        host.exec(["docker", "rmi", "-f", BROKEN, NEWER], check=False)


def test_upgrade_rolls_back_a_broken_image_and_takes_a_working_one(
        deployed: Private, capsys: pytest.CaptureFixture[str]) -> None:
    push = Pusher(f"https://{deployed.address}", deployed.certs / "ca.crt",
                  basic_header("operator", deployed.password("operator")))
    held = {tag: push.image("team/app", tag, [os.urandom(5000)], "2026-01-01T00:00:00Z").digest
            for tag in ("1.0", "2.0")}
    container_before = _container_id(deployed)

    capsys.readouterr()
    assert deployed.cli("upgrade", "--image", BROKEN) == 1
    out = capsys.readouterr().out
    assert "not upgraded" in out and "rolled back to the previous container" in out, out
    assert load_plan(deployed.plan).registry.image == REGISTRY_IMAGE
    assert _container_id(deployed) == container_before  # the very same container, running
    assert {tag: push.head("team/app", tag) for tag in held} == held

    assert deployed.cli("upgrade", "--image", NEWER) == 0
    assert load_plan(deployed.plan).registry.image == NEWER
    assert {tag: push.head("team/app", tag) for tag in held} == held
    capsys.readouterr()
    assert deployed.cli("status", "--no-nodes") == 0
    status = capsys.readouterr().out
    assert f"image {NEWER} (sha256:" in status, status


def _container_id(private: Private) -> str:
    answer = private.host.exec(["docker", "inspect", "--format", "{{.Id}} {{.State.Running}}",
                                private.name])
    container, running = answer.stdout.decode().split()
    assert running == "true"
    return container


MOVED = "regwiz-lab/registry:moved"  # a working registry, but another image than registry:2


@pytest.fixture
def retaggable(deployed: Private) -> Iterator[tuple[Private, str]]:
    """The deployed registry, and the registry host's original registry:2 image ID; registry:2
    is put back on that image afterwards, whatever the test did to the tag."""
    host = deployed.host
    original = _image_id(deployed, REGISTRY_IMAGE)
    dockerfile = f"FROM {REGISTRY_IMAGE}\nLABEL io.regwiz.lab=moved-tag\n".encode()
    host.exec(["docker", "build", "-q", "-t", MOVED, "-"], input=dockerfile, timeout=120)
    try:
        yield deployed, original
    finally:
        host.exec(["docker", "tag", original, REGISTRY_IMAGE], check=False)
        host.exec(["docker", "rmi", "-f", MOVED], check=False)


def test_the_image_is_pinned_and_a_moved_tag_changes_nothing_until_upgrade(
        retaggable: tuple[Private, str], capsys: pytest.CaptureFixture[str]) -> None:
    deployed, original = retaggable
    # The first deploy recorded the image it runs; built locally, it has no repository digest,
    # so the pin is its image ID.
    assert load_plan(deployed.plan).registry.image_digest == original
    assert _running_image(deployed) == original
    moved = _image_id(deployed, MOVED)
    assert moved != original

    deployed.host.exec(["docker", "tag", MOVED, REGISTRY_IMAGE])  # the tag moves on the host
    _set_delete_enabled(deployed)  # a changed setting: the container must be recreated
    capsys.readouterr()
    assert deployed.cli("deploy") == 0
    out = capsys.readouterr().out
    assert f"the tag {REGISTRY_IMAGE} on {deployed.host.ip} moved to {moved[:19]}" in out, out
    assert _running_image(deployed) == original  # recreated on the pinned image, not the tag
    assert load_plan(deployed.plan).registry.image_digest == original
    assert deployed.cli("status", "--no-nodes") == 0
    assert f"{original} (image ID): the container runs it" in capsys.readouterr().out
    assert deployed.cli("status", "--no-nodes", "--json") == 0
    container = json.loads(capsys.readouterr().out)["container"]
    assert (container["pinned_digest"], container["matches_pin"], container["off_pin"]) == (
        original, True, False)

    # A failed upgrade keeps the pin (and the container on it).
    assert deployed.cli("upgrade", "--image", BROKEN) == 1
    assert load_plan(deployed.plan).registry.image_digest == original
    assert _running_image(deployed) == original

    # Upgrading to the plan's own tag takes what it names now, and moves the pin there.
    capsys.readouterr()
    assert deployed.cli("upgrade", "--image", REGISTRY_IMAGE) == 0
    assert f"pinned to {moved}" in capsys.readouterr().out
    plan = load_plan(deployed.plan).registry
    assert (plan.image, plan.image_digest) == (REGISTRY_IMAGE, moved)
    assert _running_image(deployed) == moved


def _set_delete_enabled(private: Private) -> None:
    from app.plan import save_plan

    plan = load_plan(private.plan)
    plan.registry.delete_enabled = not plan.registry.delete_enabled
    save_plan(plan)


def _image_id(private: Private, image: str) -> str:
    answer = private.host.exec(["docker", "image", "inspect", "--format", "{{.Id}}", image])
    return answer.stdout.decode().strip()


def _running_image(private: Private) -> str:
    answer = private.host.exec(["docker", "inspect", "--format", "{{.Image}}", private.name])
    return answer.stdout.decode().strip()
