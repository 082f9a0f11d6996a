"""The wizard's short path for a registry regwiz did not deploy (issue 16), on the lab: Start →
"I already have a registry" → its address, the CA fetched and trusted after its fingerprint was
shown, the robot login file and the image to verify → Nodes → Onboard → Verify (every node pulls
the named image with the robot's login) → Status. Every value is typed in as a user would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Static

from app.plan import Secrets, load_plan
from screens.app import RegwizApp
from screens.confirm import ConfirmModal
from screens.external_registry import ExternalRegistryScreen
from screens.nodes import NodesScreen
from screens.onboarding import OnboardingScreen
from screens.welcome import WelcomeScreen
from tests.lab.external_registry import IMAGE, ExternalRegistry, external_registry
from tests.lab.lab import Lab
from tests.polling import wait_until_async
from tests.tui.test_lab_e2e import (
    JOB_TIMEOUT_S,
    add_nodes_from_file,
    cells,
    click,
    next_screen,
    refreshed_status_panel,
    run_job,
    type_into,
    verify_states,
    workers_finished,
)

PORT = 8592
CONTAINER = "byo-tui-registry"


@pytest.fixture
def registry(lab: Lab) -> Iterator[ExternalRegistry]:
    with external_registry(lab, PORT, CONTAINER) as running:
        yield running


async def test_from_start_to_a_verified_pull_on_a_registry_regwiz_did_not_deploy(
        lab: Lab, registry: ExternalRegistry, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(lab.known_hosts))
    plan_path = tmp_path / "byo" / "plan.toml"
    robot_file = registry.write_robot_file(tmp_path / "robot.json")
    node_ips = {lab["docker"].ip, lab["containerd"].ip}
    app = RegwizApp(plan_path, data_dir=tmp_path / "data", secrets=Secrets(), start="welcome")
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        await click(pilot, "#external-registry")
        assert isinstance(app.screen, ExternalRegistryScreen)
        # the short path: no certificate, registry host or deploy step
        assert [step.name for step in app.steps] == [
            "welcome", "external", "nodes", "onboarding", "verify", "status"]
        for selector, text in (("#address", registry.ip), ("#port", str(PORT)),
                               ("#pull-auth-file", str(robot_file)), ("#verify-image", IMAGE)):
            await type_into(pilot, selector, text)
        assert app.screen.problems()[0].startswith("CA file:")  # Next waits for the CA

        await click(pilot, "#fetch-ca")
        await wait_until_async(lambda: isinstance(app.screen, ConfirmModal),
                               lambda: pilot.pause(0.1), "the trust question", JOB_TIMEOUT_S)
        chain = str(app.screen_stack[-2].query_one("#chain", Static).render())
        assert "root CA: CN=Harbor-like private CA" in chain
        await click(pilot, "#confirm")
        assert isinstance(app.screen, ExternalRegistryScreen) and app.screen.problems() == []

        await next_screen(pilot, NodesScreen)
        await add_nodes_from_file(pilot, lab, tmp_path / "nodes.txt")
        await next_screen(pilot, OnboardingScreen)
        await run_job(app, pilot, "#onboard-all")
        assert cells(app, "#onboard-table", "state") == dict.fromkeys(node_ips, "changed"), \
            cells(app, "#onboard-table", "detail")

        assert await verify_states(app, pilot) == dict.fromkeys(node_ips, "passed"), \
            cells(app, "#verify-table", "outcome")
        push_pull = str(app.screen.query_one("#push-pull", Static).render())
        assert f"{registry.reference}/{IMAGE}" in push_pull

        panel = await refreshed_status_panel(app, pilot)
        assert "TLS ok" in panel and "not deployed by regwiz" in panel, panel
        assert "library/busybox" in panel, panel
        await wait_until_async(lambda: workers_finished(app), lambda: pilot.pause(0.1),
                               "the status refresh", JOB_TIMEOUT_S)

    plan = load_plan(plan_path)
    assert not plan.registry.managed and plan.registry_reference == registry.reference
    assert plan.trusted_ca_path.read_bytes() == registry.pki.ca_pem
    assert "[certificate]" not in plan_path.read_text()
