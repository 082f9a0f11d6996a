"""verify's pure logic: error reading, push/pull stream parsing, per-runtime commands.

The real push/pull and node pulls are in tests/lab/test_verify_lab.py; here the OS-store check
command runs for real against a real registry on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.errors import RegwizError
from app.plan import NodeSettings, Secrets, new_plan
from app.runtimes import registry as runtimes
from app.runtimes.base import NodeCheckSpec
from app.runtimes.containerd import digest_from_ctr_list, remember_config
from app.runtimes.docker import digest_from_docker_pull
from app.runtimes.probe import NodeFacts, ProbeResult
from app.selftest_image import SelftestImage, build_selftest_image
from app.transport.base import CommandResult, Transport
from app.verify import (
    TRUST_HINT,
    CheckState,
    NodeCheck,
    NodeVerifyResult,
    PushPullResult,
    VerifyReport,
    _compare_digests,
    digest_from_repo_digests,
    explain_node_failure,
    key_error_line,
    os_store_check_argv,
    os_store_passed,
    parse_pull_events,
    parse_push_events,
    run_pull_check,
)
from tests.deploy_helpers import free_port, local_registry, make_pki

REG = "198.18.6.2:8443"
DOCKER_X509 = (
    'Error response from daemon: Get "https://198.18.6.2:8443/v2/": x509: certificate signed '
    "by unknown authority"
)
CTR_X509 = (
    "INFO[0000] trying next host  error=\"failed to do request: Head \\\"https://198.18.6.2:8443"
    "/v2/regwiz/selftest/manifests/x\\\": x509: certificate signed by unknown authority\"\n"
    "ctr: failed to resolve reference \"198.18.6.2:8443/regwiz/selftest:x\": failed to do "
    "request: Head \"https://198.18.6.2:8443/v2/regwiz/selftest/manifests/x\": x509: "
    "certificate signed by unknown authority"
)
CURL_X509 = (
    "curl: (60) SSL certificate problem: unable to get local issuer certificate\n"
    "More details here: https://curl.se/docs/sslcerts.html"
)


@pytest.mark.parametrize("output", [DOCKER_X509, CTR_X509, CURL_X509])
def test_x509_errors_say_the_ca_is_not_trusted(output: str) -> None:
    line, hint = explain_node_failure(output, REG)
    assert hint == TRUST_HINT
    assert "x509" in line or "SSL certificate problem" in line
    assert "\n" not in line


def test_other_failures_keep_the_exact_line() -> None:
    line, hint = explain_node_failure(
        'Error response from daemon: Get "https://198.18.6.2:8443/v2/": dial tcp '
        "198.18.6.2:8443: connect: connection refused", REG)
    assert "connection refused" in line and hint and "cannot reach" in hint
    line, hint = explain_node_failure(
        "Error response from daemon: manifest for 198.18.6.2:8443/regwiz/selftest:x not found: "
        "manifest unknown", REG)
    assert "manifest unknown" in line and hint and "gone" in hint
    line, hint = explain_node_failure("x509: certificate is valid for 10.0.0.1, not 198.18.6.2",
                                      REG)
    assert hint and "SANs" in hint
    assert key_error_line("") == "(no output)"


def test_push_stream_digest_and_errors() -> None:
    events: list[dict[str, Any]] = [
        {"status": "The push refers to repository [198.18.6.2:8443/regwiz/selftest]"},
        {"status": "Pushed", "id": "abc"},
        {"status": "check-1: digest: sha256:aa size: 528"},
        {"progressDetail": {}, "aux": {"Tag": "check-1", "Digest": "sha256:aa", "Size": 528}},
    ]
    assert parse_push_events(events) == "sha256:aa"
    with pytest.raises(RegwizError) as failed:
        parse_push_events([{"errorDetail": {"message": "x"}, "error": DOCKER_X509}])
    assert "x509" in failed.value.message and "certs.d" in (failed.value.hint or "")
    with pytest.raises(RegwizError, match="without reporting a digest"):
        parse_push_events([{"status": "Pushed"}])
    with pytest.raises(RegwizError, match="pull failed: denied"):
        parse_pull_events([{"status": "Pulling"}, {"error": "denied"}])


def test_digest_parsers() -> None:
    assert digest_from_docker_pull("check: Pulling from regwiz/selftest\nDigest: sha256:ab\n"
                                   "Status: Downloaded newer image") == "sha256:ab"
    listing = (
        "REF                                   TYPE                                    "
        "DIGEST      SIZE PLATFORMS   LABELS\n"
        f"{REG}/regwiz/selftest:t application/vnd.docker.distribution.manifest.v2+json "
        "sha256:cd 1.2 KiB linux/amd64 -\n"
    )
    assert digest_from_ctr_list(listing, f"{REG}/regwiz/selftest:t") == "sha256:cd"
    assert digest_from_ctr_list(listing, "other") is None
    assert digest_from_repo_digests(
        ["x/y@sha256:00", f"{REG}/regwiz/selftest@sha256:ef"], f"{REG}/regwiz/selftest"
    ) == "sha256:ef"


def test_digests_must_all_agree() -> None:
    result = PushPullResult("r", "s", pushed_digest="sha256:a", pulled_digest="sha256:a",
                            registry_digest="sha256:a")
    _compare_digests(result)
    result.registry_digest = "sha256:b"
    with pytest.raises(RegwizError, match="digests differ"):
        _compare_digests(result)
    result.registry_digest = None
    with pytest.raises(RegwizError, match="registry API none"):
        _compare_digests(result)


def runtime_check_spec(runtime: str, reference: str, *, sudo: bool,
                       have: frozenset[str] = frozenset(), hosts_dir: str | None = None,
                       image_id: str | None = None) -> NodeCheckSpec | None:
    """The pull check the runtime's adapter gives verify (None for names no adapter has)."""
    adapter = runtimes.adapter_for(runtime)
    if adapter is None:
        return None
    facts = NodeFacts("debian", "Debian", ProbeResult(), [runtime], [runtime])
    if hosts_dir is not None:
        remember_config(facts, f'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                               f'config_path = "{hosts_dir}"\n')
    return adapter.pull_check(runtime, facts, reference, sudo=sudo, helpers=have,
                              image_id=image_id)


def test_runtime_specs() -> None:
    ref = f"{REG}/regwiz/selftest:t"
    docker = runtime_check_spec("docker", ref, sudo=False)
    assert docker is not None and docker.pull == ["docker", "pull", ref] and not docker.sudo
    ctr = runtime_check_spec("containerd", ref, sudo=True, hosts_dir="/opt/certs.d")
    assert ctr is not None and ctr.sudo
    assert ctr.pull == ["ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir", "/opt/certs.d",
                        ref]
    assert ctr.cleanup == ["ctr", "-n", "k8s.io", "images", "rm", ref]
    with_id = runtime_check_spec("containerd", ref, sudo=True, image_id="sha256:0f")
    assert with_id is not None and with_id.cleanup is not None
    assert with_id.cleanup[-2:] == [ref, "sha256:0f"]  # the CRI's second name for the image
    crio = runtime_check_spec("cri-o", ref, sudo=True, have=frozenset({"skopeo"}))
    assert crio is not None and crio.pull[:2] == ["skopeo", "inspect"]
    podman = runtime_check_spec("cri-o", ref, sudo=True, have=frozenset({"podman", "skopeo"}))
    assert podman is not None and podman.pull == ["podman", "pull", ref]
    assert runtime_check_spec("k3s", ref, sudo=True).pull[:3] == ["k3s", "crictl", "pull"]  # type: ignore[union-attr]
    assert runtime_check_spec("none", ref, sudo=True) is None


class ScriptedTransport(Transport):
    """Answers commands from a table: enough for the pure pull-check logic."""

    name = "scripted"

    def __init__(self, answers: dict[str, CommandResult]) -> None:
        self.answers = answers
        self.ran: list[list[str]] = []

    def run(self, argv, *, sudo=False, stdin=None, timeout=60.0, check=True):
        self.ran.append(argv)
        for prefix, answer in self.answers.items():
            if " ".join(argv).startswith(prefix):
                return answer
        return CommandResult(argv, 0, "", "")

    def read_file(self, path, *, sudo=False, timeout=30.0):
        return None

    def write_file(self, path, content, **kwargs):
        return False

    def close(self) -> None:
        pass


def test_pull_check_compares_the_node_digest_and_cleans_up() -> None:
    plan = new_plan()
    plan.registry.address, plan.registry.port = "198.18.6.2", 8443
    image = build_selftest_image(REG, tag="t")
    spec = runtime_check_spec("docker", image.reference, sudo=False)
    assert spec is not None
    good = ScriptedTransport({"docker pull": CommandResult([], 0, "Digest: sha256:aa\n", "")})
    check = run_pull_check(good, spec, image, plan, "sha256:aa")
    assert check.passed and check.digest == "sha256:aa"
    assert ["docker", "image", "rm", image.reference] in good.ran
    other = ScriptedTransport({"docker pull": CommandResult([], 0, "Digest: sha256:bb\n", "")})
    check = run_pull_check(other, spec, image, plan, "sha256:aa")
    assert not check.passed and "differs" in check.detail
    failing = ScriptedTransport({"docker pull": CommandResult([], 1, "", DOCKER_X509)})
    check = run_pull_check(failing, spec, image, plan, "sha256:aa")
    assert not check.passed and check.hint == TRUST_HINT and check.detail.startswith("Error")
    assert len(failing.ran) == 1  # nothing to clean up after a failed pull


def test_report_to_dict_is_json() -> None:
    report = VerifyReport(
        PushPullResult("r", "local docker", CheckState.PASSED, "sha256:a", "sha256:a", "sha256:a"),
        [NodeVerifyResult("n1", CheckState.FAILED, ["docker"],
                          [NodeCheck("docker pull", "docker pull r", False, "x509: ...",
                                     TRUST_HINT)])],
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["nodes"][0]["state"] == "failed"
    assert data["push_pull"]["state"] == "passed"
    assert not report.ok and report.failed_nodes[0].host == "n1"


def run_os_store_check_locally(address: str, port: int, env: dict[str, str]) -> tuple[int, str,
                                                                                        str]:
    argv = os_store_check_argv(address, port)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_os_store_check_really_runs_against_a_registry(tmp_path: Path) -> None:
    """The same command regwiz runs on a node, here with curl's CA bundle pointed at a file."""
    pki = make_pki(["127.0.0.1"])
    with local_registry(tmp_path, pki) as registry:
        port = int(registry.base.rsplit(":", 1)[1])
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(pki.ca_pem)
        trusted = {"PATH": "/usr/bin:/bin", "CURL_CA_BUNDLE": str(bundle)}
        code, out, _ = run_os_store_check_locally("127.0.0.1", port, trusted)
        assert os_store_passed(code, out) and out.strip() == "200"
        empty = tmp_path / "empty.pem"
        empty.write_bytes(make_pki(["x"], cn="unrelated").ca_pem)
        untrusted = {"PATH": "/usr/bin:/bin", "CURL_CA_BUNDLE": str(empty)}
        code, out, err = run_os_store_check_locally("127.0.0.1", port, untrusted)
        assert not os_store_passed(code, out)
        assert explain_node_failure(err, "127.0.0.1")[1] == TRUST_HINT
    code, out, err = run_os_store_check_locally("127.0.0.1", free_port(), trusted)
    assert not os_store_passed(code, out) and "cannot reach" in (explain_node_failure(err, "x")[1]
                                                                 or "")


def test_os_store_check_falls_back_to_openssl(tmp_path: Path) -> None:
    """A node without curl: the same command runs openssl s_client against the OS store."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "openssl"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    pki = make_pki(["127.0.0.1"])
    with local_registry(tmp_path, pki) as registry:
        port = int(registry.base.rsplit(":", 1)[1])
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(pki.ca_pem)
        env = {"PATH": str(bin_dir), "SSL_CERT_FILE": str(bundle)}
        code, out, err = run_os_store_check_locally("127.0.0.1", port, env)
        assert os_store_passed(code, out), err
        bundle.write_bytes(make_pki(["x"], cn="unrelated").ca_pem)
        code, out, err = run_os_store_check_locally("127.0.0.1", port, env)
        assert not os_store_passed(code, out)
        assert explain_node_failure(err + out, "127.0.0.1")[1] == TRUST_HINT, err + out


def test_os_store_check_openssl_fallback_argv() -> None:
    argv = os_store_check_argv("registry.example", 443)
    assert argv[-6:] == ["-servername", "registry.example", "-verify_hostname",
                         "registry.example", "-verify_return_error", "-brief"]
    ip_argv = os_store_check_argv("198.18.6.2", 8443)
    assert "-verify_ip" in ip_argv and "-servername" not in ip_argv
    assert os_store_passed(0, "401") and not os_store_passed(0, "404")
    assert os_store_passed(0, "") and not os_store_passed(1, "")


def push_with_login(tmp_path: Path, reference: str, tag: str, ca_pem: bytes,
                    password: str) -> tuple[SelftestImage, Path]:
    """Push the self-test image as user regwiz with skopeo; returns it and the CA folder."""
    image = build_selftest_image(reference, tag=tag)
    archive = tmp_path / "image.tar"
    archive.write_bytes(image.archive)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "ca.crt").write_bytes(ca_pem)
    subprocess.run(
        ["skopeo", "copy", "--dest-cert-dir", str(trust), "--dest-creds",
         f"regwiz:{password}", f"docker-archive:{archive}", f"docker://{image.reference}"],
        check=True, capture_output=True,
    )
    return image, trust


def test_login_check_with_real_curl_and_a_real_htpasswd_registry(tmp_path: Path) -> None:
    """htpasswd mode: the node command sends the password on stdin; run it here for real."""
    from app.htpasswd import htpasswd_line
    from app.verify import curl_user_config, login_check_argv, parse_head_response

    password = 'p"a\\ss w:rd'  # quotes, backslash, space and colon must survive curl's config
    pki = make_pki(["127.0.0.1"])
    with local_registry(tmp_path, pki, htpasswd=htpasswd_line("regwiz", password) + "\n") as reg:
        reference = reg.base.removeprefix("https://")
        image, trust = push_with_login(tmp_path, reference, "auth", pki.ca_pem, password)
        url = f"{reg.base}/v2/regwiz/selftest/manifests/auth"
        argv = login_check_argv(url, str(trust / "ca.crt"))
        assert password not in " ".join(argv)
        ok = subprocess.run(argv, input=curl_user_config("regwiz", password),
                            capture_output=True, timeout=60)
        status, digest = parse_head_response(ok.stdout.decode())
        assert ok.returncode == 0 and status == 200 and digest and digest.startswith("sha256:")
        wrong = subprocess.run(argv, input=curl_user_config("regwiz", "nope"),
                               capture_output=True, timeout=60)
        assert parse_head_response(wrong.stdout.decode())[0] == 401
        missing_ca = subprocess.run(login_check_argv(url, str(tmp_path / "absent.crt")),
                                    input=curl_user_config("regwiz", password),
                                    capture_output=True, timeout=60)
        assert missing_ca.returncode != 0
        assert explain_node_failure(missing_ca.stderr.decode(), reference)[1] == TRUST_HINT


def test_parse_head_response_takes_the_last_answer() -> None:
    from app.verify import parse_head_response

    text = ("HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Basic\r\n\r\n"
            "HTTP/2 200\r\ndocker-content-digest: sha256:ab\r\n\r\n")
    assert parse_head_response(text) == (200, "sha256:ab")
    assert parse_head_response("") == (None, None)


def test_test_tag_is_deleted_with_login_when_the_registry_allows_it(tmp_path: Path) -> None:
    """_delete_test_tag against a real htpasswd registry with deletes on, then with them off."""
    from app import registry_api
    from app.htpasswd import htpasswd_line
    from app.verify import _delete_test_tag

    password = "s3cret"
    pki = make_pki(["127.0.0.1"])
    with local_registry(tmp_path, pki, htpasswd=htpasswd_line("regwiz", password) + "\n",
                        delete_enabled=True) as reg:
        reference = reg.base.removeprefix("https://")
        image, _ = push_with_login(tmp_path, reference, "gone", pki.ca_pem, password)
        plan = new_plan(tmp_path / "plan.toml")
        plan.certificate.directory = str(reg.ca_path.parent)
        plan.registry.address, plan.registry.port = "127.0.0.1", int(reference.rsplit(":")[1])
        plan.registry.delete_enabled = False
        assert "stays in the registry" in _delete_test_tag(plan, ("regwiz", password), image)
        plan.registry.delete_enabled = True
        assert _delete_test_tag(plan, ("regwiz", password), image) == (
            "regwiz/selftest:gone deleted from the registry")
        auth = registry_api.BasicAuth("regwiz", password)
        assert registry_api.manifest_digest(reg.base, reg.ca_path, "regwiz/selftest", "gone",
                                             auth=auth) is None
        refused = _delete_test_tag(plan, ("regwiz", "not-the-Pw-7"), image)
        assert refused.startswith("regwiz/selftest:gone could not be deleted"), refused
        assert "not-the-Pw-7" not in refused and "401" in refused


def test_a_node_whose_host_key_was_rejected_fails_without_a_connection() -> None:
    """Its key was rejected on the wizard's host-key screen: connecting would only ask again.
    (198.18.0.250 answers nothing: a connection attempt would fail as unreachable instead.)"""
    from app.plan import NodeSettings, Secrets
    from app.transport.hostkeys import HostKeyPolicy
    from app.verify import NodeVerifyResult, _NodeJob, _verify_node_safely

    plan = new_plan()
    plan.nodes = [NodeSettings(host="198.18.0.250")]
    node = plan.resolved_nodes()[0]
    events: list[Any] = []
    job = _NodeJob(plan, Secrets(), HostKeyPolicy(), None, None, None,  # type: ignore[arg-type]
                   events.append, lambda: False, rejected=frozenset({"198.18.0.250"}))
    result = NodeVerifyResult(node.host)
    _verify_node_safely(job, node, result)
    assert result.state is CheckState.FAILED
    assert "was rejected" in result.message and result.checks == []


def test_a_cri_runtime_falls_back_to_its_own_pull_and_says_what_was_not_proven() -> None:
    """A node transport that cannot carry a stream to the CRI socket: the containerd node is
    checked with ctr as before, and the check's name says the CRI path was not proven."""
    from app.runtimes.facts import ProbeResult, facts_from_probe
    from app.verify import _NodeJob, _runtime_pull_checks

    plan = new_plan()
    plan.registry.address, plan.registry.port = "198.18.6.2", 8443
    image = build_selftest_image(REG, tag="t")
    facts = facts_from_probe(ProbeResult(sockets={"/run/containerd/containerd.sock"}))
    facts.runtimes = ["containerd"]
    job = _NodeJob(plan, Secrets(), None, image, None, None, lambda _event: None, lambda: False)
    plan.nodes = [NodeSettings(host="n")]
    node = plan.resolved_nodes()[0]
    transport = ScriptedTransport({})

    def ctr(adapter, name, have):  # type: ignore[no-untyped-def]
        return adapter.pull_check(name, facts, image.reference, sudo=True, helpers=have,
                                  image_id=None)

    checks = _runtime_pull_checks(job, node, facts, transport, ctr)
    assert [c.kind for c in checks] == [
        "containerd pull (ctr --hosts-dir /etc/containerd/certs.d) (CRI not reachable: no way "
        "to reach a socket through ScriptedTransport)"]
    assert checks[0].passed  # the fallback's own pull worked (scripted)
    assert transport.ran[-1][:3] == ["ctr", "-n", "k8s.io"]
