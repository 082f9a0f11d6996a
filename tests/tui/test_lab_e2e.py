"""End to end through the TUI on the lab: generate certificates, deploy as the sudo user
(answering the unknown host-key modal), onboard a docker, a containerd (sudo password) and a
plain OS-store node, verify with real pulls, and see the status panel report it healthy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, ProgressBar, Static

from app.certs import ensure_certificates
from app.cli import main
from app.plan import NodeSettings, Secrets, new_plan, save_plan
from app.tui import RegwizApp
from screens.cert_review import CertReviewScreen
from screens.deploy import DeployScreen
from screens.host_key_unknown import HostKeyUnknownModal
from screens.onboarding import OnboardingScreen
from screens.status import StatusScreen
from screens.verify import VerifyScreen
from screens.widgets.node_rows import NodeRows
from screens.widgets.step_table import StepTable
from tests.lab.lab import Lab

PORT = 8993
CONTAINER = "tui-lab-registry"
CERTS_DIR = "/etc/docker/tui-lab-certs"
DATA_DIR = "/registry-image/tui-lab"
NODES = ("docker", "containerd", "plain")
MAX_POLLS = 3000  # x 0.1 s: a hung job fails the test instead of hanging CI


def write_plan(lab: Lab, path: Path) -> Path:
    registry, key = lab["registry"], lab.key_path
    path.write_text(f"""\
[certificate]
common_name = "registry.tui-lab.internal"
subject_alt_names = ["{registry.ip}"]

[registry]
host = "{registry.ip}"
ssh_user = "{registry.ssh_user}"
identity_file = "{key}"
sudo = true
address = "{registry.ip}"
port = {PORT}
container_name = "{CONTAINER}"
data_dir = "{DATA_DIR}"
certs_dir = "{CERTS_DIR}"
delete_enabled = true

[nodes.defaults]
ssh_user = "rwdeploy"
identity_file = "{key}"

[[nodes.hosts]]
host = "{lab['docker'].ip}"
ssh_user = "root"

[[nodes.hosts]]
host = "{lab['containerd'].ip}"
ssh_user = "rwops"

[[nodes.hosts]]
host = "{lab['plain'].ip}"
os_trust_store = true
""")
    return path


def reset_nodes(lab: Lab, registry: str) -> None:
    for name in ("docker", "containerd"):
        lab[name].exec(["rm", "-rf", f"/etc/docker/certs.d/{registry}",
                        f"/etc/containerd/certs.d/{registry}"], check=False)
    anchor = f"/usr/local/share/ca-certificates/regwiz-{registry.replace(':', '_')}.crt"
    lab["plain"].exec(["rm", "-f", anchor])
    lab["plain"].exec(["update-ca-certificates", "--fresh"], check=False)


@pytest.fixture
def lab_plan(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    registry = f"{lab['registry'].ip}:{PORT}"
    reset_nodes(lab, registry)
    # Every host key is known except the registry host's: the TUI must ask about that one.
    known_hosts = tmp_path / "known_hosts"
    lines = lab.known_hosts.read_text().splitlines()
    known_hosts.write_text("".join(
        f"{line}\n" for line in lines if not line.split(" ", 1)[0].strip("[").startswith(
            lab["registry"].ip)))
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(known_hosts))
    plan = write_plan(lab, tmp_path / "plan.toml")
    try:
        yield plan
    finally:
        main(["uninstall", "--plan", str(plan), "--known-hosts", str(lab.known_hosts),
              "--purge", "--yes"])
        reset_nodes(lab, registry)


async def run_job(app: RegwizApp, pilot: Pilot[Any], button: str,
                  host_keys: list[str] | None = None) -> None:
    """Press ``button`` and poll until every worker ended, accepting host-key questions."""
    app.screen.query_one(button, Button).press()
    await pilot.pause()
    for _ in range(MAX_POLLS):
        screen = app.screen
        if isinstance(screen, HostKeyUnknownModal):
            if host_keys is not None:
                host_keys.append(screen.host)
            await pilot.click("#accept")
        if not any(not worker.is_finished for worker in app.workers):
            await pilot.pause()
            return
        await pilot.pause(0.1)
    raise AssertionError("the job did not finish")


def cells(app: RegwizApp, table_id: str, column: str) -> dict[str, str]:
    found = app.screen.query_one(table_id)
    if isinstance(found, NodeRows):
        return {host: found.cell(host, column) for host in found.hosts}
    assert isinstance(found, DataTable)
    return {str(key.value): str(found.get_cell(key, column)) for key in found.rows}


async def test_wizard_from_certificates_to_status(lab: Lab, lab_plan: Path) -> None:
    app = RegwizApp(lab_plan, data_dir=lab_plan.parent / "data",
                    secrets=Secrets(sudo_password="rwops-password"), start="review")
    app.open_plan(lab_plan)
    node_ips = {lab[name].ip for name in NODES}
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, CertReviewScreen)
        await run_job(app, pilot, "#generate")
        assert "created" in str(app.screen.query_one("#cert-result", Static).render())
        await pilot.press("ctrl+n")  # -> registry host
        await pilot.pause()
        await pilot.press("ctrl+n")  # -> deploy
        await pilot.pause()
        assert isinstance(app.screen, DeployScreen)
        asked: list[str] = []
        await run_job(app, pilot, "#deploy", asked)
        assert asked == [lab["registry"].ip]  # the one unknown key was shown and accepted
        table = app.screen.query_one(StepTable)
        states = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert states and all("changed" in s or "unchanged" in s for s in states), states

        await pilot.press("ctrl+n")  # -> nodes
        await pilot.pause()
        await pilot.press("ctrl+n")  # -> onboarding
        await pilot.pause()
        assert isinstance(app.screen, OnboardingScreen)
        await run_job(app, pilot, "#onboard-all")
        states = cells(app, "#onboard-table", "state")
        assert set(states) == node_ips
        assert set(states.values()) == {"changed"}, cells(app, "#onboard-table", "detail")

        await pilot.press("ctrl+n")  # -> verify
        await pilot.pause()
        assert isinstance(app.screen, VerifyScreen)
        await run_job(app, pilot, "#verify")
        assert "passed" in str(app.screen.query_one("#push-pull", Static).render())
        assert set(cells(app, "#verify-table", "state").values()) == {"passed"}, \
            cells(app, "#verify-table", "outcome")

        await pilot.press("ctrl+n")  # -> status
        await pilot.pause()
        assert isinstance(app.screen, StatusScreen)
        await run_job(app, pilot, "#refresh")
        panel = str(app.screen.query_one("#status-text", Static).render())
        assert "UP" in panel and "TLS ok" in panel and "running" in panel
        assert set(cells(app, "#trust-table", "trust").values()) == {"match"}
        assert str(app.screen.query_one("#status-state", Static).render()).startswith("healthy")


async def test_onboarding_thirty_nodes_live(lab: Lab, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """30 sshd-only nodes (runtime "docker": only a ca.crt to place) in parallel: every row
    ends "changed", then "unchanged" on a second run. Prints the wall time of each run."""
    existing = [h for name, h in lab.hosts.items() if name.startswith("node")]
    nodes = existing[:30] if len(existing) >= 30 else existing + lab.add_sshd_nodes(
        30 - len(existing))
    registry = f"{lab['registry'].ip}:{PORT + 1}"
    for host in nodes:
        host.exec(["rm", "-rf", f"/etc/docker/certs.d/{registry}"])
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(lab.known_hosts))
    plan_path = tmp_path / "plan.toml"
    plan = new_plan(plan_path)
    plan.registry.address, plan.registry.port = lab["registry"].ip, PORT + 1
    plan.node_defaults.ssh_user = "rwdeploy"
    plan.node_defaults.identity_file = str(lab.key_path)
    plan.node_defaults.runtime = "docker"
    plan.nodes = [NodeSettings(host=host.ip) for host in nodes]
    save_plan(plan, plan_path)
    ensure_certificates(plan)
    app = RegwizApp(plan_path, data_dir=tmp_path / "data", secrets=Secrets(),
                    start="onboarding")
    app.open_plan(plan_path)
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            seconds = []
            for expected in ("changed", "unchanged"):
                started = time.monotonic()
                await run_job(app, pilot, "#onboard-all")
                seconds.append(time.monotonic() - started)
                states = cells(app, "#onboard-table", "state")
                assert len(states) == 30
                assert set(states.values()) == {expected}, cells(app, "#onboard-table", "detail")
                assert app.screen.query_one(ProgressBar).percentage == 1.0
        with capsys.disabled():
            print(f"\nTUI onboarding of 30 nodes: {seconds[0]:.1f} s, "
                  f"second (unchanged) run {seconds[1]:.1f} s")
        ca = (plan.cert_dir / "ca.crt").read_bytes()
        assert all(host.host_path(f"/etc/docker/certs.d/{registry}/ca.crt").read_bytes() == ca
                   for host in nodes)
    finally:
        for host in nodes:
            host.exec(["rm", "-rf", f"/etc/docker/certs.d/{registry}"], check=False)
