"""The status report's pull-through caches (issue 14): their health rule, the one ``du`` that
measures them apart from the registry, and how the CLI and the wizard show them."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

from app.commands.status import print_mirrors
from app.status import (
    DU_DATA_DIR,
    CatalogStatus,
    CertificateStatus,
    ContainerStatus,
    DiskStatus,
    MirrorStatus,
    RegistryHealth,
    StatusReport,
    mirror_summary,
    parse_du_lines,
)


def mirror(*, running: bool = True, status: int | None = 200, private: bool = False,
           used: int | None = 3 << 20) -> MirrorStatus:
    container = ContainerStatus("reg-mirror-docker-io", found=True, running=running,
                                state="running" if running else "exited")
    health = RegistryHealth("https://198.18.4.2:5001/v2/", reachable=status is not None,
                            tls_valid=status is not None, http_status=status,
                            error=None if status else "connection refused")
    return MirrorStatus("docker.io", "198.18.4.2:5001", private, container, health, used)


def report(*mirrors: MirrorStatus) -> StatusReport:
    return StatusReport(
        collected_at="2026-12-06T00:00:00+00:00", registry_reference="198.18.4.2:8443",
        registry=RegistryHealth("https://198.18.4.2:8443/v2/", reachable=True, tls_valid=True,
                                http_status=401),
        server_certificate=CertificateStatus("served"), ca_certificate=CertificateStatus("ca"),
        served_matches_local=True, catalog=CatalogStatus(),
        container=ContainerStatus("reg", found=True, running=True, state="running"),
        disk=DiskStatus("/srv/reg", used_bytes=10), mirrors=list(mirrors))


def test_a_cache_is_healthy_when_running_and_answering_as_its_auth_says() -> None:
    assert mirror().healthy
    assert mirror(private=True, status=401).healthy
    assert not mirror(running=False).healthy
    assert not mirror(status=None).healthy
    assert not mirror(status=401).healthy  # a public cache asking for a login is useless
    assert not mirror(private=True, status=200).healthy  # a private one must never be open


def test_a_stopped_cache_makes_the_whole_status_unhealthy() -> None:
    assert report(mirror()).healthy
    assert not report(mirror(), mirror(running=False)).healthy


def test_json_lists_each_cache_with_its_verdict() -> None:
    data = json.loads(json.dumps(report(mirror(), mirror(running=False)).to_dict()))
    first, second = data["mirrors"]
    assert (first["upstream"], first["address"], first["used_bytes"]) == (
        "docker.io", "198.18.4.2:5001", 3 << 20)
    assert (first["running"], first["healthy"]) == (True, True)
    assert (second["running"], second["healthy"]) == (False, False)
    assert data["healthy"] is False


def test_cli_lines_and_summary() -> None:
    lines: list[tuple[str, str]] = []
    print_mirrors(report(mirror(), mirror(running=False, status=None)),
                  lambda label, text: lines.append((label, text)))
    assert lines[0] == ("mirrors", "docker.io at 198.18.4.2:5001: running, answers "
                                   "(anonymous pulls), 3.0 MiB cached")
    assert lines[1][1].startswith("docker.io at 198.18.4.2:5001: NOT RUNNING (exited), DOWN")
    assert "regwiz deploy" in lines[2][1]
    assert "answers HTTP 200, expected 401" in mirror_summary(mirror(private=True))


def test_the_wizard_panel_shows_the_caches() -> None:
    from screens.status import render_report

    text = render_report(report(mirror(private=True, status=401))).plain
    assert "mirrors      docker.io at 198.18.4.2:5001: running, answers (accounts only)" in text
    assert "mirrors" not in render_report(report()).plain


def test_one_du_measures_the_caches_apart_from_the_registry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for path, size in (("docker/registry/v2/blob", 100_000), ("mirrors/docker-io/b", 50_000),
                       ("mirrors/quay-io/b", 20_000)):
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        (data / path).write_bytes(b"x" * size)
    (data / "mirrors" / "linked").symlink_to(data / "docker")  # never measured as a cache
    done = subprocess.run(["sh", "-c", DU_DATA_DIR, "sh", str(data)], capture_output=True,
                          text=True, check=True)
    registry, caches = parse_du_lines(done.stdout)
    assert set(caches) == {"docker-io", "quay-io"}
    assert 50_000 <= caches["docker-io"] < 60_000 and 20_000 <= caches["quay-io"] < 30_000
    assert 100_000 <= registry < 160_000  # not 170_000 and more: the caches count once
    assert parse_du_lines(f"{123}\t{data}\n") == (123, {})  # no caches yet


def test_print_mirrors_prints_nothing_without_caches() -> None:
    out = io.StringIO()
    lines: list[str] = []
    print_mirrors(report(), lambda label, text: lines.append(text))
    assert lines == [] and out.getvalue() == ""
