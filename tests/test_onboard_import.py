"""Adding nodes from a file of [user@]host[:port] lines and from kubectl's node list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import RegwizError, UsageError
from app.nodes_import import (
    NodeEntry,
    add_nodes,
    internal_ips_from_kubectl_json,
    parse_node_line,
    parse_nodes_text,
    read_nodes_file,
)
from app.plan import NodeSettings, new_plan
from app.transport.base import CommandResult


@pytest.mark.parametrize(("line", "entry"), [
    ("10.0.0.5", NodeEntry("10.0.0.5")),
    ("deploy@10.0.0.5", NodeEntry("10.0.0.5", "deploy")),
    ("deploy@node-1.example:2222", NodeEntry("node-1.example", "deploy", 2222)),
    ("node1:22", NodeEntry("node1", None, 22)),
    ("fd00::5", NodeEntry("fd00::5")),
    ("[fd00::5]:2200", NodeEntry("fd00::5", None, 2200)),
    ("ops@[fd00::5]", NodeEntry("fd00::5", "ops")),
])
def test_valid_lines(line: str, entry: NodeEntry) -> None:
    assert parse_node_line(line) == entry


@pytest.mark.parametrize(("line", "words"), [
    ("node:99999", "port"), ("node:abc", "port"), ("bad user@node", "user"),
    ("node;rm -rf /", "host"), ("[fd00::5", "]"), ("[fd00::5]x", "PORT"), ("local", "local"),
    ("@node", "user"), ("node:", "port"),
])
def test_invalid_lines_say_what_is_wrong(line: str, words: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_node_line(line)
    assert words in str(info.value)


def test_file_with_comments_blank_lines_and_duplicates() -> None:
    text = "# cluster A\n\n10.0.0.1\n  root@10.0.0.2:2222   # control plane\n10.0.0.1\n"
    assert parse_nodes_text(text) == [NodeEntry("10.0.0.1"), NodeEntry("10.0.0.2", "root", 2222)]


def test_every_bad_line_is_reported_with_its_number() -> None:
    with pytest.raises(UsageError) as info:
        parse_nodes_text("ok-host\nnode:0\nfine\nx y\n", source="nodes.txt")
    lines = info.value.message.splitlines()
    assert [line.split(":")[0] for line in lines] == ["nodes.txt line 2", "nodes.txt line 4"]
    assert info.value.exit_code == 2


@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        entries = parse_nodes_text(text)
    except UsageError:
        return
    for entry in entries:
        assert entry.host and not any(c.isspace() for c in entry.host)


def test_read_nodes_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_nodes_file(tmp_path / "missing.txt")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_nodes_file(binary)
    good = tmp_path / "nodes.txt"
    good.write_text("a\nb:2022\n")
    assert read_nodes_file(good) == [NodeEntry("a"), NodeEntry("b", None, 2022)]


KUBECTL = {
    "apiVersion": "v1",
    "items": [
        {"metadata": {"name": "cp"}, "status": {"addresses": [
            {"type": "Hostname", "address": "cp"},
            {"type": "InternalIP", "address": "10.0.0.10"},
            {"type": "ExternalIP", "address": "203.0.113.7"}]}},
        {"metadata": {"name": "w1"}, "status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.11"},
            {"type": "InternalIP", "address": "fd00::11"}]}},
        {"metadata": {"name": "no-ip"}, "status": {}},
        {"metadata": {"name": "evil"}, "status": {"addresses": [
            {"type": "InternalIP", "address": "1.2.3.4; reboot"}]}},
    ],
}


def test_internal_ips_from_kubectl() -> None:
    assert internal_ips_from_kubectl_json(json.dumps(KUBECTL)) == ["10.0.0.10", "10.0.0.11"]


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"items": 3}', '{"kind": "List"}'])
def test_bad_kubectl_output_is_a_clear_error(text: str) -> None:
    with pytest.raises(RegwizError) as info:
        internal_ips_from_kubectl_json(text)
    assert "kubectl" in info.value.message and info.value.hint


def test_add_nodes_skips_known_hosts() -> None:
    plan = new_plan()
    plan.nodes = [NodeSettings(host="a")]
    added = add_nodes(plan, [NodeEntry("a"), NodeEntry("b", "ops", 2222)])
    assert added == ["b"]
    assert plan.nodes[1] == NodeSettings(host="b", ssh_user="ops", ssh_port=2222)


def test_kubectl_runs_on_the_named_host_with_the_node_defaults(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import app.connections
    from app.nodes_import import KUBECTL_SCRIPT, kubectl_host, nodes_via_kubectl
    from app.plan import Secrets
    from tests.test_onboard_fakes import FakeNode

    plan = new_plan()
    plan.node_defaults.ssh_user, plan.node_defaults.sudo = "ops", True
    node = kubectl_host(plan, NodeEntry("cp-1", port=2222))
    assert (node.host, node.ssh_user, node.ssh_port, node.sudo) == ("cp-1", "ops", 2222, True)
    assert (node.runtime, node.os_trust_store) == ("none", False)
    assert kubectl_host(plan, NodeEntry("cp-1", "root")).ssh_user == "root"

    class KubectlHost(FakeNode):
        def run(self, argv, **kwargs):  # type: ignore[no-untyped-def, override]
            assert argv == ["sh", "-c", KUBECTL_SCRIPT] and kwargs["sudo"] is True
            return CommandResult(argv, 0, json.dumps(KUBECTL), "")

    opened: list[str] = []

    def open_node(resolved, secrets, policy):  # type: ignore[no-untyped-def]
        opened.append(f"{resolved.ssh_user}@{resolved.host}:{resolved.ssh_port}")
        return KubectlHost("cp-1")

    monkeypatch.setattr(app.connections, "open_node_transport", open_node)
    addresses = nodes_via_kubectl(plan, NodeEntry("cp-1"), Secrets(), None)  # type: ignore[arg-type]
    assert addresses == ["10.0.0.10", "10.0.0.11"] and opened == ["ops@cp-1:22"]
