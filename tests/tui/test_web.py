"""`regwiz --web` serves the wizard to a browser on 127.0.0.1 (textual-serve)."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch_when_up(url: str, process: subprocess.Popen[bytes]) -> str:
    page: list[str] = []

    def answered() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"regwiz --web exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                page.append(response.read().decode())
                return True
        except OSError:
            return False

    wait_until(answered, f"something answers on {url}", interval=0.2)
    return page[0]


def test_web_serves_the_wizard_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--web", "--web-port", str(port),
         "--plan", str(tmp_path / "plan.toml")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        link = process.stdout.readline().split("open ", 1)[1].split()[0]
        assert link.startswith(f"http://127.0.0.1:{port}/?token=")
        page = fetch_when_up(link, process)
        assert "regwiz" in page
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                                   text=True, check=True).stdout.split()
        local_addresses = listening[3::5]  # State Recv-Q Send-Q Local Peer, per socket
        assert local_addresses == [f"127.0.0.1:{port}"], listening
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_web_refuses_to_listen_on_every_address(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "--web", "--web-bind", "0.0.0.0",
         "--plan", str(tmp_path / "plan.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "--web-bind 0.0.0.0" in done.stderr and "every address" in done.stderr
