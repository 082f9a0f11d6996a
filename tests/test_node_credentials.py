"""The pull credential on nodes: merging the files that hold it, what onboarding plans and runs,
how status judges a node, regwiz k8s --account (pure logic and fake nodes; the lab proves it on
real daemons in tests/lab/test_node_credentials_lab.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from app import onboard
from app import runtimes as rt
from app.address import RegistryAddress
from app.cli import main
from app.credential_files import RegistryCredential, credential_path, write_credential
from app.node_credentials import PULL_ACCOUNT, pull_credential
from app.plan import Plan, Secrets, save_plan
from app.runtimes.base import CredentialAction, NodeCredential, NodeSetupError
from app.runtimes.credentials import (
    FORMAT_DOCKER_CONFIG,
    FORMAT_REGISTRIES_YAML,
    KUBELET_CONFIG,
    ROOT_DOCKER_CONFIG,
    CredentialLocation,
    docker_config_auth,
    merge_docker_config,
    merge_registries_auth,
    registries_yaml_auth,
)
from app.status import CredentialState, judge_credential_file, summarize_credentials
from app.verify import kubelet_check_argv, sed_literal
from tests.test_onboard_fakes import FakeFleet, FakeNode, plan_with_ca

REG = "198.18.9.2:8443"
PASSWORD = "pw-Secret/+=42"  # noqa: S105 - a test value
AUTH = base64.b64encode(f"cluster:{PASSWORD}".encode()).decode()
CRED = NodeCredential(REG, "cluster", AUTH)
REMOVE = NodeCredential(REG, "cluster", remove=True)
OTHER = {"other.example:5000": {"auth": "b3RoZXI6eA=="}}
K3S_YAML = "/etc/rancher/k3s/registries.yaml"


# --------------------------------------------------------------------------- merging


def test_docker_config_merge_keeps_other_entries_and_keys_then_is_unchanged() -> None:
    existing = json.dumps({"auths": OTHER, "credHelpers": {"gcr.io": "gcloud"}}).encode()
    merged = merge_docker_config(existing, CRED, KUBELET_CONFIG)
    assert merged is not None
    data = json.loads(merged)
    assert data == {"auths": {**OTHER, REG: {"auth": AUTH}}, "credHelpers": {"gcr.io": "gcloud"}}
    assert merge_docker_config(merged, CRED, KUBELET_CONFIG) is None
    # compared parsed: another layout of the same content is not rewritten
    assert merge_docker_config(json.dumps(data, separators=(",", ":")).encode(), CRED,
                               KUBELET_CONFIG) is None
    assert docker_config_auth(merged, REG) == AUTH


def test_docker_config_merge_into_nothing_and_replace_an_old_credential() -> None:
    first = merge_docker_config(None, CRED, KUBELET_CONFIG)
    assert first is not None and json.loads(first) == {"auths": {REG: {"auth": AUTH}}}
    newer = NodeCredential(REG, "cluster", base64.b64encode(b"cluster:new").decode())
    second = merge_docker_config(first, newer, KUBELET_CONFIG)
    assert second is not None and docker_config_auth(second, REG) == newer.auth


def test_docker_config_removal_takes_only_our_entry() -> None:
    ours = json.dumps({"auths": {**OTHER, REG: {"auth": AUTH}}}).encode()
    removed = merge_docker_config(ours, REMOVE, KUBELET_CONFIG)
    assert removed is not None and json.loads(removed) == {"auths": OTHER}
    assert merge_docker_config(removed, REMOVE, KUBELET_CONFIG) is None
    operator = base64.b64encode(b"operator:x").decode()
    someone_elses = json.dumps({"auths": {REG: {"auth": operator}}}).encode()
    assert merge_docker_config(someone_elses, REMOVE, ROOT_DOCKER_CONFIG) is None


@pytest.mark.parametrize("broken", [b"{not json", b"[1, 2]", b'{"auths": []}'])
def test_a_broken_docker_config_is_a_node_problem_not_overwritten(broken: bytes) -> None:
    with pytest.raises(NodeSetupError):
        merge_docker_config(broken, CRED, KUBELET_CONFIG)


def test_registries_yaml_auth_merge_keeps_tls_mirrors_and_others() -> None:
    existing = yaml.safe_dump({
        "mirrors": {"docker.io": {"endpoint": ["https://m.example"]}},
        "configs": {REG: {"tls": {"ca_file": "/ca.crt"}},
                    "other:5000": {"auth": {"username": "u", "password": "p"}}},
    })
    merged = merge_registries_auth(existing, CRED)
    assert merged is not None
    data = yaml.safe_load(merged)
    assert data["configs"][REG] == {"tls": {"ca_file": "/ca.crt"},
                                    "auth": {"username": "cluster", "password": PASSWORD}}
    assert data["configs"]["other:5000"]["auth"] == {"username": "u", "password": "p"}
    assert data["mirrors"]["docker.io"]["endpoint"] == ["https://m.example"]
    assert merge_registries_auth(merged, CRED) is None
    assert registries_yaml_auth(merged.encode(), REG) == AUTH
    removed = merge_registries_auth(merged, REMOVE)
    assert removed is not None
    assert yaml.safe_load(removed)["configs"][REG] == {"tls": {"ca_file": "/ca.crt"}}
    assert merge_registries_auth(removed, REMOVE) is None


# --------------------------------------------------------------------------- the plan's credential


def htpasswd_plan(tmp_path: Path, hosts: list[str], **fields: object) -> Plan:
    plan = plan_with_ca(tmp_path, hosts, **fields)
    plan.registry.auth = "htpasswd"
    save_plan(plan)
    return plan


def write_cluster(plan: Plan, password: str = PASSWORD) -> None:
    write_credential(credential_path(plan, PULL_ACCOUNT),
                     RegistryCredential(REG, PULL_ACCOUNT, password))


def test_pull_credential_follows_the_plan_and_the_file(tmp_path: Path) -> None:
    plan = htpasswd_plan(tmp_path, ["n"])
    assert pull_credential(plan) is None  # no credentials/ yet: a plan from before accounts
    write_cluster(plan)
    wanted = pull_credential(plan)
    assert wanted is not None and not wanted.remove and wanted.auth == AUTH
    assert PASSWORD not in repr(wanted)
    revoked = pull_credential(plan, revoked=True)
    assert revoked is not None and revoked.remove and revoked.auth == ""
    credential_path(plan, PULL_ACCOUNT).unlink()
    gone = pull_credential(plan)
    assert gone is not None and gone.remove and gone.username == PULL_ACCOUNT
    plan.registry.auth = "none"
    assert pull_credential(plan) is None


# --------------------------------------------------------------------------- planning


def facts(probe: str) -> rt.NodeFacts:
    return rt.probe_node(FakeNode("n", probe), sudo=True, runtime="auto")


def described(actions: list[onboard.NodeAction]) -> list[str]:
    return [" ".join(a.argv) if isinstance(a, onboard.CommandAction) else
            f"{type(a).__name__} {a.path}" for a in actions]


def test_every_node_gets_the_kubelet_file_and_each_runtime_its_own() -> None:
    address = RegistryAddress("198.18.9.2", 8443)
    docker = onboard.plan_node_actions(facts("socket=/run/docker.sock\n"), address=address,
                                       ca_pem=b"CA", os_trust_store=False, credential=CRED)
    assert described(docker)[1:] == [f"CredentialAction {ROOT_DOCKER_CONFIG}",
                                     f"CredentialAction {KUBELET_CONFIG}"]
    k3s = onboard.plan_node_actions(facts("bin.k3s=/k3s\nactive=k3s\n"), address=address,
                                    ca_pem=b"CA", os_trust_store=False, credential=CRED)
    # the credential goes into registries.yaml before the restart that makes k3s read it
    assert described(k3s)[1:] == [f"RegistriesYamlAction {K3S_YAML}",
                                  f"CredentialAction {K3S_YAML}", "systemctl restart k3s",
                                  f"CredentialAction {KUBELET_CONFIG}"]
    plain = onboard.plan_node_actions(facts(""), address=address, ca_pem=b"CA",
                                      os_trust_store=True, credential=CRED)
    assert described(plain)[-1] == f"CredentialAction {KUBELET_CONFIG}"
    without = onboard.plan_node_actions(facts("socket=/run/docker.sock\n"), address=address,
                                        ca_pem=b"CA", os_trust_store=False)
    assert not any(isinstance(a, CredentialAction) for a in without)


# --------------------------------------------------------------------------- running on fake nodes


def onboard_fake(plan: Plan, node: FakeNode, *, dry_run: bool = False) -> onboard.NodeResult:
    return onboard.onboard_nodes(plan, Secrets(), host_key_policy=None,  # type: ignore[arg-type]
                                 connect=FakeFleet({node.name: node}), dry_run=dry_run).results[0]


def test_install_rerun_rotate_and_revoke_on_a_k3s_node(tmp_path: Path) -> None:
    node = FakeNode("k", "bin.k3s=/k3s\nactive=k3s\n",
                    files={KUBELET_CONFIG: json.dumps({"auths": OTHER}).encode()})
    plan = htpasswd_plan(tmp_path, ["k"])
    write_cluster(plan)
    dry = onboard_fake(plan, node, dry_run=True)
    shown = "\n".join(dry.dry_run_lines)
    assert KUBELET_CONFIG in shown and node.writes == []
    assert PASSWORD not in shown and AUTH not in shown

    first = onboard_fake(plan, node)
    assert first.status == "changed" and first.restarted == ["k3s"]
    assert json.loads(node.files[KUBELET_CONFIG])["auths"] == {**OTHER, REG: {"auth": AUTH}}
    assert registries_yaml_auth(node.files[K3S_YAML], REG) == AUTH
    assert first.credential.startswith("sha256:")
    saved = onboard.results_path(plan).read_text()
    assert PASSWORD not in saved and AUTH not in saved

    node.commands.clear()
    assert onboard_fake(plan, node).status == "unchanged"
    assert ["systemctl", "restart", "k3s"] not in node.commands

    write_cluster(plan, "rotated-password")
    rotated = onboard_fake(plan, node)
    assert rotated.status == "changed" and rotated.restarted == ["k3s"]  # k3s re-reads it
    assert rotated.credential != first.credential
    # no backup of a file that holds a credential
    assert not any(".regwiz-backup-" in path and "kubelet" in path for path in node.files)

    credential_path(plan, PULL_ACCOUNT).unlink()
    revoked = onboard_fake(plan, node)
    assert revoked.status == "changed" and revoked.credential == "removed"
    assert json.loads(node.files[KUBELET_CONFIG]) == {"auths": OTHER}
    assert registries_yaml_auth(node.files[K3S_YAML], REG) is None
    assert onboard_fake(plan, node).status == "unchanged"


def test_a_plan_without_auth_touches_no_credential_file(tmp_path: Path) -> None:
    node = FakeNode("d", "socket=/run/docker.sock\n")
    plan = plan_with_ca(tmp_path, ["d"])
    plan.registry.auth = "none"  # said explicitly: a plan without the key now means htpasswd
    write_cluster(plan)
    result = onboard_fake(plan, node)
    assert result.status == "changed" and result.credential == ""
    assert KUBELET_CONFIG not in node.files and ROOT_DOCKER_CONFIG not in node.files


# --------------------------------------------------------------------------- status


KUBELET = CredentialLocation(KUBELET_CONFIG, FORMAT_DOCKER_CONFIG, "kubelet")
YAML = CredentialLocation(K3S_YAML, FORMAT_REGISTRIES_YAML, "k3s")


def test_status_judges_each_file_by_fingerprint_and_never_shows_the_secret() -> None:
    current = json.dumps({"auths": {REG: {"auth": AUTH}}}).encode()
    old = json.dumps({"auths": {REG: {"auth": base64.b64encode(b"cluster:old").decode()}}})
    judged = [
        judge_credential_file(KUBELET, current, CRED),
        judge_credential_file(KUBELET, old.encode(), CRED),
        judge_credential_file(KUBELET, None, CRED),
        judge_credential_file(YAML, yaml.safe_dump({"configs": {REG: {"auth": {
            "username": "cluster", "password": PASSWORD}}}}).encode(), CRED),
    ]
    assert [f.state for f in judged] == [CredentialState.CURRENT, CredentialState.STALE,
                                         CredentialState.MISSING, CredentialState.CURRENT]
    assert judged[0].fingerprint == CRED.fingerprint
    text = repr(judged)
    assert PASSWORD not in text and AUTH not in text
    assert summarize_credentials(judged) is CredentialState.STALE
    assert summarize_credentials([judged[0], judged[3]]) is CredentialState.CURRENT
    left = judge_credential_file(KUBELET, current, REMOVE)
    gone = judge_credential_file(KUBELET, json.dumps({"auths": OTHER}).encode(), REMOVE)
    assert (left.state, gone.state) == (CredentialState.LEFT, CredentialState.REMOVED)
    assert summarize_credentials([gone]) is CredentialState.REMOVED


# --------------------------------------------------------------------------- verify's node script


def test_the_kubelet_check_carries_no_secret_and_matches_the_registry_literally() -> None:
    argv = kubelet_check_argv(KUBELET_CONFIG, "[fd00::1]:5000", "https://x/v2/", None)
    assert argv[:2] == ["sh", "-c"] and "[fd00::1]:5000" not in argv
    assert sed_literal("10.0.0.5:8443") == r"10\.0\.0\.5:8443"
    assert sed_literal("[fd00::1]:5000") == r"\[fd00::1\]:5000"


# --------------------------------------------------------------------------- regwiz k8s


def test_k8s_secret_from_the_pull_account_file(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    plan = htpasswd_plan(tmp_path, ["n"])
    write_cluster(plan)
    assert main(["k8s", "--plan", str(plan.path)]) == 0
    secret, pod = yaml.safe_load_all(capsys.readouterr().out)
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"][REG]["auth"] == AUTH
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regwiz-registry"}]
    assert main(["k8s", "--plan", str(plan.path), "--account", "ci"]) == 2
    assert "credentials/ci.json" in capsys.readouterr().err
