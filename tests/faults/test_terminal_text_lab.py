"""Issue 12 item 7: output from hosts is data, not terminal control (real sshd, sudo, dockerd).

Two hostile hosts: a node whose CA-bundle rebuild (a real command run with sudo over SSH) fails
with stderr holding a window-title OSC and a clear-screen CSI, and a registry image whose
container logs the same and dies, so deploy's error quotes its log. The CLI output keeps the
text around them and none of the control bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.plan import save_plan
from tests.faults.conftest import private_known_hosts
from tests.lab.lab import BUSYBOX_IMAGE, Lab, LabHost, port_for
from tests.lab.plans import node_plan, registry_plan_text

HOSTILE = "before\x1b]0;evil\x07middle\x1b[2Jafter \x9b31mc1\x1bc end"
EVIL_IMAGE = "regwiz-fault/evil-log:1"


def _assert_clean(text: str) -> None:
    assert "before" in text and "middle" in text and "after" in text, text
    for control in ("\x1b", "\x07", "\x9b", "]0;evil"):
        assert control not in text, repr(text)


@pytest.fixture
def hostile_bundle_node(lab: Lab) -> Iterator[LabHost]:
    """An sshd node whose update-ca-certificates (found first on sudo's secure_path, in the
    node's private /usr/local/sbin) prints HOSTILE to stderr and fails."""
    node = lab.sshd_nodes(3)[2]
    fake = node.host_path("/usr/local/sbin/update-ca-certificates")
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{HOSTILE}' >&2\nexit 1\n")
    fake.chmod(0o755)
    yield node
    fake.unlink()


def test_remote_stderr_is_printed_without_control_sequences(
    lab: Lab, hostile_bundle_node: LabHost, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = hostile_bundle_node
    plan = node_plan(tmp_path, lab, [node], port=31745, runtime="none")
    plan.node_defaults.os_trust_store = True
    save_plan(plan)
    known_hosts = private_known_hosts(lab, tmp_path)
    anchor = f"/usr/local/share/ca-certificates/regwiz-{node.ip}_31745.crt"
    try:
        code = main(["onboard", "--plan", str(plan.path), "--known-hosts", str(known_hosts)])
        out = capsys.readouterr()
        assert code == 1
        _assert_clean(out.out + out.err)
    finally:
        node.exec(["rm", "-f", anchor], check=False)


@pytest.fixture
def evil_image(lab: Lab) -> Iterator[LabHost]:
    """An image on the registry host whose container logs HOSTILE and exits."""
    host = lab["registry"]
    script = f"printf '%s\\n' '{HOSTILE}' >&2; exit 3"
    host.exec(["docker", "rm", "-f", "rwfault-evil-build"], check=False)
    host.exec(["docker", "run", "--name", "rwfault-evil-build", BUSYBOX_IMAGE, "sh", "-c",
               "printf '%s' \"$0\" > /evil.sh", script])
    host.exec(["docker", "commit", "--change", 'ENTRYPOINT ["/bin/sh", "/evil.sh"]',
               "--change", "CMD []", "rwfault-evil-build", EVIL_IMAGE])
    host.exec(["docker", "rm", "-f", "rwfault-evil-build"])
    yield host
    host.exec(["docker", "rmi", "-f", EVIL_IMAGE], check=False)


def test_container_log_in_a_deploy_error_is_printed_without_control_sequences(
    lab: Lab, evil_image: LabHost, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    host = evil_image
    name = "rwfault-evil-log"
    port = port_for(name)
    plan = tmp_path / "plan.toml"
    plan.write_text(registry_plan_text(
        host, certificate={"common_name": "registry.evil.internal"}, port=port,
        container_name=name, data_dir=f"/registry-image/{name}",
        certs_dir=f"/etc/docker/{name}-certs", image=EVIL_IMAGE))
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(lab.known_hosts, known_hosts)
    try:
        assert main(["certs", "--plan", str(plan)]) == 0
        capsys.readouterr()
        code = main(["deploy", "--plan", str(plan), "--known-hosts", str(known_hosts),
                     "--health-timeout", "5"])
        out = capsys.readouterr()
        assert code == 1
        assert "container log" in out.out + out.err, out
        _assert_clean(out.out + out.err)
    finally:
        host.exec(["docker", "rm", "-f", name], check=False)
        host.exec(["rm", "-rf", f"/etc/docker/{name}-certs", f"/registry-image/{name}"],
                  check=False)
        host.exec(["rm", "-rf", f"/etc/docker/certs.d/{host.ip}:{port}"], check=False)
