"""The plan's [[mirrors]] tables and nodes' mirror_only: parsing, problems, saving."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.plan import PlanError, Secrets, load_plan, parse_plan, save_plan

BASE = """\
[certificate]
common_name = "registry.example.internal"

[registry]
host = "local"
address = "198.18.0.2"
port = 8443

[nodes.defaults]
mirror_only = true

[[nodes.hosts]]
host = "198.18.0.3"
mirror_only = false
"""

MIRRORS = """
# the public hub, cached
[[mirrors]]
upstream = "docker.io"
port = 5001

[[mirrors]]
upstream = "upstream.lab:5000"
remote_url = "https://198.18.0.9:5000"
remote_ca = "upstream-ca.crt"
username = "robot"
port = 5002
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.toml")
    return caught.value.problems


def test_mirrors_parse_with_well_known_defaults() -> None:
    plan = parse_plan(BASE + MIRRORS, "plan.toml")
    hub, lab = plan.mirrors
    assert (hub.upstream, hub.port, hub.url, hub.private) == (
        "docker.io", 5001, "https://registry-1.docker.io", False)
    assert (lab.url, lab.remote_ca, lab.username, lab.private) == (
        "https://198.18.0.9:5000", "upstream-ca.crt", "robot", True)
    assert lab.password_env == "REGWIZ_MIRROR_UPSTREAM_LAB_5000_PASSWORD"
    assert hub.slug == "docker-io"
    assert plan.mirror_address(hub).reference == "198.18.0.2:5001"
    assert [node.mirror_only for node in plan.resolved_nodes()] == [False]
    assert plan.node_defaults.mirror_only is True


def test_mirror_password_comes_from_its_own_variable_only() -> None:
    plan = parse_plan(BASE + MIRRORS, "plan.toml")
    secrets = Secrets.from_env({"REGWIZ_MIRROR_UPSTREAM_LAB_5000_PASSWORD": "s3cret",
                                "REGWIZ_SUDO_PASSWORD": "sudo"})
    assert secrets.mirror_password(plan.mirrors[1]) == "s3cret"
    assert secrets.mirror_password(plan.mirrors[0]) is None
    assert "s3cret" not in repr(secrets)


@pytest.mark.parametrize(("entry", "expected"), [
    ('upstream = "https://docker.io"\nport = 5001',
     "mirrors[0].upstream: give the registry name as image references use it"),
    ('upstream = "docker.io"', "mirrors[0].port: missing"),
    ('upstream = "example.org"\nport = 5001', "mirrors[0].remote_url: missing: example.org"),
    ('upstream = "example.org"\nport = 5001\nremote_url = "ftp://example.org"',
     "mirrors[0].remote_url: expected https://HOST"),
    ('upstream = "docker.io"\nport = 8443', "mirrors[0].port: 8443 is already used by "
                                            "registry.port"),
    ('upstream = "198.18.0.2:8443"\nport = 5001\nremote_url = "https://198.18.0.2:8443"',
     "this plan's own registry"),
    ('upstream = "Docker.io"\nport = 5001', "registry names are lower case"),
    ('upstream = "docker.io"\nport = 5001\npassword = "x"', "mirrors[0].password: unknown key"),
])
def test_bad_mirrors_are_named(entry: str, expected: str) -> None:
    problems = problems_of(BASE + "\n[[mirrors]]\n" + entry + "\n")
    assert any(expected in problem for problem in problems), problems


def test_two_mirrors_of_one_upstream_or_port_are_refused() -> None:
    text = BASE + '\n[[mirrors]]\nupstream = "quay.io"\nport = 5001\n' * 2
    problems = problems_of(text)
    assert any("mirrors[1].port: 5001 is already used by mirrors[0].port" in p
               for p in problems), problems
    assert any("mirrors[1].upstream: quay.io already has a mirror" in p for p in problems)


def test_mirrors_need_a_registry_regwiz_deploys() -> None:
    text = BASE.replace('host = "local"\n', "managed = false\n") + MIRRORS
    assert any("managed = false" in p for p in problems_of(text))


def test_saving_keeps_mirror_comments_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(BASE + MIRRORS)
    plan = load_plan(path)
    plan.mirrors[0].port = 5011
    save_plan(plan)
    text = path.read_text()
    assert "# the public hub, cached" in text and "port = 5011" in text
    assert load_plan(path).mirrors == plan.mirrors
    plan.mirrors = []
    plan.node_defaults.mirror_only = False
    save_plan(plan)
    assert "[[mirrors]]" not in path.read_text() and load_plan(path).mirrors == []


COMMENTED = BASE + """
# the public hub, cached
[[mirrors]]
upstream = "docker.io"  # hub
port = 5001

# quay, for the operators
[[mirrors]]
upstream = "quay.io"  # quay
port = 5002

# github's packages
[[mirrors]]
upstream = "ghcr.io"  # gh
port = 5003
"""


def test_removing_an_entry_keeps_every_comment_with_its_own_table(tmp_path: Path) -> None:
    """Tables are matched by upstream (nodes by host), not position: removing quay.io takes its
    comments with it and leaves ghcr.io's on ghcr.io."""
    path = tmp_path / "plan.toml"
    path.write_text(COMMENTED)
    plan = load_plan(path)
    del plan.mirrors[1]
    save_plan(plan)
    text = path.read_text()
    assert "quay" not in text, text
    assert 'upstream = "docker.io"  # hub' in text and 'upstream = "ghcr.io"  # gh' in text
    hub, gh = text.index("# the public hub, cached"), text.index("# github's packages")
    assert hub < text.index('"docker.io"') < gh < text.index('"ghcr.io"')
    assert [m.upstream for m in load_plan(path).mirrors] == ["docker.io", "ghcr.io"]


def test_new_keys_go_above_the_comment_that_introduces_the_next_table(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(COMMENTED.replace("\n[nodes.defaults]", "# every node\n[nodes.defaults]"))
    plan = load_plan(path)
    plan.registry.delete_enabled = True  # a key [registry] did not have
    save_plan(plan)
    text = path.read_text()
    assert text.index("delete_enabled = true") < text.index("# every node"), text
    assert text.index("# the public hub, cached") < text.index('"docker.io"')
    assert text.index('"ghcr.io"  # gh') > text.index("# github's packages")
