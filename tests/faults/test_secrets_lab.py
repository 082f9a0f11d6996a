"""Secrets never leak: a full `regwiz apply` on the lab with every kind of secret in play
(the containerd node's sudo password, an htpasswd registry with a chosen password, an
encrypted CA key), then `regwiz status --json`. No password, private key or registry
credential may appear in stdout, stderr, any log record (DEBUG, every logger, including
paramiko and docker), the plan file, or any results file next to it."""

from __future__ import annotations

import base64
import json
import logging
import secrets as random_secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.plan import load_plan
from tests.lab.lab import OPS_PASSWORD, REGISTRY_IMAGE, Lab, port_for
from tests.lab.plans import core_plan_text
from tests.lab.ps_watcher import PsWatcher


@pytest.fixture
def apply_env(lab: Lab, tmp_path: Path) -> Iterator[dict[str, object]]:
    name = "rwfault-secrets"
    port = port_for(name)
    registry = lab["registry"]
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(lab.known_hosts, known_hosts)
    plan = tmp_path / "plan.toml"
    plan.write_text(core_plan_text(
        lab, ("docker", "containerd"),
        certificate={"common_name": "registry.secrets.internal", "directory": "certs"},
        registry={"port": port, "image": REGISTRY_IMAGE, "container_name": name,
                  "data_dir": f"/registry-image/{name}", "certs_dir": f"/etc/docker/{name}-certs",
                  "auth": "htpasswd", "delete_enabled": True}))
    env = {"plan": plan, "known_hosts": known_hosts, "port": port, "name": name,
           "credentials": tmp_path / "registry-credentials",
           "registry_password": "Rp-" + random_secrets.token_urlsafe(18),
           "ca_passphrase": "Ca-" + random_secrets.token_urlsafe(18)}
    yield env
    main(["uninstall", "--plan", str(plan), "--known-hosts", str(known_hosts), "--purge",
          "--yes"])
    registry.exec(["docker", "rm", "-f", name], check=False)
    registry.exec(["rm", "-rf", f"/etc/docker/{name}-certs", f"/registry-image/{name}"],
                  check=False)
    reference = f"{registry.ip}:{port}"
    lab["docker"].exec(["rm", "-rf", f"/etc/docker/certs.d/{reference}"], check=False)
    lab["containerd"].exec(["rm", "-rf", f"/etc/containerd/certs.d/{reference}"], check=False)


def _needles(env: dict[str, object], lab: Lab) -> dict[str, str]:
    """Every secret, and the forms it could leak in."""
    password = str(env["registry_password"])
    plan = load_plan(Path(str(env["plan"])))
    needles = {
        "sudo password": OPS_PASSWORD,
        "registry password": password,
        "basic auth header": base64.b64encode(f"operator:{password}".encode()).decode(),
        "CA key passphrase": str(env["ca_passphrase"]),
    }
    # issue 11: every account's credential (the file's auth value and the password in it) and
    # every bcrypt hash on the registry host
    folder = Path(str(env["plan"])).parent / "credentials"
    for account in ("operator", "cluster"):
        data = json.loads((folder / f"{account}.json").read_text())
        auth = next(iter(data["auths"].values()))["auth"]
        needles[f"{account} credential"] = auth
        needles[f"{account} password"] = base64.b64decode(auth).decode().partition(":")[2]
    htpasswd = lab["registry"].exec(
        ["cat", f"/etc/docker/{env['name']}-certs/htpasswd"]).stdout.decode()
    for line in htpasswd.splitlines():
        needles[f"bcrypt hash of {line.partition(':')[0]}"] = line.partition(":")[2]
    keys = {"tls.key": plan.cert_dir / "tls.key", "ca.key": plan.cert_dir / "ca.key",
            "lab SSH key": lab.key_path}
    for label, path in keys.items():
        body = [line for line in path.read_text().splitlines()
                if line and not line.startswith("-----")]
        for index, line in enumerate(body):
            if len(line) >= 16:
                needles[f"{label} line {index}"] = line
    return needles


def _leaks(text: str, needles: dict[str, str]) -> list[str]:
    return [label for label, needle in needles.items() if needle in text]


def test_full_apply_with_passwords_leaks_no_secret(
    apply_env: dict[str, object], lab: Lab, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", OPS_PASSWORD)
    monkeypatch.setenv("REGWIZ_REGISTRY_PASSWORD", str(apply_env["registry_password"]))
    monkeypatch.setenv("REGWIZ_CA_KEY_PASSPHRASE", str(apply_env["ca_passphrase"]))
    credentials = Path(str(apply_env["credentials"]))
    caplog.set_level(logging.DEBUG)
    plan, known_hosts = str(apply_env["plan"]), str(apply_env["known_hosts"])

    with PsWatcher([lab["registry"], lab["docker"], lab["containerd"]]) as watcher:
        code = main(["apply", "--plan", plan, "--known-hosts", known_hosts,
                     "--credentials-file", str(credentials)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert main(["status", "--plan", plan, "--known-hosts", known_hosts, "--json"]) in (0, 1)
    status = capsys.readouterr()

    needles = _needles(apply_env, lab)
    assert (Path(plan).parent / "certs" / "ca.key").read_text().startswith(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----")
    log_text = "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r}" for record in caplog.records)
    assert caplog.records, "DEBUG logging captured nothing: the check would be empty"
    places = {
        "stdout": captured.out + status.out,
        "stderr": captured.err + status.err,
        "logs": log_text,
        "process argument lists (ps on the hosts during apply)": "\n".join(watcher.seen),
    }
    assert watcher.seen, "ps saw nothing: the check would be empty"
    folder = Path(plan).parent
    for path in folder.rglob("*"):
        if path.is_file() and path.parent.name not in ("certs", "credentials") \
                and path != credentials:
            places[str(path.relative_to(folder))] = path.read_text(errors="replace")
    assert any(name.endswith("results.json") for name in places), sorted(places)
    found = {place: _leaks(text, needles) for place, text in places.items()}
    assert {place: labels for place, labels in found.items() if labels} == {}
    # the one place the registry password is kept on purpose: a 0600 file the user chose
    assert credentials.stat().st_mode & 0o777 == 0o600
    # needles work; the operator's password is REGWIZ_REGISTRY_PASSWORD (issue 11)
    assert set(_leaks(credentials.read_text(), needles)) == {"registry password",
                                                             "operator password"}


def test_node_credentials_leak_nowhere_nor_on_any_command_line(
    apply_env: dict[str, object], lab: Lab, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """apply creates the accounts (credentials/cluster.json next to the plan), installs the pull
    credential on every node and verify proves it there: no password or credential content in
    any output, log, results file, dry run, or process argument list on the hosts meanwhile."""
    from app.credential_files import credential_path

    monkeypatch.setenv("REGWIZ_SUDO_PASSWORD", OPS_PASSWORD)
    monkeypatch.setenv("REGWIZ_REGISTRY_PASSWORD", str(apply_env["registry_password"]))
    monkeypatch.setenv("REGWIZ_CA_KEY_PASSPHRASE", str(apply_env["ca_passphrase"]))
    caplog.set_level(logging.DEBUG)
    plan, known_hosts = str(apply_env["plan"]), str(apply_env["known_hosts"])
    cluster = credential_path(load_plan(Path(plan)), "cluster")  # written by apply's deploy
    connection = ["--plan", plan, "--known-hosts", known_hosts]
    try:
        with PsWatcher([lab["docker"], lab["containerd"], lab["registry"]]) as scanner:
            code = main(["apply", *connection,
                         "--credentials-file", str(apply_env["credentials"])])
            captured = capsys.readouterr()
            assert code == 0, captured.out + captured.err
            assert main(["onboard", *connection, "--dry-run"]) == 0
            assert main(["verify", *connection, "--credentials-file",
                         str(apply_env["credentials"])]) == 0
            assert main(["status", *connection, "--json"]) in (0, 1)
            later = capsys.readouterr()
        needles = _needles(apply_env, lab)
        needles["credential file content"] = cluster.read_text().strip()
        for node in ("docker", "containerd"):  # the credential really is on the nodes
            installed = lab[node].host_path("/var/lib/kubelet/config.json").read_text()
            assert "cluster credential" in _leaks(installed, needles), node
        log_text = "\n".join(
            f"{record.name} {record.getMessage()} {record.args!r}" for record in caplog.records)
        places = {"stdout": captured.out + later.out, "stderr": captured.err + later.err,
                  "logs": log_text, "ps on the hosts": "\n".join(scanner.seen)}
        folder = Path(plan).parent
        for path in folder.rglob("*"):
            if (path.is_file() and path.parent.name not in ("certs", "credentials")
                    and path != apply_env["credentials"]):
                places[str(path.relative_to(folder))] = path.read_text(errors="replace")
        assert scanner.samples > 10, "ps was hardly sampled: the check would be empty"
        assert "/var/lib/kubelet/config.json" in places["stdout"]  # the dry run names paths
        found = {place: _leaks(text, needles) for place, text in places.items()}
        assert {place: labels for place, labels in found.items() if labels} == {}
    finally:
        for node in ("docker", "containerd"):
            lab[node].exec(["rm", "-f", "/var/lib/kubelet/config.json"], check=False)
        lab["docker"].exec(["rm", "-f", "/root/.docker/config.json"], check=False)
