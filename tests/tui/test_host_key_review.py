"""Onboarding several nodes with unknown host keys: one screen decides them all (a real sshd
listening on 127.0.0.1-3, so three node addresses with one key), changed keys are refused
there, a new key type is asked on its own, and a node's time leaves out the user's waits; verify
asks the same way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Checkbox

from app.onboard import NodeResult
from app.plan import NodeSettings, new_plan
from app.transport.keyscan import CHANGED, OTHER_TYPE, UNKNOWN
from screens.app import RegwizApp
from screens.host_key_review import HostKeyReviewModal
from screens.host_key_unknown import HostKeyUnknownModal
from screens.onboarding import OnboardingScreen, result_lines
from screens.verify import VerifyScreen
from screens.widgets.node_rows import NodeRows
from tests.sshd import SshServer, keygen, start_server
from tests.tui.conftest import AppFactory, save_with_certificates, settle, wait_for_modal

HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


@pytest.fixture(scope="module")
def keyhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd (one host key) answering on three loopback addresses."""
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root; run the tests as root")
    server = start_server(tmp_path_factory.mktemp("sshd"),
                          "ListenAddress 127.0.0.2\nListenAddress 127.0.0.3\n")
    yield server
    server.stop()


class FakeClock:
    """Stands still unless the test moves it: node times are then exactly the moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key_line(label: str, public_key: Path) -> str:
    return f"{label} {' '.join(public_key.read_text().split()[:2])}\n"


def label(server: SshServer, host: str) -> str:
    return f"[{host}]:{server.port}"


def onboarding_app(make_app: AppFactory, server: SshServer, tmp_path: Path, hosts: list[str],
                   known: str, monkeypatch: pytest.MonkeyPatch,
                   step: str = "onboarding") -> tuple[RegwizApp, list[str]]:
    """The Onboard (or another) step of a plan with ``hosts`` whose registry is not running,
    known_hosts holding ``known``; returns the app and the list of the questions workers asked
    (the screens' class names)."""
    (tmp_path / "known_hosts").write_text(known)
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    plan = new_plan(tmp_path / "plan.toml")
    plan.registry.host, plan.registry.address, plan.registry.port = "local", "127.0.0.1", 1
    plan.nodes = [NodeSettings(host=host, ssh_user="root", ssh_port=server.port,
                               identity_file=str(server.client_key), runtime="docker",
                               sudo=False) for host in hosts]
    save_with_certificates(plan)
    app = make_app(step, plan=plan.path)
    app.open_plan(tmp_path / "plan.toml")
    asked: list[str] = []
    ask = app.ask_from_thread

    def spy(screen: Any, should_stop: Any = None) -> Any:
        asked.append(type(screen).__name__)
        return ask(screen, should_stop)

    app.ask_from_thread = spy  # type: ignore[method-assign]
    return app, asked


async def start_dry_run(app: RegwizApp, pilot: Any) -> HostKeyReviewModal:
    screen = app.screen
    assert isinstance(screen, OnboardingScreen)
    screen.query_one("#dry-run", Checkbox).value = True
    screen.query_one("#onboard-all", Button).press()
    await wait_for_modal(app, pilot, HostKeyReviewModal)
    assert isinstance(app.screen, HostKeyReviewModal)
    return app.screen


def known_labels(tmp_path: Path) -> list[str]:
    return [line.split()[0] for line in (tmp_path / "known_hosts").read_text().splitlines()]


def results(app: RegwizApp) -> dict[str, NodeResult]:
    report = app.session.onboarding
    assert report is not None
    return {result.host: result for result in report.results}


async def test_several_unknown_hosts_one_screen_and_only_the_marked_are_accepted(
    make_app: AppFactory, keyhost: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, asked = onboarding_app(make_app, keyhost, tmp_path, HOSTS, "", monkeypatch)
    async with app.run_test(size=(100, 32)) as pilot:
        modal = await start_dry_run(app, pilot)
        assert [(s.label, s.status, s.fingerprint) for s in modal.scans] == [
            (label(keyhost, host), UNKNOWN, keyhost.fingerprint()) for host in HOSTS]
        assert keyhost.fingerprint() in modal.query_one(NodeRows).cell("127.0.0.2", "key")
        await pilot.press("space", "down", "down", "space")  # the first and the third
        await pilot.pause()
        assert modal.marked == {"127.0.0.1", "127.0.0.3"}
        await pilot.click("#accept-marked")
        await settle(app, pilot)
        rows = app.screen.query_one(NodeRows)
        assert "host key rejected" in rows.cell("127.0.0.2", "detail")
    assert asked == ["HostKeyReviewModal"]  # one screen, no question per node
    assert sorted(known_labels(tmp_path)) == [label(keyhost, "127.0.0.1"),
                                              label(keyhost, "127.0.0.3")]
    outcome = {host: (str(r.status), r.reason) for host, r in results(app).items()}
    assert outcome == {"127.0.0.1": ("planned", ""), "127.0.0.3": ("planned", ""),
                       "127.0.0.2": ("failed", "host key rejected")}


async def test_a_changed_key_is_shown_refused_and_cannot_be_accepted_there(
    make_app: AppFactory, keyhost: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = Path(f"{keygen(tmp_path / 'old_host_key')}.pub")
    known = key_line(label(keyhost, "127.0.0.1"), old)
    app, asked = onboarding_app(make_app, keyhost, tmp_path, HOSTS[:2], known, monkeypatch)
    async with app.run_test(size=(100, 32)) as pilot:
        modal = await start_dry_run(app, pilot)
        changed = modal.scans[0]
        assert changed.status == CHANGED and changed.fingerprint == keyhost.fingerprint()
        shown = modal.query_one(NodeRows).cell("127.0.0.1", "key")
        assert "REFUSED" in shown and f"offered {keyhost.fingerprint()}" in shown
        assert f"known   {changed.known[0]}" in shown and changed.known[0] != \
            keyhost.fingerprint()
        await pilot.press("space")  # on the changed row: not markable
        await pilot.pause()
        assert modal.marked == set()
        await pilot.click("#accept-all")
        await settle(app, pilot)
    assert asked == ["HostKeyReviewModal"]
    assert known_hosts_text(tmp_path) == known + key_line(
        label(keyhost, "127.0.0.2"), keyhost.host_key.with_suffix(".pub"))
    outcome = {host: (str(r.status), r.reason) for host, r in results(app).items()}
    assert outcome == {"127.0.0.1": ("failed", "host key changed"),
                       "127.0.0.2": ("planned", "")}


def known_hosts_text(tmp_path: Path) -> str:
    return (tmp_path / "known_hosts").read_text()


async def test_a_new_key_type_is_asked_on_its_own_and_waits_are_left_out_of_node_time(
    make_app: AppFactory, keyhost: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1 is known by an RSA key and now offers ed25519: listed with the warning, not
    accepted by "Accept all new", then asked on its own while its node runs. The clock only
    moves while a screen waits for the user, so the node's time must be exactly 0 and its
    recorded wait exactly the time the question was open."""
    rsa = Path(f"{keygen(tmp_path / 'rsa_host_key', 'rsa')}.pub")
    known = key_line(label(keyhost, "127.0.0.1"), rsa)
    app, asked = onboarding_app(make_app, keyhost, tmp_path, HOSTS[:2], known, monkeypatch)
    clock = FakeClock()
    app.job_clock = clock
    async with app.run_test(size=(100, 32)) as pilot:
        modal = await start_dry_run(app, pilot)
        assert [s.status for s in modal.scans] == [OTHER_TYPE, UNKNOWN]
        assert "WARNING" in modal.query_one(NodeRows).cell("127.0.0.1", "key")
        clock.now += 50.0  # the review screen's wait comes before any node starts
        await pilot.click("#accept-all")
        await wait_for_modal(app, pilot, HostKeyUnknownModal)
        question = app.screen
        assert isinstance(question, HostKeyUnknownModal)
        assert question.host == label(keyhost, "127.0.0.1") and question.known
        clock.now += 120.0  # the user looks the key up for two minutes
        await pilot.click("#accept")
        await settle(app, pilot)
        assert app.screen.query_one(NodeRows).cell("127.0.0.1", "time") == "0.0s"
    assert asked == ["HostKeyReviewModal", "HostKeyUnknownModal"]
    node = results(app)["127.0.0.1"]
    assert (str(node.status), node.waited, node.seconds) == ("planned", 120.0, 0.0)
    assert "time: 0.0s, not counting 120.0s waiting for your answer" in result_lines(node)
    assert results(app)["127.0.0.2"].waited == 0.0
    assert known_hosts_text(tmp_path).startswith(known)  # the RSA key stays; ed25519 added
    assert label(keyhost, "127.0.0.1") in known_hosts_text(tmp_path)[len(known):]


async def test_verify_decides_the_nodes_keys_on_the_same_one_screen(
    make_app: AppFactory, keyhost: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify connects to every node too: its unknown keys are one screen before it starts.
    (The registry is not running, so the nodes are then skipped: the keys are what counts.)"""
    app, asked = onboarding_app(make_app, keyhost, tmp_path, HOSTS, "", monkeypatch, "verify")
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen, VerifyScreen)
        app.screen.query_one("#verify", Button).press()
        await wait_for_modal(app, pilot, HostKeyReviewModal)
        await pilot.press("down", "space")
        await pilot.click("#accept-marked")
        await settle(app, pilot)
        assert app.screen.query_one(NodeRows).cell("127.0.0.1", "state") == "skipped"
    assert asked == ["HostKeyReviewModal"]
    assert known_labels(tmp_path) == [label(keyhost, "127.0.0.2")]
