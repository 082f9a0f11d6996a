"""Plans for tests on the lab: built from the lab's hosts, users and key, so a test names only
what is its own (registry port, container, directories)."""

from __future__ import annotations

from pathlib import Path

from app.certs import ensure_certificates
from app.plan import NodeSettings, Plan, new_plan, save_plan
from tests.lab.lab import DEPLOY_USER, Lab, LabHost


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
