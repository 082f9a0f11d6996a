"""A registry token server for the lab (Docker Hub, ghcr.io and quay.io log in this way): it
trades one Basic login for short JWTs a Distribution registry configured with ``auth: token``
accepts. Distribution's pull-through cache sends its ``proxy.username/password`` only to a
Bearer realm, never as Basic auth to the registry itself, so a login upstream for cache tests
must be one of these.

Runs as a process in a lab host's network namespace, on that host's address (the containers on
the host reach it there; they have no route back to the lab bridge's gateway), plain HTTP: the
lab's wire is not what is tested. ``python -m tests.lab.token_server`` is that process: it reads
its key and login as JSON on stdin and prints the port it listens on."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import secrets as random_secrets
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

SERVICE = "lab-upstream"
ISSUER = "lab-token-server"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(key: ec.EllipticCurvePublicKey) -> str:
    """The ``kid`` Distribution 2.x looks a signing key up by (libtrust's fingerprint)."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i:i + 4] for i in range(0, 48, 4))


class Tokens:
    """Tokens for ``login``, signed by ``key`` (whose certificate the registry trusts:
    REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, login: tuple[str, str]) -> None:
        self.key, self.login = key, login

    def accepts(self, authorization: str | None) -> bool:
        wanted = base64.b64encode(f"{self.login[0]}:{self.login[1]}".encode()).decode()
        return authorization == f"Basic {wanted}"

    def token(self, scopes: list[str]) -> str:
        """A JWT (ES256) granting every action ``scopes`` ask for."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "kid": libtrust_key_id(self.key.public_key())}
        claims = {"iss": ISSUER, "sub": self.login[0], "aud": SERVICE, "exp": now + 300,
                  "nbf": now - 30, "iat": now, "jti": random_secrets.token_hex(8),
                  "access": access}
        signing_input = ".".join(_b64(json.dumps(part).encode()) for part in (header, claims))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(),
                                                  ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class TokenServer(Tokens):
    """Serves ``Tokens`` at ``realm`` from a process in the network namespace of the process
    ``netns_pid`` (a lab host's init), on ``bind_ip``, until ``stop()``."""

    def __init__(self, netns_pid: int, bind_ip: str, key: ec.EllipticCurvePrivateKey,
                 login: tuple[str, str]) -> None:
        super().__init__(key, login)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        root = str(Path(__file__).resolve().parents[2])
        self._process = subprocess.Popen(
            ["nsenter", "-t", str(netns_pid), "-n", "--", sys.executable, "-m",
             "tests.lab.token_server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=root, env={**os.environ, "PYTHONPATH": root}, text=True)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"key": pem, "login": list(login),
                                              "bind": bind_ip}))
        self._process.stdin.close()
        port = self._process.stdout.readline().strip()
        if not port.isdigit():
            self.stop()
            raise RuntimeError("the token server did not start")
        self.realm = f"http://{bind_ip}:{port}/token"

    def registry_environment(self, bundle_path: str) -> dict[str, str]:
        """What a Distribution registry needs to accept these tokens."""
        return {"REGISTRY_AUTH": "token", "REGISTRY_AUTH_TOKEN_REALM": self.realm,
                "REGISTRY_AUTH_TOKEN_SERVICE": SERVICE, "REGISTRY_AUTH_TOKEN_ISSUER": ISSUER,
                "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE": bundle_path}

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def _handler(server: Tokens) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            if not server.accepts(self.headers.get("Authorization")):
                self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                return
            token = server.token(query.get("scope", []))
            self._send(200, {"token": token, "access_token": token, "expires_in": 300})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: tests read the registry's answers, not this log

    return Handler


def main() -> None:
    settings = json.loads(sys.stdin.read())
    key = serialization.load_pem_private_key(settings["key"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    tokens = Tokens(key, (settings["login"][0], settings["login"][1]))
    server = http.server.ThreadingHTTPServer((settings["bind"], 0), _handler(tokens))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
