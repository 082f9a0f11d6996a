"""Issue 12 item 2, on the lab's registry host: ``uninstall --purge`` deletes only a registry
data directory.

- A system directory spelled with a leading ``//`` (``posixpath.normpath`` keeps it, so the old
  deny-list let it through): ``//usr/local``, a tmpfs mounted over it inside the registry host
  only, holding stand-in files. Refused, the files are still there.
- A directory that holds anything besides Distribution's ``docker/registry/v2`` tree and
  deploy's marker (here a copy of a few /etc files next to a real ``docker`` tree): refused,
  and the message names what was found; nothing is deleted.
- The real data directory of a deployed registry after a push: purged.

The plan-load check (``//etc`` as ``data_dir`` is refused before any host is touched) is a unit
test in tests/test_validate.py: a lab test of it would delete the machine's /etc if it failed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.connections import host_key_policy, open_registry_transport
from app.deploy import Uninstall
from app.plan import Secrets, load_plan
from app.steps import Outcome, StepResult, run_steps
from tests.deploy_helpers import push_tiny_image
from tests.faults.test_deploy_faults import Env, env  # noqa: F401 - the deploy fixture
from tests.lab.lab import LabHost

STAND_INS = {"passwd": b"root:x:0:0:root:/root:/bin/bash\n", "hosts": b"127.0.0.1 localhost\n",
             "notes.txt": b"not registry data\n"}


def _purge(env: Env, data_dir: str) -> StepResult:  # noqa: F811
    """Run uninstall --purge for the env's plan with ``data_dir`` set after loading (the plan
    check would refuse a system directory before the purge check is reached); the failed step
    (else the last one)."""
    plan = load_plan(env.plan_path)
    plan.registry.data_dir = data_dir
    policy = host_key_policy(False, known_hosts=env.known_hosts)
    with Uninstall(plan, purge=True,
                   connect=lambda: open_registry_transport(plan, Secrets(), policy)) as steps:
        results = run_steps(steps.steps())
    failed = [result for result in results if result.outcome is Outcome.FAILED]
    return failed[0] if failed else results[-1]


@pytest.fixture
def usr_local_tmpfs(env: Env) -> Iterator[LabHost]:  # noqa: F811
    """A tmpfs over /usr/local in the registry host's own mount namespace, with stand-ins."""
    host = env.host
    host.exec(["mount", "-t", "tmpfs", "-o", "size=1m", "rwfault-usr-local", "/usr/local"])
    try:
        for name, content in STAND_INS.items():
            host.exec(["sh", "-c", 'cat > "/usr/local/$1"', "sh", name], input=content)
        yield host
    finally:
        host.exec(["umount", "/usr/local"])


def _contents(host: LabHost, directory: str) -> dict[str, bytes]:
    listing = host.exec(["ls", "-A", directory]).stdout.decode().split()
    return {name: host.exec(["cat", f"{directory}/{name}"]).stdout for name in listing
            if name in STAND_INS}


def test_purge_refuses_a_system_directory_written_with_a_double_slash(
    env: Env, usr_local_tmpfs: LabHost  # noqa: F811
) -> None:
    result = _purge(env, "//usr/local")
    assert result.outcome is Outcome.FAILED, result
    assert result.kind == "purge-refused", result
    assert "/usr/local" in result.message
    assert _contents(usr_local_tmpfs, "/usr/local") == STAND_INS


def test_purge_refuses_a_directory_with_foreign_files_and_names_them(
    env: Env, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    foreign = f"/registry-image/{env.name}-foreign"
    env.host.exec(["mkdir", "-p", f"{foreign}/docker/registry/v2/repositories"])
    try:
        for name, content in STAND_INS.items():
            env.host.exec(["sh", "-c", 'cat > "$1"', "sh", f"{foreign}/{name}"], input=content)
        result = _purge(env, "/" + foreign)  # also spelled //registry-image/...
        assert result.outcome is Outcome.FAILED, result
        assert result.kind == "purge-refused", result
        assert all(name in result.message for name in STAND_INS), result.message
        assert "not a registry data directory" in result.message
        assert _contents(env.host, foreign) == STAND_INS
        assert env.host.exec(["test", "-d", f"{foreign}/docker/registry/v2"],
                             check=False).returncode == 0
    finally:
        env.host.exec(["rm", "-rf", foreign])


def test_purge_deletes_a_real_registry_data_directory(
    env: Env, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    code, out = env.cli(capsys, "deploy")
    assert code == 0, out
    push_tiny_image(f"https://{env.address}", env.ca_path, "faults/purged", "v1")
    assert env.host.exec(["test", "-d", f"{env.data_dir}/docker/registry/v2/repositories"],
                         check=False).returncode == 0
    code, out = env.cli(capsys, "uninstall", "--purge", "--yes")
    assert code == 0, out
    assert env.host.exec(["test", "-e", env.data_dir], check=False).returncode != 0
