"""End to end through the TUI on the lab: generate certificates, deploy as the sudo user
(answering the unknown host-key modal), onboard a docker, a containerd (sudo password) and a
plain OS-store node, verify with real pulls, and see the status panel report it healthy.

``test_wizard_from_empty_plan`` starts from nothing: every value is typed into the screens as a
user would, the status panel must list the image verify pushed, and a re-run of onboarding from
the Welcome screen after one node was added must touch only that node."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, ProgressBar, RadioButton, Static

from app.cli import main
from app.plan import NodeSettings, Secrets, load_plan, save_plan
from app.registry_api import base_url, ping
from screens.app import RegwizApp
from screens.cert_request import CertRequestScreen
from screens.cert_review import CertReviewScreen
from screens.deploy import DeployScreen
from screens.host_key_review import HostKeyReviewModal
from screens.host_key_unknown import HostKeyUnknownModal
from screens.mirrors import MirrorsScreen
from screens.nodes import NodesScreen
from screens.onboarding import OnboardingScreen
from screens.registry_host import RegistryHostScreen
from screens.status import StatusScreen
from screens.verify import VerifyScreen
from screens.welcome import WelcomeScreen
from screens.widgets.node_rows import NodeRows
from screens.widgets.step_table import StepTable
from tests.lab.lab import Lab, LabHost
from tests.lab.plans import core_plan_text, node_plan
from tests.lab.trust import reset_node_trust
from tests.polling import wait_until_async

PORT = 8993
CONTAINER = "tui-lab-registry"
CERTS_DIR = "/etc/docker/tui-lab-certs"
DATA_DIR = "/registry-image/tui-lab"
NODES = ("docker", "containerd", "plain")
JOB_TIMEOUT_S = 300.0  # a hung job fails the test instead of hanging CI


def write_plan(lab: Lab, path: Path) -> Path:
    path.write_text(core_plan_text(
        lab, NODES, certificate={"common_name": "registry.tui-lab.internal"},
        registry={"sudo": True, "port": PORT, "container_name": CONTAINER, "data_dir": DATA_DIR,
                  "certs_dir": CERTS_DIR, "delete_enabled": True}))
    return path


def known_hosts_but_the_registry(lab: Lab, directory: Path) -> Path:
    """A copy of the lab's known_hosts without the registry host's key."""
    known_hosts = directory / "known_hosts"
    known_hosts.write_text("".join(
        f"{line}\n" for line in lab.known_hosts.read_text().splitlines()
        if not line.split(" ", 1)[0].strip("[").startswith(lab["registry"].ip)))
    return known_hosts


@pytest.fixture
def lab_plan(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    registry = f"{lab['registry'].ip}:{PORT}"
    reset_node_trust(lab, registry)
    # Every host key is known except the registry host's: the TUI must ask about that one.
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(known_hosts_but_the_registry(lab, tmp_path)))
    plan = write_plan(lab, tmp_path / "plan.toml")
    try:
        yield plan
    finally:
        main(["uninstall", "--plan", str(plan), "--known-hosts", str(lab.known_hosts),
              "--purge", "--yes"])
        reset_node_trust(lab, registry)


async def run_job(app: RegwizApp, pilot: Pilot[Any], button: str,
                  host_keys: list[str] | None = None) -> None:
    """Press ``button`` and poll until every worker ended, accepting host-key questions (one
    host's, or the nodes' new keys on the review screen)."""

    async def accept_host_key_and_pause() -> None:
        screen = app.screen
        if isinstance(screen, HostKeyUnknownModal):
            if host_keys is not None:
                host_keys.append(screen.host)
            await pilot.click("#accept")
        elif isinstance(screen, HostKeyReviewModal):
            if host_keys is not None:
                host_keys.extend(scan.label for scan in screen.scans)
            await pilot.click("#accept-all")
        await pilot.pause(0.1)

    await click(pilot, button)
    await wait_until_async(lambda: workers_finished(app), accept_host_key_and_pause,
                           f"the job of {button}", JOB_TIMEOUT_S)


def workers_finished(app: RegwizApp) -> bool:
    return all(worker.is_finished for worker in app.workers)


async def click(pilot: Pilot[Any], selector: str) -> None:
    """Click a widget of the current screen (or modal) as a user would, scrolling to it first."""
    pilot.app.screen.query_one(selector).scroll_visible(animate=False, immediate=True)
    await pilot.pause()
    assert await pilot.click(selector), f"the click on {selector} hit another widget"
    await pilot.pause()


async def type_into(pilot: Pilot[Any], selector: str, text: str) -> None:
    """Click an input, erase what it holds and type ``text`` key by key."""
    await click(pilot, selector)
    field = pilot.app.screen.query_one(selector, Input)
    assert field.has_focus, selector
    await pilot.press("home", "ctrl+k", *text)
    assert field.value == text, (selector, field.value)


def cells(app: RegwizApp, table_id: str, column: str) -> dict[str, str]:
    found = app.screen.query_one(table_id)
    if isinstance(found, NodeRows):
        return {host: found.cell(host, column) for host in found.hosts}
    assert isinstance(found, DataTable)
    return {str(key.value): str(found.get_cell(key, column)) for key in found.rows}


async def next_screen(pilot: Pilot[Any], expected: type[Screen[Any]]) -> None:
    await pilot.press("ctrl+n")
    await pilot.pause()
    assert isinstance(pilot.app.screen, expected), pilot.app.screen


async def deploy_accepting_the_registry_key(app: RegwizApp, pilot: Pilot[Any],
                                            registry_ip: str) -> None:
    """On to Deploy (past Mirrors: none) and run it: the one unknown host key (the registry's)
    is shown and accepted, and every step ends changed or unchanged."""
    await next_screen(pilot, MirrorsScreen)
    await next_screen(pilot, DeployScreen)
    asked: list[str] = []
    await run_job(app, pilot, "#deploy", asked)
    assert asked == [registry_ip]
    table = app.screen.query_one(StepTable)
    states = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
    assert states and all("changed" in s or "unchanged" in s for s in states), states


async def verify_states(app: RegwizApp, pilot: Pilot[Any]) -> dict[str, str]:
    """On to Verify and run it: the push/pull must pass; returns each node's state."""
    await next_screen(pilot, VerifyScreen)
    await run_job(app, pilot, "#verify")
    assert "passed" in str(app.screen.query_one("#push-pull", Static).render())
    return cells(app, "#verify-table", "state")


async def refreshed_status_panel(app: RegwizApp, pilot: Pilot[Any]) -> str:
    """On to Status, refresh it and return the panel's text."""
    await next_screen(pilot, StatusScreen)
    await run_job(app, pilot, "#refresh")
    return str(app.screen.query_one("#status-text", Static).render())


async def test_wizard_from_certificates_to_status(lab: Lab, lab_plan: Path) -> None:
    app = RegwizApp(lab_plan, data_dir=lab_plan.parent / "data",
                    secrets=Secrets(sudo_password="rwops-password"), start="review")
    app.open_plan(lab_plan)
    node_ips = {lab[name].ip for name in NODES}
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, CertReviewScreen)
        await run_job(app, pilot, "#generate")
        assert "created" in str(app.screen.query_one("#cert-result", Static).render())
        await next_screen(pilot, RegistryHostScreen)
        await deploy_accepting_the_registry_key(app, pilot, lab["registry"].ip)

        await next_screen(pilot, NodesScreen)
        await next_screen(pilot, OnboardingScreen)
        await run_job(app, pilot, "#onboard-all")
        states = cells(app, "#onboard-table", "state")
        assert set(states) == node_ips
        assert set(states.values()) == {"changed"}, cells(app, "#onboard-table", "detail")

        verified = await verify_states(app, pilot)
        assert set(verified.values()) == {"passed"}, cells(app, "#verify-table", "outcome")

        panel = await refreshed_status_panel(app, pilot)
        assert "UP" in panel and "TLS ok" in panel and "running" in panel
        assert set(cells(app, "#trust-table", "trust").values()) == {"match"}
        assert str(app.screen.query_one("#status-state", Static).render()).startswith("healthy")


async def test_onboarding_thirty_nodes_live(lab: Lab, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """30 sshd-only nodes (runtime "docker": only a ca.crt to place) in parallel: every row
    ends "changed", then "unchanged" on a second run. Prints the wall time of each run."""
    nodes = lab.sshd_nodes(30)
    registry = f"{lab['registry'].ip}:{PORT + 1}"
    for host in nodes:
        host.exec(["rm", "-rf", f"/etc/docker/certs.d/{registry}"])
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(lab.known_hosts))
    plan = node_plan(tmp_path, lab, nodes, port=PORT + 1)
    plan_path = tmp_path / "plan.toml"
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


E2E_PORT = 8452
E2E_CONTAINER = "tui-e2e-registry"
E2E_DATA_DIR = "/registry-image/tui-e2e"
E2E_CERTS_DIR = "/etc/docker/tui-e2e-certs"


def trust_dirs(registry: str) -> tuple[str, ...]:
    return (f"/etc/docker/certs.d/{registry}", f"/etc/containerd/certs.d/{registry}")


def remove_trust(hosts: list[LabHost], registry: str) -> None:
    for host in hosts:
        host.exec(["rm", "-rf", *trust_dirs(registry)], check=False)


def trust_files(host: LabHost, registry: str) -> dict[str, tuple[int, int, bytes]]:
    """(inode, mtime_ns, content) of every file onboarding placed for ``registry`` on ``host``."""
    found: dict[str, tuple[int, int, bytes]] = {}
    for directory in trust_dirs(registry):
        for path in sorted(host.host_path(directory).rglob("*")):
            if path.is_file():
                stat = path.stat()
                found[str(path)] = (stat.st_ino, stat.st_mtime_ns, path.read_bytes())
    return found


def spare_sshd_node(lab: Lab) -> LabHost:
    """An sshd-only lab node (shared with the 30-node test, which uses another registry port)."""
    return lab.sshd_nodes(1)[0]


@pytest.fixture
def empty_plan(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plan path that does not exist yet; every lab host key is known except the registry's.
    Afterwards the registry container and its data are removed, and the nodes' CA files."""
    registry = f"{lab['registry'].ip}:{E2E_PORT}"
    spare = spare_sshd_node(lab)  # started first, so its host key is in known_hosts below
    touched = [lab["docker"], lab["containerd"], spare]
    remove_trust(touched, registry)
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(known_hosts_but_the_registry(lab, tmp_path)))
    plan = tmp_path / "new" / "plan.toml"
    try:
        yield plan
    finally:
        if plan.is_file():
            main(["uninstall", "--plan", str(plan), "--known-hosts", str(lab.known_hosts),
                  "--purge", "--yes"])
        lab["registry"].exec(["rm", "-rf", E2E_DATA_DIR, E2E_CERTS_DIR], check=False)
        remove_trust(touched, registry)


async def fill_certificate_request(pilot: Pilot[Any], lab: Lab) -> None:
    assert isinstance(pilot.app.screen, CertRequestScreen)
    for selector, text in (("#common-name", "registry.e2e.internal"),
                           ("#address", lab["registry"].ip), ("#country", "KR"),
                           ("#organization", "Example Corp"),
                           ("#email", "ops@example.com")):
        await type_into(pilot, selector, text)


async def fill_registry_host(pilot: Pilot[Any], lab: Lab) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, RegistryHostScreen)
    await type_into(pilot, "#host", lab["registry"].ip)
    await type_into(pilot, "#ssh-user", "rwdeploy")
    key_button = next(b for b in screen.query(RadioButton) if b.name == "key")
    key_button.scroll_visible(animate=False, immediate=True)
    await pilot.pause()
    await pilot.click(key_button)
    await pilot.pause()
    assert screen.auth_method() == "key"
    for selector, text in (("#identity-file", str(lab.key_path)), ("#port", str(E2E_PORT)),
                           ("#container-name", E2E_CONTAINER), ("#data-dir", E2E_DATA_DIR),
                           ("#certs-dir", E2E_CERTS_DIR)):
        await type_into(pilot, selector, text)
    assert screen.problems() == []


async def add_nodes_from_file(pilot: Pilot[Any], lab: Lab, nodes_file: Path) -> None:
    """Node defaults (key file) in their modal, then the nodes file through Import file."""
    app = pilot.app
    assert isinstance(app, RegwizApp) and isinstance(app.screen, NodesScreen)
    await click(pilot, "#edit-defaults")
    await type_into(pilot, "#default-user", "rwdeploy")
    await type_into(pilot, "#default-identity", str(lab.key_path))
    await click(pilot, "#save")
    assert isinstance(app.screen, NodesScreen), "the node defaults were refused"
    nodes_file.write_text(f"# lab nodes\nroot@{lab['docker'].ip}\n"
                          f"{lab['containerd'].ssh_user}@{lab['containerd'].ip}\n")
    await click(pilot, "#import-file")
    await type_into(pilot, "#prompt", str(nodes_file))
    await click(pilot, "#ok")
    await wait_until_async(lambda: workers_finished(app), lambda: pilot.pause(0.1),
                           "the import", JOB_TIMEOUT_S)
    assert isinstance(app.screen, NodesScreen), "the import showed an error"
    assert app.screen.query_one("#nodes-table", DataTable).row_count == 2
    await type_into(pilot, "#nodes-sudo-password", lab["containerd"].password or "")


async def test_wizard_from_empty_plan(lab: Lab, empty_plan: Path) -> None:
    """From a plan file that does not exist to a verified registry, every value typed in."""
    registry_ip = lab["registry"].ip
    reference = f"{registry_ip}:{E2E_PORT}"
    node_ips = {lab["docker"].ip, lab["containerd"].ip}
    data_dir = empty_plan.parent.parent / "data"
    app = RegwizApp(empty_plan, data_dir=data_dir, secrets=Secrets(), start="welcome")
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        assert app.plan is None and not empty_plan.exists()
        await click(pilot, "#new-plan")
        await fill_certificate_request(pilot, lab)
        await next_screen(pilot, CertReviewScreen)
        await run_job(app, pilot, "#generate")
        assert "created" in str(app.screen.query_one("#cert-result", Static).render())
        await next_screen(pilot, RegistryHostScreen)
        await fill_registry_host(pilot, lab)
        await deploy_accepting_the_registry_key(app, pilot, registry_ip)

        await next_screen(pilot, NodesScreen)
        await add_nodes_from_file(pilot, lab, empty_plan.parent / "nodes.txt")
        await next_screen(pilot, OnboardingScreen)
        await run_job(app, pilot, "#onboard-all")
        assert cells(app, "#onboard-table", "state") == dict.fromkeys(node_ips, "changed"), \
            cells(app, "#onboard-table", "detail")

        assert await verify_states(app, pilot) == dict.fromkeys(node_ips, "passed"), \
            cells(app, "#verify-table", "outcome")

        panel = await refreshed_status_panel(app, pilot)
        assert "UP" in panel and "TLS ok" in panel, panel
        assert "regwiz/selftest" in panel, panel  # the real catalog, with what verify pushed

    # What was typed reached the plan, and the registry answers TLS checked against the CA alone.
    plan = load_plan(empty_plan)
    assert (plan.certificate.common_name, plan.certificate.country,
            plan.certificate.organization, plan.certificate.email) == (
        "registry.e2e.internal", "KR", "Example Corp", "ops@example.com")
    assert plan.registry_reference == reference
    assert (plan.registry.host, plan.registry.ssh_user, plan.registry.identity_file) == (
        registry_ip, "rwdeploy", str(lab.key_path))
    answer = ping(base_url(registry_ip, E2E_PORT), plan.cert_dir / "ca.crt")
    assert answer.is_up, (answer.error, answer.hint)
    assert "password" not in empty_plan.read_text()  # the typed sudo password stays in memory

    await rerun_onboarding_with_one_new_node(lab, empty_plan, data_dir)


async def rerun_onboarding_with_one_new_node(lab: Lab, plan_path: Path, data_dir: Path) -> None:
    """A node appended to the plan file; Welcome -> Re-run node onboarding touches only it."""
    registry = f"{lab['registry'].ip}:{E2E_PORT}"
    earlier = [lab["docker"], lab["containerd"]]
    before = {host.name: trust_files(host, registry) for host in earlier}
    assert all(before.values()), before
    new_node = spare_sshd_node(lab)
    plan = load_plan(plan_path)
    plan.nodes.append(NodeSettings(host=new_node.ip, ssh_user="rwdeploy", runtime="docker"))
    save_plan(plan, plan_path)

    app = RegwizApp(plan_path, data_dir=data_dir,
                    secrets=Secrets(sudo_password=lab["containerd"].password), start="welcome")
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        assert app.plan is not None and len(app.plan.nodes) == 3  # opened at start
        await click(pilot, "#goto-onboarding")
        assert isinstance(app.screen, OnboardingScreen)
        await run_job(app, pilot, "#onboard-all")
        states = cells(app, "#onboard-table", "state")
        details = cells(app, "#onboard-table", "detail")
        assert states == {new_node.ip: "changed", lab["docker"].ip: "unchanged",
                          lab["containerd"].ip: "unchanged"}, details
    assert {host.name: trust_files(host, registry) for host in earlier} == before
    ca = (load_plan(plan_path).cert_dir / "ca.crt").read_bytes()
    placed = new_node.host_path(f"/etc/docker/certs.d/{registry}/ca.crt")
    assert placed.read_bytes() == ca


async def test_a_missing_sudo_password_is_asked_for_then_the_node_is_onboarded(
    lab: Lab, lab_plan: Path
) -> None:
    """No sudo password given: the containerd node (its user's sudo asks for one) fails, a modal
    naming that host asks for it, and the node is onboarded again with it."""
    from app.certs import ensure_certificates
    from screens.secret_prompt import SecretPromptModal

    ensure_certificates(load_plan(lab_plan))
    app = RegwizApp(lab_plan, data_dir=lab_plan.parent / "data", secrets=Secrets(),
                    start="onboarding")
    app.open_plan(lab_plan)
    containerd = lab["containerd"]
    async with app.run_test(size=(120, 40)) as pilot:
        await click(pilot, "#onboard-all")

        async def modal_or_pause() -> None:
            await pilot.pause(0.1)

        await wait_until_async(lambda: isinstance(app.screen, SecretPromptModal),
                               modal_or_pause, "the sudo password question", JOB_TIMEOUT_S)
        modal = app.screen
        assert isinstance(modal, SecretPromptModal)
        assert modal.host == containerd.ip and modal.what == "sudo password"
        rows = app.screen_stack[-2].query_one("#onboard-table", NodeRows)
        assert rows.cell(containerd.ip, "state") == "failed"
        await type_into(pilot, "#secret", containerd.password or "")
        await pilot.press("enter")
        await pilot.pause()
        await wait_until_async(lambda: workers_finished(app)
                               and cells(app, "#onboard-table", "state")[containerd.ip]
                               == "changed", modal_or_pause, "the node onboarded again",
                               JOB_TIMEOUT_S)
        assert app.secrets.sudo_password_for(containerd.ip) == containerd.password
        assert app.secrets.sudo_password is None  # asked for that host only
        states = cells(app, "#onboard-table", "state")
        assert set(states.values()) == {"changed"}, cells(app, "#onboard-table", "detail")
