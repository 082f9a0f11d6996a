"""Pure deploy logic: container spec and its hash, certificate checks, output parsers."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.deploy import (
    LABEL_CERT,
    LABEL_MANAGED,
    LABEL_SETTINGS,
    certificate_problems,
    container_spec,
    describe_container_state,
    parse_df_available_kib,
    parse_port_holders,
    parse_proc_net_tcp,
    sha256_fingerprint,
    unsafe_purge_reason,
)
from app.deploy.probes import foreign_entries, parse_port_range, parse_reserved_ports
from app.plan import Plan, RegistrySettings
from tests.deploy_helpers import make_pki


def plan_with(**changes: object) -> Plan:
    # auth = "none": the registry alone, publishing its port (the default before issue 11)
    registry = dataclasses.replace(RegistrySettings(host="198.18.4.2", address="198.18.4.2",
                                                    auth="none"), **changes)
    return Plan(registry=registry)


def test_spec_matches_the_seed_command() -> None:
    spec = container_spec(plan_with(port=8443, certs_dir="/etc/docker/certs",
                                    data_dir="/registry-image"))
    assert spec.port == 8443 and spec.name == "registry" and spec.image == "registry:2"
    assert spec.volumes == {
        "/etc/docker/certs": {"bind": "/docker-in-certs", "mode": "ro"},
        "/registry-image": {"bind": "/var/lib/registry", "mode": "rw"},
    }
    assert spec.environment["REGISTRY_HTTP_ADDR"] == "0.0.0.0:443"
    assert spec.environment["REGISTRY_HTTP_TLS_CERTIFICATE"] == "/docker-in-certs/tls.crt"
    assert spec.environment["REGISTRY_HTTP_TLS_KEY"] == "/docker-in-certs/tls.key"
    assert spec.environment["REGISTRY_STORAGE_DELETE_ENABLED"] == "false"
    assert spec.environment["OTEL_TRACES_EXPORTER"] == "none"
    assert "REGISTRY_AUTH" not in spec.environment


def test_htpasswd_and_delete_settings() -> None:
    # issue 11: with auth the registry sits behind its nginx front, which does TLS and auth
    spec = container_spec(plan_with(auth="htpasswd", delete_enabled=True))
    env = spec.environment
    assert "REGISTRY_AUTH" not in env and env["REGISTRY_HTTP_ADDR"] == "0.0.0.0:5000"
    assert env["REGISTRY_STORAGE_DELETE_ENABLED"] == "true"
    assert spec.port is None and spec.network == "regwiz-registry"
    assert "/etc/docker/certs" not in spec.volumes


def test_front_config_lists_push_accounts_only() -> None:
    from app.deploy.front import front_spec, render_front_config

    plan = plan_with(auth="htpasswd", bind_address="198.18.4.2")
    text = render_front_config(plan, ["operator", "ci"]).decode()
    assert '"operator" 1;' in text and '"ci" 1;' in text and "cluster" not in text
    assert "server registry:5000;" in text and "auth_basic_user_file /etc/regwiz/htpasswd;" in text
    assert "client_max_body_size 0;" in text and "proxy_read_timeout 900;" in text
    spec = front_spec(plan)
    assert (spec.bind_address, spec.port, spec.network) == ("198.18.4.2", 8443,
                                                            "regwiz-registry")


def test_hash_is_stable_and_follows_every_container_setting() -> None:
    base = container_spec(plan_with()).settings_hash()
    assert base == container_spec(plan_with()).settings_hash()
    variants = [
        {"port": 9443}, {"image": "registry:3"}, {"container_name": "reg2"},
        {"data_dir": "/srv/reg"}, {"certs_dir": "/etc/reg"}, {"auth": "htpasswd"},
        {"delete_enabled": True},
    ]
    hashes = {container_spec(plan_with(**v)).settings_hash() for v in variants}
    assert base not in hashes and len(hashes) == len(variants)
    # SSH settings do not concern the container: no restart for them.
    assert container_spec(plan_with(ssh_port=2222, ssh_user="x")).settings_hash() == base


def test_labels_record_hash_and_fingerprint() -> None:
    spec = container_spec(plan_with())
    labels = spec.labels("AB:CD", "0" * 64)
    assert labels[LABEL_MANAGED] == "true"
    assert labels[LABEL_SETTINGS] == spec.settings_hash()
    assert labels[LABEL_CERT] == "AB:CD"


def test_certificate_checks() -> None:
    pki = make_pki(["198.18.4.2", "registry.lab"])
    assert certificate_problems(pki.cert_pem, pki.key_pem, pki.ca_pem, "198.18.4.2") == []
    assert certificate_problems(pki.cert_pem, pki.key_pem, pki.ca_pem, "registry.lab") == []
    missing = certificate_problems(pki.cert_pem, pki.key_pem, pki.ca_pem, "198.18.4.9")
    assert missing == ["tls.crt has no IP SAN 198.18.4.9"]
    other = make_pki(["198.18.4.2"])
    problems = certificate_problems(pki.cert_pem, other.key_pem, other.ca_pem, "198.18.4.2")
    assert any("not signed by ca.crt" in p for p in problems)
    assert any("tls.key does not belong" in p for p in problems)
    expired = make_pki(["198.18.4.2"], expired=True)
    assert any("expired" in p for p in certificate_problems(
        expired.cert_pem, expired.key_pem, expired.ca_pem, "198.18.4.2"))
    assert certificate_problems(b"junk", b"junk", b"junk", "x")[0].startswith("tls.crt or ca.crt")


def test_wildcard_san_covers_one_label() -> None:
    pki = make_pki(["*.lab.internal"])
    assert certificate_problems(pki.cert_pem, pki.key_pem, pki.ca_pem, "reg.lab.internal") == []
    assert certificate_problems(pki.cert_pem, pki.key_pem, pki.ca_pem, "a.b.lab.internal")


def test_fingerprint_format() -> None:
    value = sha256_fingerprint(make_pki(["x.lab"]).cert_pem)
    assert len(value) == 95 and value.count(":") == 31 and value == value.upper()


def test_parse_ss_output() -> None:
    output = (
        'LISTEN 0 128 198.18.4.2:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))\n'
        "LISTEN 0 4096 0.0.0.0:8443 0.0.0.0:*\n"
        "LISTEN 0 4096 [::]:9000 [::]:*\n"
        "garbage\n"
    )
    ports = parse_port_holders(output)
    assert set(ports) == {22, 8443, 9000}
    assert "sshd" in ports[22] and ports[8443].startswith("listening on 0.0.0.0:8443")


def test_an_outgoing_connection_holds_its_source_port_but_time_wait_does_not() -> None:
    output = (
        'ESTAB 0 0 198.18.4.2:34394 198.18.4.1:443 users:(("curl",pid=7,fd=5))\n'
        "SYN-SENT 0 1 172.17.0.1:40001 172.17.0.2:5000\n"
        "CLOSE-WAIT 1 0 [::1]:40002 [::1]:80\n"
        "TIME-WAIT 0 0 198.18.4.2:40003 198.18.4.1:443\n"
        "FIN-WAIT-2 0 0 198.18.4.2:40004 198.18.4.1:443\n"
        "ESTAB 0 0 198.18.4.2:22 198.18.4.1:50000\n"
        "LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n"
    )
    holders = parse_port_holders(output)
    assert set(holders) == {34394, 40001, 40002, 22}
    assert holders[34394] == ("an outgoing connection (ESTAB) from 198.18.4.2:34394 to "
                              '198.18.4.1:443 users:(("curl",pid=7,fd=5))')
    assert holders[22].startswith("listening on")  # the listener, not its connection


def test_parse_proc_net_tcp() -> None:
    assert parse_proc_net_tcp("hdr\n 0: 0:zz 0:0 0A\n 1: 00000000:0016 0:0 0A\n") == {
        22: "a listening socket on :22"}
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 00000000:20FB 00000000:0000 0A 00000000:00000000\n"
        "   1: 0100007F:0016 0100007F:9C40 01 00000000:00000000\n"
        "   2: 0100007F:865A 0100007F:01BB 01 00000000:00000000\n"
        "   3: 0100007F:9C41 0100007F:01BB 06 00000000:00000000\n"
    )
    assert parse_proc_net_tcp(text) == {
        8443: "a listening socket on :8443",
        22: "an outgoing connection from local port 22",
        34394: "an outgoing connection from local port 34394",
    }


def test_port_range_and_reserved_ports() -> None:
    assert parse_port_range("32768\t60999\n") == (32768, 60999)
    assert parse_port_range("60999 32768") is None
    assert parse_port_range("") is None and parse_port_range("a b") is None
    assert parse_reserved_ports("8443,30000-30002\n") == {8443, 30000, 30001, 30002}
    assert parse_reserved_ports("\n") == set()
    assert parse_reserved_ports("x") is None and parse_reserved_ports("1-y") is None


def test_parse_df() -> None:
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 100 40 60 40% /\n"
    assert parse_df_available_kib(out) == 60
    assert parse_df_available_kib("nonsense") is None


@pytest.mark.parametrize("path", [
    "/", "/etc", "/var/lib/", "relative/dir", "/srv/../etc", "/usr", "//etc", "///etc//",
    "/usr/local", "/etc/kubernetes", "/var/lib/kubelet", "/var/lib/kubelet/pods", "/home/alice",
    "/./etc", "/root"])
def test_purge_refuses_system_paths(path: str) -> None:
    assert unsafe_purge_reason(path) is not None


def test_registry_tree_listing() -> None:
    """What LIST_DATA_DIR prints for a registry data dir, an empty one, and others."""
    registry = "docker/\n.regwiz-registry-data\n//docker\nregistry/\n//docker/registry\nv2/\n"
    assert foreign_entries(registry) == []
    assert foreign_entries("") == []  # empty: fine to remove
    assert foreign_entries(".regwiz-registry-data\n") == []
    assert foreign_entries("passwd\nhosts\ndocker/\n//docker\nregistry/\nlost\n") == [
        "passwd", "hosts", "docker/lost"]
    assert foreign_entries("docker\n") == ["docker"]  # a file or a link, not the tree
    # a name with a newline cannot pass as the marker twice, nor as an empty line
    assert foreign_entries(".regwiz-registry-data\n.regwiz-registry-data\n") == [
        ".regwiz-registry-data"]
    assert foreign_entries("\ndocker/\n") == ["''"]


def test_purge_accepts_dedicated_dirs() -> None:
    assert unsafe_purge_reason("/registry-image") is None
    assert unsafe_purge_reason("/srv/registry/data") is None


def test_docker_errors_become_step_failures_not_tracebacks() -> None:
    import docker.errors
    import requests

    from app.deploy import guarded
    from app.steps import Outcome, Step, run_steps

    def refuses() -> Outcome:
        response = requests.Response()
        response.status_code = 409
        raise docker.errors.APIError("conflict", response, explanation="name already in use")

    def drops() -> Outcome:
        raise requests.ConnectionError("connection aborted")

    results = run_steps([guarded(Step("a", "h", "w", refuses))])
    assert results[0].outcome is Outcome.FAILED
    assert results[0].message == "Docker on h refused: name already in use"
    results = run_steps([guarded(Step("b", "h", "w", drops))])
    assert "talking to Docker on h failed: connection aborted" in results[0].message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_output_parsers_never_raise_on_odd_host_output(text: str) -> None:
    assert isinstance(parse_port_holders(text), dict)
    assert isinstance(parse_proc_net_tcp(text), dict)
    assert parse_port_range(text) is None or len(parse_port_range(text) or ()) == 2
    assert parse_reserved_ports(text) is None or isinstance(parse_reserved_ports(text), set)
    assert parse_df_available_kib(text) is None or parse_df_available_kib(text) >= 0


GARBAGE_TEST_PKI = make_pki(["198.18.4.2"])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=30))
def test_certificate_check_never_raises_on_garbage(blob: bytes, address: str) -> None:
    pki = GARBAGE_TEST_PKI
    for cert, key, ca in ((blob, pki.key_pem, pki.ca_pem), (pki.cert_pem, blob, pki.ca_pem),
                          (pki.cert_pem, pki.key_pem, blob)):
        assert certificate_problems(cert, key, ca, address)


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"State": {"Status": "running", "ExitCode": 0}, "RestartCount": 0}, "running steadily"),
        # restart=always: caught between two exits, Docker has already reset ExitCode
        ({"State": {"Status": "running", "ExitCode": 0}, "RestartCount": 4},
         "running, but restarted 4 times: it keeps exiting"),
        ({"State": {"Status": "restarting", "ExitCode": 1}, "RestartCount": 2},
         "restarting (exit code 1), restarted 2 times"),
        ({"State": {"Status": "exited", "ExitCode": 137}},
         "exited (exit code 137), restarted 0 times"),
        ({}, "unknown, restarted 0 times"),
    ],
)
def test_container_state_in_words(attrs: dict[str, object], expected: str) -> None:
    assert describe_container_state(attrs) == expected


def test_generated_password_shown_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 item 8: a generated registry password is never printed to a file or pipe."""
    import sys
    from pathlib import Path

    from app.commands.output import show_new_credentials
    from app.htpasswd import Credentials

    made = Credentials(registry="r:1", username="regwiz", password="S3cret-generated")
    show_new_credentials(made, Path("/x/creds"))
    assert "S3cret-generated" not in capsys.readouterr().out  # capsys: not a terminal
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    show_new_credentials(made, None)
    assert "S3cret-generated" in capsys.readouterr().out
    # TLS 1.2 at least, wherever TLS ends: the registry itself (auth = "none") or the front.
    spec = container_spec(Plan(registry=RegistrySettings(auth="none")))
    assert spec.environment["REGISTRY_HTTP_TLS_MINIMUMTLS"] == "tls1.2"
    from assets import asset

    assert "ssl_protocols TLSv1.2 TLSv1.3;" in Path(asset("front-nginx.conf")).read_text()
