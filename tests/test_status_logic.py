"""regwiz status without the lab: a real registry binary on 127.0.0.1, real certificates.

Node trust and the container state are covered by tests/lab/test_verify_lab.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from app.address import RegistryAddress
from app.plan import Plan, Secrets, new_plan
from app.runtimes.containerd import remember_config
from app.runtimes.probe import NodeFacts, parse_probe_output
from app.runtimes.registry import ca_locations as node_ca_paths
from app.selftest_image import build_selftest_image
from app.status import (
    ContainerStatus,
    NodeCAFile,
    NodeTrustStatus,
    TrustState,
    apply_container_attrs,
    certificate_status_from_pem,
    collect_catalog,
    collect_status,
    judge_ca_file,
    parse_du_output,
    pem_fingerprints,
    registry_health,
    served_certificate,
    summarize_node,
)
from tests.deploy_helpers import free_port, local_registry, make_pki


def plan_for(registry_base: str, cert_dir: Path, data_dir: Path) -> Plan:
    port = int(registry_base.rsplit(":", 1)[1])
    plan = new_plan(cert_dir.parent / "plan.toml")
    plan.certificate.directory = str(cert_dir)
    plan.registry.address, plan.registry.port = "127.0.0.1", port
    plan.registry.host = "local"
    plan.registry.data_dir = str(data_dir)
    plan.registry.container_name = "regwiz-status-test-nonexistent"
    return plan


def push_selftest(registry_base: str, ca_path: Path, tmp_path: Path, tag: str) -> None:
    """Push the in-memory self-test image with the real skopeo (it reads ca.crt from a dir)."""
    reference = registry_base.removeprefix("https://")
    image = build_selftest_image(reference, tag=tag)
    archive = tmp_path / f"{tag}.tar"
    archive.write_bytes(image.archive)
    # skopeo would take ca.key next to ca.crt for a client key: give it ca.crt alone.
    trust = tmp_path / "skopeo-certs"
    trust.mkdir(exist_ok=True)
    (trust / "ca.crt").write_bytes(ca_path.read_bytes())
    subprocess.run(
        ["skopeo", "copy", "--dest-cert-dir", str(trust), f"docker-archive:{archive}",
         f"docker://{image.reference}"],
        check=True, capture_output=True,
    )


def test_health_catalog_and_served_certificate_from_a_real_registry(tmp_path: Path) -> None:
    pki = make_pki(["127.0.0.1"])
    with local_registry(tmp_path, pki) as registry:
        plan = plan_for(registry.base, registry.ca_path.parent, tmp_path)
        push_selftest(registry.base, registry.ca_path, tmp_path, "one")
        push_selftest(registry.base, registry.ca_path, tmp_path, "two")
        health = registry_health(plan, registry.ca_path)
        assert health.reachable and health.tls_valid and health.http_status == 200
        assert health.latency_ms is not None and health.api_version == "registry/2.0"
        catalog = collect_catalog(plan, registry.ca_path, None)
        assert catalog.error is None
        assert catalog.repositories == {"regwiz/selftest": ["one", "two"]}
        served = served_certificate("127.0.0.1", plan.registry.port)
        assert served.error is None and served.days_left in (29, 30)
        assert served.fingerprint == pem_fingerprints(pki.cert_pem)[0]


def test_another_ca_means_tls_invalid(tmp_path: Path) -> None:
    with local_registry(tmp_path, make_pki(["127.0.0.1"])) as registry:
        other = make_pki(["127.0.0.1"], cn="another CA")
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "ca.crt").write_bytes(other.ca_pem)
        plan = plan_for(registry.base, tmp_path / "other", tmp_path)
        health = registry_health(plan, tmp_path / "other" / "ca.crt")
        assert not health.reachable and not health.tls_valid
        assert health.error and "x509" in health.error


def test_collect_status_never_raises_and_reports_each_part(tmp_path: Path) -> None:
    """Registry host "local" without a Docker daemon: the container part fails on its own."""
    data_dir = tmp_path / "data-dir"
    data_dir.mkdir()
    (data_dir / "blob").write_bytes(b"x" * 5000)
    with local_registry(tmp_path, make_pki(["127.0.0.1"])) as registry:
        plan = plan_for(registry.base, registry.ca_path.parent, data_dir)
        report = collect_status(plan, Secrets(), host_key_policy=None)
    assert report.registry.reachable and report.registry.tls_valid
    assert report.served_matches_local is True
    assert report.ca_certificate.days_left is not None and report.ca_certificate.days_left > 300
    assert report.server_certificate.source == "served by the registry"
    assert report.disk.used_bytes is not None and report.disk.used_bytes >= 5000
    assert not report.container.found and report.container.error
    assert not report.healthy
    assert report.nodes == []
    data = json.loads(json.dumps(report.to_dict()))
    for key in ("registry", "server_certificate", "ca_certificate", "catalog", "container",
                "disk", "nodes", "healthy", "collected_at"):
        assert key in data
    assert data["container"]["found"] is False


def test_collect_status_with_nothing_running(tmp_path: Path) -> None:
    pki = make_pki(["127.0.0.1"])
    certs = pki.write(tmp_path / "certs")
    plan = plan_for(f"https://127.0.0.1:{free_port()}", certs, tmp_path / "missing-dir")
    report = collect_status(plan, Secrets(), host_key_policy=None, include_nodes=False)
    assert not report.registry.reachable and "refused" in (report.registry.error or "")
    assert report.server_certificate.source == "tls.crt"  # fell back to the local file
    assert report.served_matches_local is None
    assert report.catalog.error and report.disk.error and report.nodes is None


def test_certificate_status_and_bad_pem() -> None:
    pki = make_pki(["r.example"])
    ok = certificate_status_from_pem(pki.ca_pem, "ca.crt")
    assert ok.error is None and ok.days_left is not None and 360 <= ok.days_left <= 365
    assert ok.subject == "CN=regwiz test CA" and not ok.expiring
    bad = certificate_status_from_pem(b"garbage", "ca.crt")
    assert bad.error and bad.days_left is None


def test_judge_ca_file() -> None:
    current, other = make_pki(["r"]), make_pki(["r"], cn="old CA")
    fp = (pem_fingerprints(current.ca_pem)[0],)
    assert judge_ca_file("docker", "/p", current.ca_pem, fp).state is TrustState.MATCH
    stale = judge_ca_file("docker", "/p", other.ca_pem, fp)
    assert stale.state is TrustState.MISMATCH and stale.detail == "another CA (stale)"
    assert judge_ca_file("docker", "/p", None, fp).state is TrustState.MISSING
    assert judge_ca_file("docker", "/p", b"junk", fp).state is TrustState.MISMATCH
    bundle = other.ca_pem + current.ca_pem
    assert judge_ca_file("os-store", "/p", bundle, fp).state is TrustState.MATCH


def test_judge_ca_file_during_a_rotation_wants_both_cas() -> None:
    old, new = make_pki(["r"], cn="old CA"), make_pki(["r"])
    both = (pem_fingerprints(old.ca_pem)[0], pem_fingerprints(new.ca_pem)[0])
    held = judge_ca_file("containerd", "/p", old.ca_pem + new.ca_pem, both)
    assert held.state is TrustState.MATCH and "rotation" in held.detail
    only_old = judge_ca_file("containerd", "/p", old.ca_pem, both)
    assert only_old.state is TrustState.MISMATCH and "lacks the new CA" in only_old.detail
    assert judge_ca_file("docker", "/p", new.ca_pem, both).state is TrustState.MISMATCH
    # after the finish: the new CA alone is wanted, and a node holding it is current
    assert judge_ca_file("docker", "/p", new.ca_pem, both[1:]).state is TrustState.MATCH


def test_summarize_node_picks_the_worst_state() -> None:
    status = NodeTrustStatus("n1", files=[
        NodeCAFile("docker", "/a", TrustState.MATCH),
        NodeCAFile("containerd", "/b", TrustState.MISMATCH),
        NodeCAFile("os-store", "/c", TrustState.MISSING),
    ])
    summarize_node(status)
    assert status.state is TrustState.MISMATCH and "/b" in status.message
    assert status.hint and "onboard" in status.hint
    empty = NodeTrustStatus("n2")
    summarize_node(empty)
    assert empty.state is TrustState.MISSING
    good = NodeTrustStatus("n3", files=[NodeCAFile("docker", "/a", TrustState.MATCH)])
    summarize_node(good)
    assert good.state is TrustState.MATCH


def facts(probe_lines: str, config: str | None, runtimes: list[str]) -> NodeFacts:
    probe = parse_probe_output(probe_lines + "\n---os-release---\nID=debian\n")
    found = NodeFacts("debian", "Debian", probe, runtimes, runtimes)
    if config is not None:
        remember_config(found, config)
    return found


def test_node_ca_paths_follow_each_runtime() -> None:
    config = (
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
        'config_path = "/etc/containerd/certs.d"\n'
    )
    found = node_ca_paths(
        facts("bin.docker=/usr/bin/docker", config, ["docker", "containerd", "cri-o", "podman",
                                                     "k3s"]),
        RegistryAddress("198.18.6.2", 8443),
        os_trust_store=True,
    )
    assert found == [
        ("docker", "/etc/docker/certs.d/198.18.6.2:8443/ca.crt"),
        ("containerd", "/etc/containerd/certs.d/198.18.6.2:8443/ca.crt"),
        ("cri-o", "/etc/containers/certs.d/198.18.6.2:8443/ca.crt"),
        ("k3s", "/etc/rancher/k3s/certs.d/198.18.6.2:8443/ca.crt"),
        ("os-store", "/usr/local/share/ca-certificates/regwiz-198.18.6.2_8443.crt"),
    ]


def test_node_ca_paths_use_a_custom_hosts_dir() -> None:
    config = (
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
        'config_path = "/opt/certs.d"\n'
    )
    found = node_ca_paths(facts("", config, ["containerd"]), RegistryAddress("reg", 5000),
                          os_trust_store=False)
    assert found == [("containerd", "/opt/certs.d/reg:5000/ca.crt")]


def test_container_attrs_and_du() -> None:
    container = ContainerStatus("registry")
    apply_container_attrs(container, {
        "RestartCount": 2,
        "State": {"Status": "running", "Running": True, "StartedAt": "2026-01-01T00:00:00Z"},
        "Config": {"Image": "registry:2"},
    })
    assert container.found and container.running and container.restart_count == 2
    assert container.image == "registry:2"
    assert parse_du_output("123456\t/registry-image\n") == 123456
    assert parse_du_output("du: cannot access") is None


@pytest.mark.parametrize("size", [0, 1023, 1024, 5 * 1024**3])
def test_format_bytes(size: int) -> None:
    from app.status import format_bytes

    text = format_bytes(size)
    assert text.split()[1] in ("B", "KiB", "MiB", "GiB")



def test_a_served_certificate_older_than_the_plan_is_out_of_date(tmp_path: Path) -> None:
    import io

    from app.certs import CertFiles, ensure_certificates
    from app.commands.status import print_status
    from tests.deploy_helpers import Pki

    plan = new_plan(tmp_path / "plan.toml")
    plan.certificate.directory = str(tmp_path / "certs")
    plan.certificate.subject_alt_names = ["127.0.0.1"]
    plan.registry.address = "127.0.0.1"
    ensure_certificates(plan)
    files = CertFiles(plan.cert_dir)
    pki = Pki(files.ca_crt.read_bytes(), files.ca_key.read_bytes(), files.tls_crt.read_bytes(),
              files.tls_key.read_bytes())
    with local_registry(tmp_path, pki) as registry:
        plan.registry.port = int(registry.base.rsplit(":", 1)[1])
        assert served_certificate("127.0.0.1", plan.registry.port, plan=plan).plan_differences == []
        plan.certificate.subject_alt_names.append("mirror.example.internal")
        served = served_certificate("127.0.0.1", plan.registry.port, plan=plan)
        assert served.out_of_date
        assert served.plan_differences == [
            "SAN mirror.example.internal is in the plan but not in the certificate"
        ]
        report = collect_status(plan, Secrets(), host_key_policy=None, include_nodes=False)
        assert report.server_certificate.out_of_date and not report.healthy
        printed = io.StringIO()
        print_status(report, printed)
        assert "out of date with the plan:" in printed.getvalue()
        assert "mirror.example.internal is in the plan but not" in printed.getvalue()


def test_status_shows_the_auth_mode_and_accounts_never_their_secrets(tmp_path: Path) -> None:
    import io

    from app.accounts import AccountStore
    from app.commands.status import print_status
    from app.status import _accounts

    plan = new_plan(tmp_path / "plan.toml")
    plan.registry.auth = "htpasswd"
    store = AccountStore(plan)
    store.ensure_defaults()
    store.rotate("cluster")
    collected = _accounts(plan)
    names = [(a.name, a.role, bool(a.rotated)) for a in collected["accounts"]]
    assert names == [("operator", "push", False), ("cluster", "pull", True)]
    report = collect_status(plan, Secrets(), host_key_policy=None, include_nodes=False)
    assert report.auth == "htpasswd" and [a.name for a in report.accounts] == [
        "operator", "cluster"]
    printed = io.StringIO()
    print_status(report, printed)
    text = printed.getvalue()
    assert "auth          htpasswd" in text
    assert "operator (push), created" in text and "cluster (pull)" in text
    for name in ("operator", "cluster"):
        secret = store.credential(name)
        assert secret is not None and secret.password not in text
        assert secret.password not in json.dumps(report.to_dict())
    plan.registry.auth = "none"
    bare = collect_status(plan, Secrets(), host_key_policy=None, include_nodes=False)
    printed = io.StringIO()
    print_status(bare, printed)
    assert "none: anyone who can reach the port can push" in printed.getvalue()
    assert bare.accounts == []
