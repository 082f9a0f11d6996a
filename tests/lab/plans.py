"""Plans for tests on the lab: built from the lab's hosts, users and key, so a test names only
what is its own (registry port, container, directories)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.certs import ensure_certificates
from app.plan import NodeSettings, Plan, new_plan, save_plan
from tests.lab.lab import DEPLOY_USER, REGISTRY_IMAGE, Lab, LabHost


def node_plan(directory: Path, lab: Lab, nodes: list[LabHost], *, port: int,
              runtime: str = "docker") -> Plan:
    """A saved ``directory/plan.toml`` (with certificates) whose nodes are ``nodes``, reached as
    rwdeploy with the lab key. The registry itself need not run for onboarding: only its
    reference (registry host IP:port) names the files."""
    registry_ip = lab["registry"].ip
    plan = new_plan(directory / "plan.toml")
    plan.certificate.subject_alt_names = [registry_ip]
    plan.registry.host = registry_ip
    plan.registry.address, plan.registry.port = registry_ip, port
    plan.node_defaults.identity_file = str(lab.key_path)
    plan.node_defaults.ssh_user = DEPLOY_USER
    plan.node_defaults.runtime = runtime
    plan.nodes = [NodeSettings(host=n.ip) for n in nodes]
    ensure_certificates(plan)
    save_plan(plan)
    return plan


def core_plan_text(lab: Lab, nodes: Sequence[str], *, certificate: Mapping[str, object],
                   registry: Mapping[str, object]) -> str:
    """Plan TOML: the registry on the lab's registry host (its lab user, the lab key; the
    certificate names its IP) and the core hosts ``nodes`` (each as its lab user; "plain",
    which has no container runtime, trusts through the OS store). ``certificate`` and
    ``registry`` are the test's own settings."""
    host, key = lab["registry"], str(lab.key_path)
    tables = [
        # the "plain" node trusts the CA in its OS store: that needs name constraints (issue 11)
        _toml_table("[certificate]", {"name_constraints": True, **certificate,
                                      "subject_alt_names": [host.ip]}),
        _toml_table("[registry]", {"host": host.ip, "ssh_user": host.ssh_user,
                                   "identity_file": key, "address": host.ip, **registry}),
        _toml_table("[nodes.defaults]", {"ssh_user": DEPLOY_USER, "identity_file": key}),
        *(_toml_table("[[nodes.hosts]]", _core_node(lab[name])) for name in nodes),
    ]
    return "\n".join(tables)


def registry_plan_text(lab_host: LabHost, /, *, certificate: Mapping[str, object],
                       **settings: object) -> str:
    """Plan TOML for a registry alone on ``lab_host``: its lab user and key, sudo, no auth, the
    lab's registry image, certificates in ``certs`` next to the plan; ``settings`` add or change
    registry settings (port, container_name, data_dir, certs_dir, even host; None leaves one
    out)."""
    registry: dict[str, object] = {
        "host": lab_host.ip, "ssh_user": lab_host.ssh_user, "ssh_port": 22,
        "identity_file": str(lab_host.key_path), "sudo": True, "address": lab_host.ip,
        "image": REGISTRY_IMAGE, "auth": "none", "delete_enabled": False,
    } | settings
    return "\n".join([
        _toml_table("[certificate]", {**certificate, "subject_alt_names": [lab_host.ip],
                                      "directory": "certs"}),
        _toml_table("[registry]", registry),
    ])


def _core_node(host: LabHost) -> dict[str, object]:
    entry: dict[str, object] = {"host": host.ip}
    if host.ssh_user != DEPLOY_USER:
        entry["ssh_user"] = host.ssh_user
    if host.name == "plain":
        entry["os_trust_store"] = True
    return entry


def _toml_table(header: str, values: Mapping[str, object]) -> str:
    """``header`` and its ``key = value`` lines; a None value leaves its key out."""
    # JSON spells strings, numbers, booleans and lists of them as TOML does
    lines = [header, *(f"{key} = {json.dumps(value)}" for key, value in values.items()
                       if value is not None)]
    return "\n".join(lines) + "\n"
