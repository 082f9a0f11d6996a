"""Hostile values for every input (Hypothesis, 200 per input): control characters, shell
metacharacters, injection payloads, odd Unicode, wrong types.

Never a crash (only the documented errors), and never a shell injection on a remote host:
each payload would create a canary file if any shell interpreted it; the canary must never
appear, on this machine or on the lab host (whose /tmp is this machine's /tmp).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.certs import ensure_certificates
from app.cli import main
from app.deploy import Deployment
from app.errors import RegwizError, UsageError
from app.nodes_import import parse_node_line, read_nodes_file
from app.plan import PlanError, Secrets, load_plan, parse_plan, save_plan, validate_plan
from app.transport.base import ConnectionSecrets, ConnectionSettings, Transport, TransportError
from app.transport.factory import open_transport
from tests.faults.conftest import install_temps, policy_for
from tests.lab.lab import Lab, LabHost

EXAMPLES = 200
CANARY = Path(f"/tmp/rwcanary-{uuid.uuid4().hex}")
# Every way a shell could be talked into running `touch CANARY` (or creating it by redirect).
PAYLOADS = [
    f"$(touch {CANARY})", f"`touch {CANARY}`", f";touch {CANARY}", f"; touch {CANARY} #",
    f"|touch {CANARY}", f"&& touch {CANARY}", f"|| touch {CANARY}", f"&touch {CANARY}",
    f"\ntouch {CANARY}\n", f"'; touch {CANARY}; '", f'"; touch {CANARY}; "',
    f">{CANARY}", f"$(>{CANARY})", f"${{IFS}}>{CANARY}", f"\\'$(touch {CANARY})",
    f"\r\ntouch {CANARY}", f"%s$(touch {CANARY})%n", f"{{touch,{CANARY}}}",
]
NASTY = "\x00\x01\x07\x08\t\n\r\x1b\x7f\u0085\u2028\u202e\ufeff$`'\"\\;|&<>(){}[]*?!~#%^= -./:@,+"
hostile_text = st.one_of(
    st.builds(lambda pre, payload, post: pre + payload + post,
              st.text(alphabet=NASTY + "abcXYZ019", max_size=12), st.sampled_from(PAYLOADS),
              st.text(alphabet=NASTY + "abc", max_size=12)),
    st.text(alphabet=NASTY, min_size=1, max_size=40),
    st.text(max_size=80),
)
hostile_value = st.one_of(
    hostile_text, hostile_text, hostile_text,
    st.integers(), st.booleans(), st.floats(allow_nan=True), st.lists(hostile_text, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
# "~name/..." for a user that does not exist: pathlib's expanduser() raises RuntimeError.
TILDE_UNKNOWN_USER = "~rw-no-such-user/x"
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def _no_canary() -> None:
    assert not CANARY.exists(), "a shell interpreted a hostile value: the canary was created"


@pytest.fixture(autouse=True)
def _canary_check() -> Iterator[None]:
    CANARY.unlink(missing_ok=True)
    yield
    _no_canary()


# --------------------------------------------------------------------------- the plan


def _base_plan() -> dict[str, Any]:
    return {
        "certificate": {"common_name": "registry.example.internal", "country": "KR",
                        "subject_alt_names": ["198.18.0.2"], "directory": "certs"},
        "registry": {"host": "198.18.0.2", "ssh_user": "deploy", "address": "198.18.0.2",
                     "port": 8443, "data_dir": "/registry-image", "certs_dir": "/etc/x"},
        "nodes": {"defaults": {"ssh_user": "deploy", "runtime": "auto"},
                  "hosts": [{"host": "198.18.0.3"}]},
    }


PLAN_FIELDS = [
    *(("certificate", k) for k in (
        "common_name", "country", "state", "locality", "organization", "organizational_unit",
        "email", "subject_alt_names", "key_type", "ca_validity_days", "cert_validity_days",
        "directory", "name_constraints")),
    *(("registry", k) for k in (
        "host", "ssh_user", "ssh_port", "identity_file", "sudo", "address", "port", "image",
        "image_digest", "container_name", "data_dir", "certs_dir", "auth", "delete_enabled")),
    *(("nodes.defaults", k) for k in (
        "ssh_user", "ssh_port", "sudo", "runtime", "os_trust_store", "identity_file")),
    *(("nodes.hosts", k) for k in (
        "host", "ssh_user", "ssh_port", "sudo", "runtime", "os_trust_store", "identity_file")),
    ("plan", "unknown top-level key"),
]


def _plan_text(section: str, key: str, value: Any) -> str:
    data = _base_plan()
    if section == "nodes.defaults":
        data["nodes"]["defaults"][key] = value
    elif section == "nodes.hosts":
        data["nodes"]["hosts"][0][key] = value
    elif section == "plan":
        data[str(value)[:20] or "x"] = value
    elif key == "subject_alt_names" and isinstance(value, str):
        data[section][key] = [value]
    else:
        data[section][key] = value
    return tomlkit.dumps(data)


@pytest.mark.parametrize(("section", "key"), PLAN_FIELDS,
                         ids=[f"{s}.{k}" for s, k in PLAN_FIELDS])
def test_every_plan_input_takes_hostile_values(
    section: str, key: str, tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path_factory.mktemp("hostile-plans")

    @SETTINGS
    @given(value=hostile_value)
    @example(value=TILDE_UNKNOWN_USER)
    def check(value: Any) -> None:
        try:
            text = _plan_text(section, key, value)
        except Exception:  # tomlkit cannot even write it (e.g. a lone surrogate): no input
            return
        try:
            plan = parse_plan(text)
        except PlanError as error:
            assert error.problems and all(isinstance(p, str) for p in error.problems)
            return
        assert isinstance(validate_plan(plan), list)
        for old in folder.iterdir():  # a fresh file each time: nothing merges into an old one
            old.unlink()
        path = save_plan(plan, folder / "plan.toml")
        assert load_plan(path) == plan.__class__(**{**plan.__dict__, "path": path})
        capsys.readouterr()
        code = main(["deploy", "--plan", str(path), "--dry-run"])  # prints, connects nowhere
        assert code in (0, 1, 2)
        _no_canary()

    check()


# --------------------------------------------------------------------------- node lists


@SETTINGS
@given(line=hostile_text)
def test_node_lines_take_hostile_values(line: str) -> None:
    try:
        entry = parse_node_line(line)
    except ValueError as error:
        assert str(error)
        return
    assert entry.host and "\n" not in entry.host and ";" not in entry.host


@SETTINGS
@given(lines=st.lists(hostile_text, max_size=6))
def test_nodes_files_take_hostile_values(lines: list[str],
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("nodes") / "nodes.txt"
    try:
        path.write_text("\n".join(lines), errors="surrogateescape")
    except (UnicodeEncodeError, ValueError):
        return
    try:
        entries = read_nodes_file(path)
    except (UsageError, RegwizError) as error:
        assert error.message
        return
    assert all(e.host for e in entries)


@SETTINGS
@given(args=st.lists(hostile_text, min_size=1, max_size=3))
@example(args=[TILDE_UNKNOWN_USER])
def test_cli_arguments_take_hostile_values(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Options that are read locally: never a traceback, only exit codes 0/1/2. The user's
    own default plan and state are out of reach (XDG dirs point at an empty folder), so no
    generated command line can act on real hosts; one that would start the TUI is left out."""
    home = tmp_path_factory.getbasetemp() / "hostile-cli-home"
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(home / name))
    missing = str(home / "no-plan.toml")
    argvs = [["certs", "inspect", args[0]], ["certs", "--plan", args[0]],
             ["deploy", "--dry-run", "--plan", args[0]],
             ["onboard", "--plan", missing, "--parallel", args[0]],
             ["status", "--plan", args[0], "--json"]]
    if args[0][:1] not in ("", "-"):
        argvs.append([args[0], *args[1:]])
    for argv in argvs:
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code if isinstance(exit_.code, int) else 2
        except ValueError as error:  # an embedded NUL cannot even be a file name
            assert "null" in str(error).lower() or "embedded" in str(error).lower()
            code = 2
        assert code in (0, 1, 2), argv
    capsys.readouterr()


# --------------------------------------------------------------------------- remote hosts

SANDBOX = "/etc/docker/rw-hostile"  # private to the lab node


def _open_link(lab: Lab) -> tuple[LabHost, Transport]:
    node = lab.sshd_nodes(1)[0]
    settings_ = ConnectionSettings(host=node.ip, user="rwdeploy", identity_file=str(lab.key_path),
                                   ssh_config="")
    return node, open_transport(settings_, ConnectionSecrets(), policy_for(lab.known_hosts))


@pytest.fixture(scope="module")
def node_link(lab: Lab) -> Iterator[tuple[LabHost, Transport]]:
    node, transport = _open_link(lab)
    try:
        yield node, transport
    finally:
        transport.close()
        shutil.rmtree(node.host_path(SANDBOX), ignore_errors=True)


@pytest.fixture
def own_link(lab: Lab) -> Iterator[tuple[LabHost, Transport]]:
    """A connection of its own, for tests that may break it."""
    node, transport = _open_link(lab)
    try:
        yield node, transport
    finally:
        transport.close()


def _sendable(text: str) -> bool:
    """No NUL, no lone surrogate: those are covered by test_unsendable_arguments_fail_alone."""
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


remote_text = hostile_text.filter(_sendable)


@pytest.mark.parametrize("argument", ["a\x00b", "a\udcffb"], ids=["nul", "lone-surrogate"])
def test_unsendable_arguments_fail_alone_and_keep_the_connection(
    own_link: tuple[LabHost, Transport], argument: str
) -> None:
    """An argument SSH cannot carry must fail that one command with a TransportError that says
    so. Today a NUL goes into the exec request, sshd drops the whole connection and the error
    says "lost the SSH connection" (kind unreachable; every later command on the link fails
    too); a lone surrogate escapes as UnicodeEncodeError from paramiko encoding the command."""
    _, transport = own_link
    try:
        with pytest.raises(TransportError) as raised:
            transport.run(["ls", "--", f"{SANDBOX}/{argument}"], sudo=True, timeout=30)
        assert raised.value.kind != "unreachable", raised.value
        assert transport.run(["true"], timeout=30).ok
    finally:
        _no_canary()


def _file_name(raw: str) -> str:
    # '/' would leave the sandbox (a '..' component) or make subdirectories: keep one name.
    return raw.replace("/", "_") or "_"


@SETTINGS
@given(raw=remote_text)
def test_hostile_remote_paths_never_reach_a_shell(
    node_link: tuple[LabHost, Transport], raw: str
) -> None:
    node, transport = node_link
    path = f"{SANDBOX}/{_file_name(raw)}"
    content = raw.encode("utf-8", errors="surrogateescape") + b"\n"
    try:
        transport.write_file(path, content, sudo=True, timeout=30)
        assert transport.read_file(path, sudo=True, timeout=30) == content
        listed = transport.run(["ls", "-1", "--", path], sudo=True, timeout=30)
        assert listed.ok
        literal = node.host_path(SANDBOX) / _file_name(raw)
        assert literal.read_bytes() == content  # exactly that name, nowhere else
        transport.run(["rm", "-f", "--", path], sudo=True, timeout=30)
    except TransportError as error:
        assert error.kind in ("command", "io", "permission"), error
    _no_canary()
    assert install_temps(node, SANDBOX) == []


@SETTINGS
@given(raw=remote_text)
def test_hostile_registry_paths_through_deploy_steps(
    node_link: tuple[LabHost, Transport], raw: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """data_dir / certs_dir values the plan accepts go through the real deploy steps that use
    them (free-space check, data dir creation, certificate upload) on a lab host."""
    node, transport = node_link
    text = _plan_text("registry", "data_dir", f"{SANDBOX}/d-{_file_name(raw)}")
    certs_dir = tomlkit.string(f"{SANDBOX}/c-{_file_name(raw)}").as_string()
    text = text.replace('certs_dir = "/etc/x"', f"certs_dir = {certs_dir}")
    try:
        plan = parse_plan(text, tmp_path_factory.mktemp("hostile-deploy") / "plan.toml")
    except (PlanError, Exception) as error:
        assert isinstance(error, PlanError) or "surrogate" in str(error), error
        return
    ensure_certificates(plan)
    deployment = Deployment(plan, Secrets(), transport=transport)
    wanted = ("Check the certificate", "Check free disk space", "Upload tls.crt",
              "Create data directory")
    for step in deployment.steps():
        if step.what.startswith(wanted):
            try:
                step.run()
            except RegwizError as error:
                assert error.message
    _no_canary()
    uploaded = node.host_path(plan.registry.certs_dir) / "tls.crt"
    if uploaded.exists():
        assert uploaded.read_bytes() == (plan.cert_dir / "tls.crt").read_bytes()
    assert install_temps(node, SANDBOX) == []


@pytest.mark.parametrize("command", ["deploy", "onboard"])
def test_identity_file_in_an_unknown_users_home(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """identity_file = "~nobody-here/key" once made Path.expanduser() raise RuntimeError
    (a traceback from deploy, "internal error ... a regwiz bug" from onboarding). Expected: a
    plan problem naming the key, or an ordinary connection error (the registry/node here is
    127.0.0.1:1, which refuses connections)."""
    data = _base_plan()
    data["registry"] |= {"host": "127.0.0.1", "ssh_port": 1}
    data["nodes"]["hosts"] = [{"host": "127.0.0.1", "ssh_port": 1}]
    path = tmp_path / "plan.toml"
    path.write_text(tomlkit.dumps(data))
    ensure_certificates(load_plan(path))  # certificates first: the identity file is not needed
    data["registry"]["identity_file"] = TILDE_UNKNOWN_USER
    data["nodes"]["hosts"][0]["identity_file"] = TILDE_UNKNOWN_USER
    path.write_text(tomlkit.dumps(data))
    code = main([command, "--plan", str(path), "--known-hosts", str(tmp_path / "kh")])
    out = "".join(capsys.readouterr())
    assert code in (1, 2)
    assert "regwiz bug" not in out and "internal error" not in out, out
    assert any(word in out for word in (TILDE_UNKNOWN_USER, "identity_file", "127.0.0.1")), out
