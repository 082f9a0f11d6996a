"""Pure logic of the runtime adapters (app/runtimes/): OS family, detection, containerd config,
registries.yaml."""

from __future__ import annotations

import pytest
import tomllib
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app import runtimes as rt
from app.address import RegistryAddress
from app.runtimes import containerd
from app.runtimes.probe import NodeFacts, detect_runtimes, facts_from_probe
from app.runtimes.registry import adapters

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
UBUNTU = "NAME=Ubuntu\nID=ubuntu\nID_LIKE=debian\n"
ROCKY = 'ID="rocky"\nID_LIKE="rhel centos fedora"\n'
SLES = 'ID="sles"\nID_LIKE="suse"\n'
OPENSUSE = 'ID="opensuse-leap"\nID_LIKE="suse opensuse"\n'

LAB_V2_BASE = """\
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""

# What `containerd config default` prints in 1.6/1.7: empty registry tables, config_path "".
DEFAULT_DUMP_V2 = """\
version = 2
# keep this comment
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""
      [plugins."io.containerd.grpc.v1.cri".registry.auths]
      [plugins."io.containerd.grpc.v1.cri".registry.configs]
      [plugins."io.containerd.grpc.v1.cri".registry.headers]
      [plugins."io.containerd.grpc.v1.cri".registry.mirrors]
"""

V3_WITHOUT = """\
version = 3
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
"""


@pytest.mark.parametrize(
    ("text", "family"),
    [(DEBIAN, "debian"), (UBUNTU, "debian"), (ROCKY, "rhel"), (SLES, "suse"),
     (OPENSUSE, "suse"), ('ID=fedora\n', "rhel"), ("ID=alpine\n", "unknown"), ("", "unknown"),
     ("garbage without equals\nID='unterminated\n", "unknown")],
)
def test_os_family(text: str, family: str) -> None:
    assert rt.os_family(text) == family


@given(st.text())
def test_os_family_never_raises(text: str) -> None:
    assert rt.os_family(text) in ("debian", "rhel", "suse", "unknown")


def test_os_trust_store_paths() -> None:
    debian = rt.os_trust_store("debian", "10.0.0.5:8443")
    assert debian.anchor_path == "/usr/local/share/ca-certificates/regwiz-10.0.0.5_8443.crt"
    assert debian.update_command == ["update-ca-certificates"]
    rhel = rt.os_trust_store("rhel", "reg.example")
    assert rhel.anchor_path == "/etc/pki/ca-trust/source/anchors/regwiz-reg.example.pem"
    assert rhel.update_command == ["update-ca-trust", "extract"]
    with pytest.raises(rt.NodeSetupError) as info:
        rt.os_trust_store("unknown", "reg")
    assert info.value.kind == "unknown-os" and info.value.hint


def test_safe_file_stem_has_no_separators() -> None:
    assert rt.safe_file_stem("[fd00::1]:8443") == "_fd00__1__8443"
    assert "/" not in rt.safe_file_stem("../../etc/passwd")


def test_per_runtime_paths() -> None:
    reg = "198.18.5.2:8443"
    assert rt.docker_ca_path(reg) == "/etc/docker/certs.d/198.18.5.2:8443/ca.crt"
    assert rt.containers_ca_path(reg) == "/etc/containers/certs.d/198.18.5.2:8443/ca.crt"
    assert rt.containerd_ca_path(reg) == "/etc/containerd/certs.d/198.18.5.2:8443/ca.crt"
    assert rt.containerd_hosts_toml_path(reg, "/x") == "/x/198.18.5.2:8443/hosts.toml"
    assert rt.rancher_registries_path("rke2") == "/etc/rancher/rke2/registries.yaml"


def test_hosts_toml_is_what_containerd_expects() -> None:
    reg = "198.18.5.2:8443"
    address = RegistryAddress("198.18.5.2", 8443)
    data = tomllib.loads(rt.render_hosts_toml(address, "/etc/containerd/certs.d/x/ca.crt"))
    assert data["server"] == f"https://{reg}"
    host = data["host"][f"https://{reg}"]
    assert host["ca"] == "/etc/containerd/certs.d/x/ca.crt"
    assert set(host["capabilities"]) == {"pull", "resolve", "push"}


# --------------------------------------------------------------------------- containerd config


def test_lab_config_without_config_path_gets_it_keeping_the_rest() -> None:
    state = rt.parse_containerd_config(LAB_V2_BASE)
    assert (state.version, state.hosts_dirs, state.legacy_registry) == (2, [], False)
    assert rt.effective_hosts_dir(state, (1, 6)) is None
    new = rt.enable_config_path(LAB_V2_BASE, state)
    data = tomllib.loads(new)
    cri = data["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    assert data["plugins"]["io.containerd.internal.v1.opt"]["path"] == "/var/lib/containerd/opt"
    assert new.startswith(LAB_V2_BASE.splitlines()[0])


def test_default_dump_with_empty_config_path_is_filled_in_and_comments_kept() -> None:
    state = rt.parse_containerd_config(DEFAULT_DUMP_V2)
    assert state.hosts_dirs == [] and not state.legacy_registry
    new = rt.enable_config_path(DEFAULT_DUMP_V2, state)
    assert "# keep this comment" in new
    registry = tomllib.loads(new)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]
    assert registry["config_path"] == "/etc/containerd/certs.d"
    assert new.count("config_path") == 1


def test_version_3_uses_the_images_plugin() -> None:
    state = rt.parse_containerd_config(V3_WITHOUT)
    assert state.version == 3
    new = tomllib.loads(rt.enable_config_path(V3_WITHOUT, state))
    assert new["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"] == (
        "/etc/containerd/certs.d")
    assert "io.containerd.grpc.v1.cri" not in new["plugins"]


def test_version_1_uses_the_short_plugin_name() -> None:
    text = '[plugins.cri]\n  stream_server_port = "0"\n'
    state = rt.parse_containerd_config(text)
    assert state.version == 1
    new = tomllib.loads(rt.enable_config_path(text, state))
    assert new["plugins"]["cri"]["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert "version" not in new


@pytest.mark.parametrize(("major", "version", "plugin"), [
    (1, 2, "io.containerd.grpc.v1.cri"), (2, 3, "io.containerd.cri.v1.images"),
    (None, 2, "io.containerd.grpc.v1.cri")])
def test_missing_config_is_created_in_the_binary_s_format(
        major: int | None, version: int, plugin: str) -> None:
    state = rt.parse_containerd_config(None, major)
    assert state.version == version
    new = tomllib.loads(rt.enable_config_path(None, state))
    assert new["version"] == version
    assert new["plugins"][plugin]["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_existing_config_path_is_used_not_replaced() -> None:
    text = LAB_V2_BASE + (
        '  [plugins."io.containerd.grpc.v1.cri".registry]\n'
        '    config_path = "/srv/hosts:/etc/docker/certs.d"\n')
    state = rt.parse_containerd_config(text)
    assert state.hosts_dirs == ["/srv/hosts", "/etc/docker/certs.d"]
    assert rt.effective_hosts_dir(state, (1, 6)) == "/srv/hosts"


def test_containerd_2_2_reads_certs_d_by_default() -> None:
    state = rt.parse_containerd_config(V3_WITHOUT)
    assert rt.effective_hosts_dir(state, (2, 2)) == "/etc/containerd/certs.d"
    assert rt.effective_hosts_dir(state, (2, 1)) is None


def test_legacy_mirrors_are_refused_with_a_hint() -> None:
    text = DEFAULT_DUMP_V2 + (
        '        [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n'
        '          endpoint = ["https://mirror.example"]\n')
    state = rt.parse_containerd_config(text)
    assert state.legacy_registry
    with pytest.raises(rt.NodeSetupError) as info:
        rt.enable_config_path(text, state)
    assert "mirrors" in info.value.message and info.value.hint


def test_docker_engine_containerd_has_cri_disabled() -> None:
    state = rt.parse_containerd_config('disabled_plugins = ["cri"]\n')
    assert state.cri_disabled


@pytest.mark.parametrize("text", ["version = [", "version = 7\n", "plugins = 3\nversion = 2\n"])
def test_broken_configs_raise_node_setup_errors(text: str) -> None:
    with pytest.raises(rt.NodeSetupError):
        state = rt.parse_containerd_config(text)
        rt.enable_config_path(text, state)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_config_text_gives_a_result_or_a_node_setup_error(text: str) -> None:
    try:
        state = rt.parse_containerd_config(text)
        if rt.effective_hosts_dir(state, None) is None:
            new = rt.enable_config_path(text, state)
            assert rt.parse_containerd_config(new).hosts_dirs[0] == "/etc/containerd/certs.d"
    except rt.NodeSetupError:
        pass


@pytest.mark.parametrize(("output", "version"), [
    ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", (1, 6)),
    ("containerd containerd.io v2.2.0 abcdef", (2, 2)), ("", None), ("containerd dev", None)])
def test_containerd_version(output: str, version: tuple[int, int] | None) -> None:
    assert rt.parse_containerd_version(output) == version


# --------------------------------------------------------------------------- registries.yaml

REG = "198.18.5.2:8443"
ADDRESS = RegistryAddress("198.18.5.2", 8443)
CA = "/etc/rancher/k3s/certs.d/198.18.5.2:8443/ca.crt"


def test_registries_yaml_from_nothing() -> None:
    data = yaml.safe_load(rt.merge_registries_yaml(None, ADDRESS, CA) or "")
    assert data == {"mirrors": {REG: {"endpoint": [f"https://{REG}"]}},
                    "configs": {REG: {"tls": {"ca_file": CA}}}}


def test_registries_yaml_keeps_other_registries_and_auth() -> None:
    existing = (
        "mirrors:\n  docker.io:\n    endpoint: [\"https://mirror.example\"]\n"
        "configs:\n  other.example:\n    auth: {username: u, password: p}\n"
        f"  \"{REG}\":\n    auth: {{username: me, password: pw}}\n"
    )
    merged = yaml.safe_load(rt.merge_registries_yaml(existing, ADDRESS, CA) or "")
    assert merged["mirrors"]["docker.io"]["endpoint"] == ["https://mirror.example"]
    assert merged["configs"]["other.example"]["auth"]["username"] == "u"
    assert merged["configs"][REG]["auth"]["username"] == "me"
    assert merged["configs"][REG]["tls"]["ca_file"] == CA


def test_registries_yaml_already_merged_is_unchanged() -> None:
    once = rt.merge_registries_yaml(None, ADDRESS, CA)
    assert once is not None
    assert rt.merge_registries_yaml(once, ADDRESS, CA) is None


def test_registries_yaml_keeps_a_custom_mirror_endpoint() -> None:
    existing = f'mirrors:\n  "{REG}":\n    endpoint: ["https://other:5000"]\n'
    merged = yaml.safe_load(rt.merge_registries_yaml(existing, ADDRESS, CA) or "")
    assert merged["mirrors"][REG]["endpoint"] == ["https://other:5000"]


@pytest.mark.parametrize("text", ["- a list\n", "mirrors: 3\n", "key: [unclosed\n",
                                  f'configs:\n  "{REG}": 5\n'])
def test_registries_yaml_bad_input_is_a_clear_error(text: str) -> None:
    with pytest.raises(rt.NodeSetupError) as info:
        rt.merge_registries_yaml(text, ADDRESS, CA)
    assert "registries.yaml" in info.value.message


# --------------------------------------------------------------------------- probing / detection


def probe(output: str) -> rt.ProbeResult:
    return rt.parse_probe_output(output + "---os-release---\n" + DEBIAN)


def test_parse_probe_output() -> None:
    result = probe(
        "bin.containerd=/usr/bin/containerd\nsocket=/run/containerd/containerd.sock\n"
        "path=/etc/containerd/config.toml\ncontainerd.config_mode=600\n"
        "containerd.version=containerd github.com/containerd/containerd 1.6.20~ds1 x\n"
        "active=k3s\nnoise line\n")
    assert result.binaries == {"containerd": "/usr/bin/containerd"}
    assert result.sockets == {"/run/containerd/containerd.sock"}
    assert containerd.probed_config_mode(result) == 0o600
    assert containerd.probed_version(result) == (1, 6)
    assert result.active_services == {"k3s"}
    assert rt.os_family(result.os_release) == "debian"


def detected(result: rt.ProbeResult, config: str | None, *, read: bool = True) -> list[str]:
    """What the registered adapters detect, given the probe and config.toml (when read)."""
    facts: NodeFacts = facts_from_probe(result)
    if read:
        containerd.remember_config(facts, config)
    return detect_runtimes(facts, adapters())


def test_binaries_alone_are_not_a_runtime() -> None:
    # A machine with docker.io and containerd packages installed but nothing running or set up.
    result = probe("bin.dockerd=/usr/sbin/dockerd\nbin.docker=/usr/bin/docker\n"
                   "bin.containerd=/usr/bin/containerd\n")
    assert detected(result, None) == []


def test_running_sockets_are_runtimes() -> None:
    result = probe("socket=/run/docker.sock\nsocket=/run/containerd/containerd.sock\n"
                   "bin.crio=/usr/bin/crio\npath=/etc/crio\n")
    assert detected(result, LAB_V2_BASE) == [
        "docker", "containerd", "cri-o"]


def test_dockers_own_containerd_is_not_configured() -> None:
    result = probe("socket=/run/docker.sock\nsocket=/run/containerd/containerd.sock\n")
    assert detected(result, 'disabled_plugins = ["cri"]\n') == ["docker"]


def test_k3s_and_rke2_by_binary_or_directory() -> None:
    result = probe("bin.k3s=/usr/local/bin/k3s\npath=/var/lib/rancher/rke2\nactive=rke2-agent\n")
    assert detected(result, None, read=False) == ["k3s", "rke2"]
    assert rt.rancher_service("rke2", result) == "rke2-agent"
    assert rt.rancher_service("k3s", result) is None


@given(st.text())
def test_probe_parser_never_raises(text: str) -> None:
    rt.parse_probe_output(text)
