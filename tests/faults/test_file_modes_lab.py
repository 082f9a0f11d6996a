"""Issue 12 item 1: file modes through symlinks, on the lab's real containerd node.

A node whose /etc/containerd/config.toml is a symlink (as configuration-management tools often
make it) to a 0600 file: onboarding enables config_path and restarts containerd. Before the
fix the link's 0777 (``stat -c %a`` without ``-L``) was applied to the regular file that
replaced the link: a world-writable containerd config. Now the link stays a link, its target
keeps its owner and 0600, and containerd really reads the new config.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import onboard
from app.plan import Plan, Secrets
from tests.faults.conftest import policy_for, private_known_hosts
from tests.lab.lab import CONTAINERD_CONFIG_BASE, Lab, LabHost
from tests.lab.plans import node_plan
from tests.lab.trust import reset_node_trust

REAL_CONFIG = "/etc/containerd/managed/config.toml"
LINK = "/etc/containerd/config.toml"
LINK_TARGET = "managed/config.toml"
PORT = 31741


@pytest.fixture
def linked_config(lab: Lab) -> Iterator[LabHost]:
    """The bare node's config.toml as a symlink to a 0600 file owned by uid 1 (daemon)."""
    bare = lab["bare"]
    real, link = bare.host_path(REAL_CONFIG), bare.host_path(LINK)
    real.parent.mkdir(exist_ok=True)
    real.write_text(CONTAINERD_CONFIG_BASE)
    os.chown(real, 1, 1)
    real.chmod(0o600)
    link.unlink()
    # relative, so it resolves the same inside the host and from the root namespace
    link.symlink_to(LINK_TARGET)
    yield bare
    if link.is_symlink() or link.exists():
        link.unlink()
    link.write_text(CONTAINERD_CONFIG_BASE)  # the lab's own, as a regular file again
    for path in sorted(real.parent.iterdir()):
        path.unlink()
    real.parent.rmdir()
    bare.stop_daemon("containerd")
    bare.start_daemon("containerd")


def _plan(lab: Lab, tmp: Path, node: LabHost) -> Plan:
    return node_plan(tmp, lab, [node], port=PORT, runtime="containerd")


def test_onboarding_writes_through_a_symlinked_config_keeping_its_mode(
    lab: Lab, linked_config: LabHost, tmp_path: Path
) -> None:
    bare = linked_config
    plan = _plan(lab, tmp_path, bare)
    try:
        report = onboard.onboard_nodes(plan, Secrets(),
                                       host_key_policy=policy_for(private_known_hosts(lab,
                                                                                      tmp_path)),
                                       timeout=120)
        (result,) = report.results
        assert result.status.value == "changed", (result.message, result.hint)
        assert result.restarted == ["containerd"]
        link, real = bare.host_path(LINK), bare.host_path(REAL_CONFIG)
        assert link.is_symlink(), "the symlink was replaced by a regular file"
        assert os.readlink(link) == LINK_TARGET
        info = real.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)
        assert (info.st_uid, info.st_gid) == (1, 1)
        assert 'config_path = "/etc/containerd/certs.d"' in real.read_text()
        dump = bare.exec(["containerd", "config", "dump"]).stdout.decode()
        assert "/etc/containerd/certs.d" in dump  # the restarted containerd reads it
        # the backup of the old config is private, and nothing is writable by others
        for path in bare.host_path("/etc/containerd").rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert not path.stat().st_mode & 0o022, path
    finally:
        reset_node_trust(lab, plan.registry_reference)
