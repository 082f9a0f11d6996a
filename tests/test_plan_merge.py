"""Three-way merge of a plan the wizard holds with the file another program changed."""

from __future__ import annotations

import copy
from pathlib import Path

from app.plan import NodeSettings, adopt_plan, merge_plan_changes, parse_plan, plan_to_dict

TEXT = """\
[certificate]
common_name = "registry.example.internal"

[registry]
host = "local"
address = "198.18.0.2"

[[nodes.hosts]]
host = "198.18.0.3"
"""
PIN = "sha256:" + "ab" * 32


def test_a_key_changed_only_outside_is_taken_and_ours_kept() -> None:
    ours = parse_plan(TEXT, Path("plan.toml"))
    base = plan_to_dict(ours)
    theirs = copy.deepcopy(ours)
    theirs.registry.image_digest = PIN  # a CLI deploy recorded the pin
    ours.registry.port = 9443  # the wizard changed another key
    merge = merge_plan_changes(base, ours, theirs)
    assert (merge.plan.registry.image_digest, merge.plan.registry.port) == (PIN, 9443)
    assert merge.taken == ["registry.image_digest"] and merge.conflicts == []


def test_a_key_both_changed_keeps_ours_and_is_named() -> None:
    ours = parse_plan(TEXT, Path("plan.toml"))
    base = plan_to_dict(ours)
    theirs = copy.deepcopy(ours)
    theirs.registry.port = 7443
    theirs.nodes.append(NodeSettings("198.18.0.9"))
    ours.registry.port = 9443
    merge = merge_plan_changes(base, ours, theirs)
    assert merge.plan.registry.port == 9443
    assert [n.host for n in merge.plan.nodes] == ["198.18.0.3", "198.18.0.9"]
    assert merge.conflicts == ["registry.port"] and merge.taken == ["nodes.hosts"]


def test_a_key_removed_outside_is_removed() -> None:
    ours = parse_plan(TEXT.replace('address = "198.18.0.2"\n',
                                   f'address = "198.18.0.2"\nimage_digest = "{PIN}"\n'))
    base = plan_to_dict(ours)
    theirs = copy.deepcopy(ours)
    theirs.registry.image_digest = None
    assert merge_plan_changes(base, ours, theirs).plan.registry.image_digest is None


def test_an_invalid_combination_falls_back_to_ours() -> None:
    ours = parse_plan(TEXT)
    base = plan_to_dict(ours)
    theirs = copy.deepcopy(ours)
    theirs.nodes.append(NodeSettings("198.18.0.9"))
    ours.nodes.append(NodeSettings("198.18.0.9"))
    ours.nodes.append(NodeSettings("198.18.0.9"))  # a duplicate: invalid whichever way merged
    merge = merge_plan_changes(base, ours, theirs)
    assert merge.plan is ours and merge.conflicts == ["nodes.hosts"]


def test_adopt_keeps_the_objects_screens_hold() -> None:
    target, source = parse_plan(TEXT), parse_plan(TEXT)
    registry, nodes = target.registry, target.nodes
    source.registry.image_digest = PIN
    source.nodes.append(NodeSettings("198.18.0.9"))
    adopt_plan(target, source)
    assert target.registry is registry and target.nodes is nodes
    assert registry.image_digest == PIN and len(nodes) == 2
