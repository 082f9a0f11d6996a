"""Day two on a registry regwiz deployed in the lab (issue 15 parts 1 and 2): real sshd,
dockerd, registry behind the nginx front with accounts, delete_enabled = true.

``prune --keep-last 1 --repo app`` deletes exactly the two older tags of three (through the
front, with the operator push account); every remaining tag still resolves to the same digest
for the pull account; the other repository is untouched; a multi-platform OCI index keeps its
children (also one tagged on its own) through a prune of its repository's older tags. Status
shows each repository's tags and size and the data volume, and warns at disk_warn_percent.
"""

from __future__ import annotations

import json

import pytest

from app.cli import main
from tests.image_helpers import Pusher, basic_header
from tests.lab import test_private_lab
from tests.lab.test_private_lab import Private

private_fixture = test_private_lab.private  # the fixture ``private``: a deployed registry

pytestmark = pytest.mark.lab


def prune(private: Private, *args: str) -> int:
    """``regwiz prune`` (it talks to the registry API only: no SSH, no host keys)."""
    return main(["prune", "--plan", str(private.plan), *args])


def pusher(private: Private, account: str) -> Pusher:
    return Pusher(f"https://{private.address}", private.certs / "ca.crt",
                  basic_header(account, private.password(account)))


def test_prune_keeps_the_newest_and_every_kept_image_pulls(
    private_fixture: Private, capsys: pytest.CaptureFixture[str]
) -> None:
    private = private_fixture
    private.write(delete_enabled=True)
    assert private.cli("deploy") == 0, capsys.readouterr()
    capsys.readouterr()
    push, pull = pusher(private, "operator"), pusher(private, "cluster")
    base = b"a shared base layer " * 500
    app = {n: push.image("app", f"v{n}", [base, f"app layer {n} ".encode() * 200],
                         f"2026-0{n}-01T00:00:00Z").digest for n in (1, 2, 3)}
    other = push.image("other", "1", [b"other layer " * 100], "2025-01-01T00:00:00Z").digest
    amd = push.image("multi", "amd64", [b"amd64 layer " * 100], "2026-01-01T00:00:00Z")
    arm = push.image("multi", None, [b"arm64 layer " * 100], "2026-01-02T00:00:00Z",
                     arch="arm64")
    index = push.index("multi", "1.0", [(amd, "amd64"), (arm, "arm64")])
    old = push.image("multi", "old", [b"old layer " * 100], "2025-06-01T00:00:00Z").digest

    # status: per-repository tags and unique size (the shared base counted once), the volume
    assert private.cli("status", "--no-nodes", "--json") in (0, 1)
    report = json.loads(capsys.readouterr().out)
    sizes = {s["name"]: s for s in report["catalog"]["sizes"]}
    assert (sizes["app"]["tag_count"], sizes["multi"]["tag_count"]) == (3, 3)
    assert len(base) < sizes["app"]["unique_bytes"] < 2 * len(base)
    assert sizes["multi"]["unique_bytes"] > amd.blob_bytes + arm.blob_bytes
    # 3 app, 1 other, 3 multi and the arm64 child (amd64 may be read twice: at once by its
    # tag and as the index's child)
    assert report["catalog"]["manifests_fetched"] in (8, 9)
    disk = report["disk"]
    assert disk["volume_bytes"] and disk["volume_free_bytes"] and disk["used_percent"], \
        (disk, report["container"])
    assert disk["too_full"] is (disk["used_percent"] >= 85)
    assert private.cli("status", "--no-nodes", "--json") in (0, 1)
    assert json.loads(capsys.readouterr().out)["catalog"]["manifests_fetched"] == 0  # cached

    # prune app: exactly v1 and v2 go; v3 and the other repository stay with their digests
    assert prune(private, "--keep-last", "1", "--repo", "app", "--yes") == 0
    out = capsys.readouterr().out
    assert "2 tag(s) deleted, 0 failed" in out, out
    assert pull.head("app", "v1") is None and pull.head("app", "v2") is None
    assert pull.head("app", "v3") == app[3]
    assert pull.head("other", "1") == other
    status, _, body = pull.call("GET", "/v2/app/tags/list")
    assert status == 200 and json.loads(body)["tags"] == ["v3"]

    # prune multi: the index is the newest; its child tagged "amd64" stays with it
    assert prune(private, "--keep-last", "1", "--repo", "multi", "--yes") == 0
    out = capsys.readouterr().out
    assert "1 tag(s) deleted" in out and "same manifest as the kept tag 1.0" in out, out
    assert pull.head("multi", "old") is None and old
    assert pull.head("multi", "1.0") == index.digest
    assert pull.head("multi", "amd64") == amd.digest
    for child in (amd.digest, arm.digest):
        assert pull.head("multi", child) == child
        status, _, manifest = pull.call("GET", f"/v2/multi/manifests/{child}", extra={
            "Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 200
        for layer in json.loads(manifest)["layers"]:
            assert pull.call("HEAD", f"/v2/multi/blobs/{layer['digest']}")[0] == 200
    assert pull.head("other", "1") == other

    # the threshold: 1% forces the warning and exit 1
    private.write(delete_enabled=True, disk_warn_percent=1)
    assert private.cli("status", "--no-nodes") == 1
    shown = capsys.readouterr().out
    assert "WARNING: the volume is" in shown and "disk_warn_percent = 1" in shown
    assert "app: v3  [1 tag," in shown

    # a pull account cannot prune: the front refuses it DELETE, nothing goes
    newer = push.image("other", "2", [b"newer other " * 10], "2026-02-01T00:00:00Z").digest
    login = private.plan.parent / "cluster-login.json"  # --credentials-file's format
    login.write_text(json.dumps({"registry": private.address, "username": "cluster",
                                 "password": private.password("cluster")}))
    login.chmod(0o600)
    assert prune(private, "--keep-last", "1", "--repo", "other", "--yes",
                 "--credentials-file", str(login)) == 1
    assert "HTTP 403" in capsys.readouterr().out
    assert pull.head("other", "1") == other and pull.head("other", "2") == newer
