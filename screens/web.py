"""``regwiz --web``: the wizard in a browser, for its owner only.

The wizard holds SSH and sudo passwords and runs commands as root on every host, so a page of
another origin must never reach it (a WebSocket is not bound by the same-origin policy), and
neither may another local user who can open 127.0.0.1. Every request passes one gate:

- ``Host`` must be the served address (a DNS-rebinding page names its own host there);
- an ``Origin``, when sent, must be the served origin; a WebSocket upgrade must send one;
- the caller must hold the session: the printed URL carries a random one-time token, redeemed
  once for an HttpOnly, SameSite=Strict cookie; a token already redeemed opens nothing.

Refused requests get 403 before any handler runs, so no wizard process is started for them.
The wizard processes inherit no ``REGWIZ_*`` secret from this process's environment.
"""

from __future__ import annotations

import hmac
import os
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.address import url_host
from app.errors import RegwizError, UsageError
from app.plan import SECRET_ENV_VARS

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 8000
TOKEN_PARAMETER = "token"  # noqa: S105 (a query parameter name, not a secret)
SESSION_COOKIE = "regwiz_session"


@dataclass
class WebGate:
    """Decides, per request, whether it comes from the wizard's owner."""

    host: str
    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    redeemed: bool = False

    @property
    def accepted_hosts(self) -> tuple[str, ...]:
        """The ``Host`` values naming the served address (a browser omits port 80)."""
        host = url_host(self.host)
        authority = f"{host}:{self.port}"
        return (authority, host) if self.port == 80 else (authority,)

    @property
    def origin(self) -> str:
        return f"http://{self.accepted_hosts[0]}"

    @property
    def login_url(self) -> str:
        return f"{self.origin}/?{TOKEN_PARAMETER}={self.token}"

    def refusal(self, headers: Mapping[str, str], query: Mapping[str, str],
                cookies: Mapping[str, str], *, websocket: bool) -> str | None:
        """Why this request is refused, or None when it may go on (it may redeem the token)."""
        if headers.get("Host", "") not in self.accepted_hosts:
            return "wrong Host header"
        origin = headers.get("Origin")
        if origin is not None and origin != self.origin:
            return "foreign Origin"
        if websocket and origin is None:
            return "a WebSocket without an Origin"
        if _same(cookies.get(SESSION_COOKIE, ""), self.session):
            return None
        offered = query.get(TOKEN_PARAMETER, "")
        if not offered or websocket:
            return "no session"
        if self.redeemed or not _same(offered, self.token):
            return "wrong or used token"
        return None

    def redeem(self, query: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """Whether this (admitted) request just redeemed the token: it then gets the cookie."""
        if _same(cookies.get(SESSION_COOKIE, ""), self.session):
            return False
        self.redeemed = True
        return bool(query.get(TOKEN_PARAMETER))


def _same(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode(), expected.encode())


def bind_problem(bind: str) -> str | None:
    """Why ``bind`` cannot be served (the gate checks Host against this one address)."""
    import ipaddress

    try:
        address = ipaddress.ip_address(bind)
    except ValueError:
        return "not an IP address"
    if address.is_unspecified:
        return "listening on every address would let the whole network reach the wizard"
    return None


def scrubbed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without regwiz's secrets (the browser user types them in the wizard)."""
    secret_names = set(SECRET_ENV_VARS.values())
    return {name: value for name, value in environ.items() if name not in secret_names}


def wizard_command(plan_path: Path | None) -> str:
    command = f"{shlex.quote(sys.executable)} -m app"
    if plan_path:
        command += f" --plan {shlex.quote(str(plan_path))}"
    return command


Handler = Callable[[Any], Awaitable[Any]]


def gate_middleware(gate: WebGate) -> Any:
    from aiohttp import web

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> Any:
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        reason = gate.refusal(request.headers, request.query, request.cookies,
                              websocket=websocket)
        if reason is not None:
            return web.Response(status=403, text=f"403 forbidden: {reason}\n")
        redeemed = gate.redeem(request.query, request.cookies)
        response = await handler(request)
        if redeemed:
            response.set_cookie(SESSION_COOKIE, gate.session, httponly=True, samesite="Strict",
                                path="/")
        return response

    return guard


def serve_web(plan_path: Path | None, port: int, bind: str = DEFAULT_BIND,
              print_line: Callable[[str], None] | None = None) -> int:
    """Serve the wizard to a browser until Ctrl+C; each visitor gets their own wizard process."""
    try:
        from textual_serve.server import Server
    except ImportError as error:
        raise RegwizError("--web needs the textual-serve package",
                          "install it with: pip install 'regwiz[web]'") from error
    if not 0 < port < 65536:
        raise UsageError(f"--web-port must be 1-65535, got {port}")
    if (problem := bind_problem(bind)) is not None:
        raise UsageError(f"--web-bind {bind}: {problem}",
                         "give one IP address of this machine, e.g. 127.0.0.1")
    gate = WebGate(bind, port)

    class GuardedServer(Server):
        async def _make_app(self) -> Any:
            app = await super()._make_app()
            app.middlewares.append(gate_middleware(gate))
            return app

        def on_startup_message(self) -> None:
            line = f"regwiz: open {gate.login_url} (the link works once, in one browser)"
            if print_line is None:
                print(line, flush=True)
            else:
                print_line(line)

    # The children copy this environment: take the secrets out of it first.
    for name in set(os.environ) - set(scrubbed_environment(os.environ)):
        del os.environ[name]
    server = GuardedServer(wizard_command(plan_path), host=bind, port=port, title="regwiz",
                           public_url=gate.origin)
    server.on_startup_message()
    server.serve()
    return 0
