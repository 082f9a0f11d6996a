"""Snapshot tests: every step and the main modals in a representative state.

Paths are fixed (not tmp_path) because screens show them; nothing shown depends on the clock:
no certificates are generated here (their dates would change every day), and no screen shows
text that comes from a live run of another module (the status panel renders a fixed report).
Update with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from app.onboard import results_path
from app.plan import MirrorSettings, NodeSettings, Plan, Secrets, new_plan, save_plan
from app.status import (
    CatalogStatus,
    CertificateStatus,
    ContainerStatus,
    DiskStatus,
    NodeCAFile,
    NodeTrustStatus,
    RegistryHealth,
    RepositorySize,
    StatusReport,
    TrustState,
)
from app.transport.keyscan import CHANGED, OTHER_TYPE, UNKNOWN, ScannedKey
from app.verify import CheckState, NodeCheck, NodeVerifyResult, PushPullResult, VerifyReport
from screens.app import RegwizApp
from screens.error_modal import ErrorModal
from screens.host_key_changed import HostKeyChangedModal
from screens.host_key_review import HostKeyReviewModal
from screens.host_key_unknown import HostKeyUnknownModal
from screens.import_cert import ImportCertModal
from screens.mirror_edit import MirrorEditModal
from screens.node_edit import NodeEditModal
from screens.status import StatusScreen
from tests.tui.conftest import settle

SNAP_DIR = Path("/tmp/regwiz-tui-snapshots")
WIDE = (100, 32)
SMALL = (80, 24)
LARGE = (120, 36)
Snap = Callable[..., bool]


@pytest.fixture
def snap_lock() -> Iterator[None]:
    """One snapshot test at a time on this machine: SNAP_DIR is a fixed path (the pictures show
    it), so two test runs side by side would delete each other's plan mid-test."""
    import fcntl

    with open(f"{SNAP_DIR}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def snap_plan(monkeypatch: pytest.MonkeyPatch, snap_lock: None) -> Iterator[Path]:
    shutil.rmtree(SNAP_DIR, ignore_errors=True)
    SNAP_DIR.mkdir(parents=True)
    monkeypatch.setenv("REGWIZ_KNOWN_HOSTS", str(SNAP_DIR / "known_hosts"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{SNAP_DIR}/no-docker.sock")
    plan = new_plan(SNAP_DIR / "plan.toml")
    plan.certificate.common_name = "registry.example.internal"
    plan.certificate.country = "KR"
    plan.certificate.organization = "Example Corp"
    plan.certificate.subject_alt_names = ["registry.example.internal", "mirror.example.internal"]
    plan.registry.host = "local"
    plan.registry.ssh_user = "deploy"
    plan.registry.address = "127.0.0.1"
    plan.registry.port = 1  # nothing listens: status shows a stable "down"
    plan.registry.data_dir = str(SNAP_DIR / "no-data-dir")  # du fails the same way every time
    plan.node_defaults.ssh_user = "deploy"
    plan.nodes = [
        NodeSettings(host="127.0.0.2", ssh_port=1),
        NodeSettings(host="127.0.0.3", ssh_port=1, ssh_user="rwops", runtime="containerd"),
        NodeSettings(host="127.0.0.4", ssh_port=1, os_trust_store=True),
    ]
    plan.mirrors = [
        MirrorSettings("docker.io", 5001),
        MirrorSettings("upstream.lab:5000", 5002, remote_url="https://198.18.0.9:5000",
                       username="robot"),
    ]
    save_plan(plan, plan.path)
    write_onboard_results(plan)
    yield SNAP_DIR / "plan.toml"
    shutil.rmtree(SNAP_DIR, ignore_errors=True)


def write_onboard_results(plan: Plan) -> None:
    """A saved onboarding run (fixed values) so the Onboard step shows filled rows."""
    nodes = [
        {"host": "127.0.0.2", "ssh_user": "root", "ssh_port": 1, "status": "changed",
         "runtimes": ["docker", "containerd"],
         "changed_files": ["/etc/docker/certs.d/127.0.0.1:1/ca.crt"], "seconds": 4.2,
         "message": "installed the registry CA for docker and containerd, restarted nothing"},
        {"host": "127.0.0.3", "ssh_user": "root", "ssh_port": 1, "status": "failed",
         "reason": "unreachable", "seconds": 10.0,
         "message": "127.0.0.3:1 refused the connection: is sshd running and is the port right?"},
    ]
    results_path(plan).write_text(json.dumps({"nodes": nodes}))


def sample_verify_report() -> VerifyReport:
    """A finished verify run (fixed values): one node passed, one failed, one skipped."""
    reference = "127.0.0.1:1/regwiz/selftest:snapshot"
    return VerifyReport(
        PushPullResult(reference, "local docker", CheckState.PASSED,
                       pushed_digest="sha256:" + "ab" * 32, pulled_digest="sha256:" + "ab" * 32),
        [NodeVerifyResult("127.0.0.2", CheckState.PASSED, ["docker"], [NodeCheck(
            "docker pull", f"docker pull {reference}", True, f"pulled {reference}",
            digest="sha256:" + "ab" * 32)], message="passed: docker pull"),
         NodeVerifyResult("127.0.0.3", CheckState.FAILED, ["containerd"], [NodeCheck(
             "containerd pull (ctr --hosts-dir)", "ctr images pull", False,
             "x509: certificate signed by unknown authority: the node does not trust the CA")],
             message="containerd pull (ctr --hosts-dir): x509: certificate signed by unknown "
                     "authority: the node does not trust the CA"),
         NodeVerifyResult("127.0.0.4", CheckState.SKIPPED,
                          message="127.0.0.4:1 refused the connection")])


def make(start: str, plan_path: Path) -> RegwizApp:
    app = RegwizApp(plan_path, data_dir=SNAP_DIR / "data", secrets=Secrets(), start=start)
    if start != "welcome":
        app.open_plan(plan_path)
    if start == "verify":
        app.session.verify = sample_verify_report()  # the rows of a finished run
    if start == "external" and app.plan is not None:
        app.plan.registry.managed = False  # the short path of a registry regwiz did not deploy
        app.plan.mirrors = []  # only a registry regwiz deploys runs mirrors
    return app


async def steady(pilot: Pilot[Any]) -> None:
    """Let workers finish, then stop every cursor blinking so the picture is stable."""
    await settle(pilot.app, pilot)  # type: ignore[arg-type]
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize(
    ("step", "size"),
    [
        ("welcome", SMALL),
        ("external", SMALL),
        ("external", WIDE),
        ("certificate", WIDE),
        ("certificate", SMALL),
        ("review", WIDE),
        ("registry", WIDE),
        ("mirrors", SMALL),
        ("mirrors", WIDE),
        ("deploy", WIDE),
        ("nodes", WIDE),
        ("onboarding", SMALL),
        ("onboarding", LARGE),
        ("verify", SMALL),
        ("verify", WIDE),
        ("verify", LARGE),
    ],
    ids=lambda value: value if isinstance(value, str) else f"{value[0]}x{value[1]}",
)
def test_step(snap_compare: Snap, snap_plan: Path, step: str, size: tuple[int, int]) -> None:
    assert snap_compare(make(step, snap_plan), terminal_size=size, run_before=steady)


GIB = 1 << 30


def sample_report() -> StatusReport:
    """A healthy-looking registry with one stale node (fixed values: no clock, no network)."""
    return StatusReport(
        collected_at="2026-01-01T00:00:00+00:00",
        registry_reference="198.18.0.2:8443",
        registry=RegistryHealth("https://198.18.0.2:8443/v2/", reachable=True, tls_valid=True,
                                http_status=200, api_version="registry/2.0", latency_ms=3.4),
        server_certificate=CertificateStatus("served by the registry", "CN=registry",
                                             "2027-03-01T00:00:00+00:00", 20, "AB:CD"),
        ca_certificate=CertificateStatus("ca.crt", "CN=registry CA",
                                         "2036-01-01T00:00:00+00:00", 3650, "EF:01"),
        served_matches_local=True,
        catalog=CatalogStatus({"regwiz/selftest": ["a1b2"], "team/api": ["1.0", "1.1"]}, 2,
                              sizes=[RepositorySize("regwiz/selftest", 1, 1_536),
                                     RepositorySize("team/api", 2, 31_457_280, unsized_tags=1)]),
        container=ContainerStatus("registry", found=True, state="running", running=True,
                                  restart_count=0, image="registry:2",
                                  image_id="sha256:" + "5e" * 32,
                                  pinned_digest="sha256:" + "5e" * 32, pin_kind="image ID",
                                  matches_pin=True),
        disk=DiskStatus("/registry-image", used_bytes=52_428_800, volume_bytes=50 * GIB,
                        volume_used_bytes=45 * GIB, volume_free_bytes=5 * GIB),
        nodes=[
            NodeTrustStatus("198.18.0.3", TrustState.MATCH, ["docker"], [NodeCAFile(
                "docker", "/etc/docker/certs.d/198.18.0.2:8443/ca.crt", TrustState.MATCH)]),
            NodeTrustStatus("198.18.0.4", TrustState.MISMATCH, ["containerd"], [NodeCAFile(
                "containerd", "/etc/containerd/certs.d/198.18.0.2:8443/ca.crt",
                TrustState.MISMATCH)]),
            NodeTrustStatus("198.18.0.6", TrustState.ERROR, [], [],
                            "198.18.0.6:22 refused the connection"),
        ],
    )


def test_status_panel_colours(snap_compare: Snap, snap_plan: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = StatusScreen(live=False)
        await pilot.app.switch_screen(screen)
        await pilot.pause()
        screen.show_report(sample_report())
        await steady(pilot)

    assert snap_compare(make("nodes", snap_plan), terminal_size=WIDE, run_before=run_before)


def test_certificate_with_errors(snap_compare: Snap, snap_plan: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = pilot.app.screen
        screen.query_one("#country", Input).value = "UK"
        screen.query_one("#email", Input).value = "ops@"
        screen.query_one("#common-name", Input).value = "bad name"
        await steady(pilot)

    assert snap_compare(make("certificate", snap_plan), terminal_size=WIDE, run_before=run_before)


def test_light_theme(snap_compare: Snap, snap_plan: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("ctrl+t")
        await steady(pilot)

    assert snap_compare(make("nodes", snap_plan), terminal_size=WIDE, run_before=run_before)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("dialog", [False, True], ids=["marks", "bulk-edit"])
def test_nodes_marked(snap_compare: Snap, snap_plan: Path, size: tuple[int, int],
                      dialog: bool) -> None:
    """Rows 1 and 3 marked on the Nodes step; with ``dialog``, the edit of both opened."""

    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one("#nodes-table", DataTable).focus()
        await pilot.press("space", "down", "space")
        if dialog:
            await pilot.press("e")
        await steady(pilot)

    assert snap_compare(make("nodes", snap_plan), terminal_size=size, run_before=run_before)


def sample_scans() -> list[ScannedKey]:
    """Fixed keys: two new hosts, a changed key and a new key type for a known host."""
    def key(host: str, status: str, known: tuple[str, ...] = ()) -> ScannedKey:
        return ScannedKey(host, host, 22, "ssh-ed25519", host.encode() * 8, status, known)

    return [key("198.18.0.3", UNKNOWN), key("198.18.0.4", UNKNOWN),
            key("198.18.0.5", CHANGED, ("SHA256:Yb3q8oVQx1WZ0lH3mPjKf7n2sTg9uRcEaD5vXkLw6iM",)),
            key("198.18.0.6", OTHER_TYPE,
                ("ssh-rsa SHA256:Qm4T0pVzH8xY1cN7bR2kLs5wJ9dEaFgU3oIiK6vXnPe",))]


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=lambda size: f"{size[0]}x{size[1]}")
def test_host_key_review(snap_compare: Snap, snap_plan: Path, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.push_screen(HostKeyReviewModal(sample_scans()))
        await pilot.pause()
        await pilot.press("space")  # the first new host marked
        await steady(pilot)

    assert snap_compare(make("onboarding", snap_plan), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("modal", ["unknown-key", "changed-key", "error", "help", "node-edit",
                                   "import-cert", "mirror-add", "mirror-edit"])
def test_modals(snap_compare: Snap, snap_plan: Path, modal: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        if modal == "unknown-key":
            app.push_screen(HostKeyUnknownModal(
                "[198.18.0.2]:22", "ssh-ed25519",
                "SHA256:1x0zQpGJ8Fh6m5R4b2kZl3u7TyQvWcXnAeB9dKoLs0E"))
        elif modal == "changed-key":
            app.push_screen(HostKeyChangedModal(
                "198.18.0.2",
                "the host key of 198.18.0.2 has CHANGED: known_hosts has ssh-ed25519 "
                "SHA256:AAAA, the server now presents SHA256:BBBB"))
        elif modal == "error":
            app.push_screen(ErrorModal("Deploy failed", "port 8443 is in use by nginx",
                                       "stop nginx or choose another port"))
        elif modal == "node-edit":
            plan = app.plan  # type: ignore[attr-defined]
            app.push_screen(NodeEditModal(plan.nodes[1], plan.node_defaults))
        elif modal == "import-cert":
            app.push_screen(ImportCertModal())
        elif modal == "mirror-add":  # the preset's port typed over: the registry's, refused
            app.push_screen(MirrorEditModal(app.plan))  # type: ignore[attr-defined]
            await pilot.pause()
            app.screen.query_one("#mirror-port", Input).value = "1"
        elif modal == "mirror-edit":  # the private one: its password variable named
            app.push_screen(MirrorEditModal(app.plan, 1))  # type: ignore[attr-defined]
        else:
            await pilot.press("f1")  # "?" would be typed into the focused Host field

        await steady(pilot)

    assert snap_compare(make("registry", snap_plan), terminal_size=WIDE, run_before=run_before)
