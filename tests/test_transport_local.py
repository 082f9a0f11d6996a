"""LocalTransport: the same interface as SSH, on this machine (tests run as root)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from app.transport.base import ConnectionSettings, TransportError
from app.transport.factory import open_transport
from app.transport.local import LocalTransport

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owner changes need root")


@pytest.fixture
def local() -> LocalTransport:
    transport = open_transport(ConnectionSettings(host="local"))
    assert isinstance(transport, LocalTransport)
    return transport


def test_run_and_failures(local: LocalTransport) -> None:
    assert local.name == "local"
    assert local.run(["sh", "-c", 'echo "$1"; echo e >&2', "sh", "a b"]).stdout == "a b\n"
    assert local.run(["false"], check=False).exit_status == 1
    with pytest.raises(TransportError) as caught:
        local.run(["ls", "/no/such/dir"])
    assert caught.value.kind == "command" and "ls /no/such/dir" in caught.value.message
    with pytest.raises(TransportError) as missing:
        local.run(["regwiz-no-such-program"])
    assert "command not found" in missing.value.message


def test_sudo_is_not_used_as_root(local: LocalTransport) -> None:
    assert local.sudo_mode() == "root"
    assert local.run(["id", "-u"], sudo=True).stdout == "0\n"


def test_large_output_and_stdin(local: LocalTransport) -> None:
    out = local.run(["sh", "-c", "head -c 10485760 /dev/zero | tr '\\0' o"]).stdout
    assert len(out) == 10 * 1024 * 1024
    data = os.urandom(2 * 1024 * 1024)
    digest = local.run(["sha256sum"], stdin=data).stdout.split()[0]
    assert digest == hashlib.sha256(data).hexdigest()


def test_timeout_kills_the_command(local: LocalTransport) -> None:
    with pytest.raises(TransportError) as caught:
        local.run(["sleep", "41.75"], timeout=1)
    assert caught.value.kind == "timeout"
    left = subprocess.run(["pgrep", "-f", "sleep 41.75"], capture_output=True, text=True)
    assert left.stdout == ""


def test_write_file_and_read_file(local: LocalTransport, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.conf"
    assert local.write_file(str(target), b"v1", mode=0o640, owner="nobody", group="nogroup")
    assert (target.owner(), target.group(), target.stat().st_mode & 0o777) == (
        "nobody", "nogroup", 0o640)
    assert local.write_file(str(target), b"v1", mode=0o640, owner="nobody", group="nogroup") \
        is False
    assert local.write_file(str(target), b"v2", mode=0o640, owner="nobody", group="nogroup")
    assert local.read_file(str(target)) == b"v2"
    assert local.read_file(str(tmp_path / "none")) is None
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.conf"]


def test_write_file_rejects_relative_path(local: LocalTransport) -> None:
    with pytest.raises(TransportError):
        local.write_file("relative/path", b"x")
