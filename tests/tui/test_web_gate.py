"""`regwiz --web` answers its owner only: token, Host and Origin checked before any wizard starts.

Real server (textual-serve on aiohttp) in a subprocess on loopback, real HTTP and WebSocket
clients; "no wizard process started" is read from the process table.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from screens.web import WebGate, scrubbed_environment
from tests.polling import wait_until
from tests.tui.test_web import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sudo-secret-4242"


class Served:
    def __init__(self, process: subprocess.Popen[str], port: int, url: str) -> None:
        self.process, self.port, self.url = process, port, url
        self.origin = f"http://127.0.0.1:{port}"

    def wizard_pids(self) -> list[int]:
        """The wizard processes this server started (its children running `-m app`)."""
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.process.pid)],
                             capture_output=True, text=True, check=False).stdout
        return [int(line.split()[0]) for line in out.splitlines() if "-m app" in line]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    env = dict(os.environ, REGWIZ_SUDO_PASSWORD=SECRET)
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--web", "--web-port", str(port),
         "--plan", str(tmp_path / "plan.toml")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(http://\S+\?token=\S+)", line)
    assert match, f"no login URL printed: {line!r}"
    try:
        wait_until(lambda: _answers(port), f"regwiz --web on port {port}", interval=0.2)
        yield Served(process, port, match.group(1))
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def _status(url: str, **headers: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
        return reply.status


async def _websocket_statuses(served: Served, origins: list[str | None], *,
                              log_in: bool) -> list[int]:
    """The handshake status of one WebSocket per origin, in one browser (logged in or not)."""
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for an IP host
    statuses: list[int] = []
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        if log_in:
            async with session.get(served.url) as page:
                assert page.status == 200
        for origin in origins:
            statuses.append(await _one_websocket(session, served, origin))
    return statuses


async def _one_websocket(session: aiohttp.ClientSession, served: Served,
                         origin: str | None) -> int:
    headers = {"Origin": origin} if origin else {}
    try:
        async with session.ws_connect(f"ws://127.0.0.1:{served.port}/ws?width=80&height=24",
                                      headers=headers) as websocket:
            message = await websocket.receive(timeout=30)
            assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
            return 101
    except aiohttp.WSServerHandshakeError as error:
        return error.status


def _raw_status(port: int, request: str) -> int:
    """The status of a hand-written HTTP request (clients fix up Host; a rebinding page can't)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request.encode())
        head = connection.recv(200).decode(errors="replace")
    return int(head.split()[1])


def test_without_the_token_nothing_answers_and_no_wizard_starts(served: Served) -> None:
    base = served.origin
    assert asyncio.run(_status(f"{base}/")) == 403
    assert asyncio.run(_status(f"{base}/?token=wrong")) == 403
    assert asyncio.run(_status(f"{base}/static/js/textual.js")) == 403
    assert asyncio.run(_websocket_statuses(served, [base], log_in=False)) == [403]
    time.sleep(0.5)
    assert served.wizard_pids() == []


def test_a_foreign_origin_or_host_is_refused_even_with_the_session(served: Served) -> None:
    assert asyncio.run(_status(served.url, Origin="http://evil.example")) == 403
    path = served.url.split(str(served.port), 1)[1]
    rebound = f"GET {path} HTTP/1.1\r\nHost: evil.example:{served.port}\r\n\r\n"
    assert _raw_status(served.port, rebound) == 403
    statuses = asyncio.run(_websocket_statuses(served, ["http://evil.example", None],
                                               log_in=True))
    assert statuses == [403, 403]
    time.sleep(0.5)
    assert served.wizard_pids() == []


def test_the_owner_gets_the_wizard_and_the_link_works_once(served: Served) -> None:
    assert asyncio.run(_websocket_statuses(served, [served.origin], log_in=True)) == [101]
    # The token was redeemed: a second browser with the same link gets nothing.
    assert asyncio.run(_status(served.url)) == 403


def test_the_wizard_process_inherits_no_secret(served: Served) -> None:
    async def open_and_check() -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(served.url) as page:
                assert page.status == 200
            async with session.ws_connect(f"ws://127.0.0.1:{served.port}/ws",
                                          headers={"Origin": served.origin}) as websocket:
                await websocket.receive(timeout=30)
                wait_until(lambda: bool(served.wizard_pids()), "a wizard process")
                for pid in served.wizard_pids():
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                    assert b"REGWIZ_SUDO_PASSWORD" not in environ
                    assert SECRET.encode() not in environ

    asyncio.run(open_and_check())


def test_gate_rules() -> None:
    gate = WebGate("127.0.0.1", 8123)
    host = {"Host": "127.0.0.1:8123"}
    token = {"token": gate.token}
    assert gate.refusal(host, token, {}, websocket=False) is None
    assert gate.refusal({"Host": "localhost:8123"}, token, {}, websocket=False)
    assert gate.refusal(host, {"token": gate.token + "x"}, {}, websocket=False)
    assert gate.refusal(host, token, {}, websocket=True)  # a WebSocket needs the session
    assert gate.redeem(token, {}) is True
    assert gate.refusal(host, token, {}, websocket=False) == "wrong or used token"
    session = {"regwiz_session": gate.session}
    assert gate.refusal(host, {}, session, websocket=False) is None
    assert gate.refusal({**host, "Origin": "http://127.0.0.1:8123"}, {}, session,
                        websocket=True) is None
    assert scrubbed_environment({"REGWIZ_SSH_PASSWORD": "x", "REGWIZ_LAB_ID": "1", "HOME": "/"}) \
        == {"REGWIZ_LAB_ID": "1", "HOME": "/"}
