"""Which tags prune deletes (issue 15, part 2): the pure selection, no registry."""

from __future__ import annotations

import datetime as dt

import pytest

from app.image_facts import TagFacts, parse_created
from app.retention import RetentionRule, Verdict, select

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def tag(name: str, days_old: float | None, digest: str | None = None,
        children: list[str] | None = None, error: str | None = None) -> TagFacts:
    created = None if days_old is None else (NOW - dt.timedelta(days=days_old)).isoformat()
    own = digest or f"sha256:{name}"
    return TagFacts(name, None if error else own, created, [own, *(children or [])],
                    error=error)


def verdicts(tags: list[TagFacts], **rule: object) -> dict[str, tuple[str, str]]:
    made = RetentionRule(**rule)  # type: ignore[arg-type]
    return {d.tag: (d.verdict.value, d.reason) for d in select(tags, made, NOW)}


def deleted(tags: list[TagFacts], **rule: object) -> set[str]:
    return {name for name, (verdict, _) in verdicts(tags, **rule).items()
            if verdict == Verdict.DELETE.value}


def test_keep_last_keeps_the_newest_by_creation_time_not_by_name() -> None:
    tags = [tag("v1", 3), tag("v2", 1), tag("v10", 2)]
    assert deleted(tags, keep_last=1) == {"v1", "v10"}
    assert deleted(tags, keep_last=2) == {"v1"}
    assert deleted(tags, keep_last=3) == set()
    order = [d.tag for d in select(tags, RetentionRule(1), NOW)]
    assert order == ["v2", "v10", "v1"]  # newest first


def test_protected_tags_stay_and_do_not_count_among_the_newest() -> None:
    tags = [tag("latest", 0), tag("v3", 1), tag("v2", 2), tag("v1", 3), tag("stable-1", 9)]
    result = verdicts(tags, keep_last=1, protect=("latest", "stable-*"))
    assert result["latest"] == ("keep", "protected (latest)")
    assert result["stable-1"] == ("keep", "protected (stable-*)")
    assert result["v3"][0] == "keep"  # the newest unprotected one
    assert {n for n, (v, _) in result.items() if v == "delete"} == {"v2", "v1"}


def test_a_tag_sharing_a_kept_tags_digest_is_never_deleted() -> None:
    tags = [tag("v2", 1, "sha256:b"), tag("v1", 5, "sha256:a"), tag("old-alias", 9, "sha256:b")]
    result = verdicts(tags, keep_last=1)
    assert result["old-alias"] == ("keep", "same manifest as the kept tag v2")
    assert result["v1"][0] == "delete"


def test_a_protected_tag_keeps_its_digest_too() -> None:
    tags = [tag("v3", 1), tag("v2", 2, "sha256:x"), tag("release", 2, "sha256:x")]
    assert deleted(tags, keep_last=1, protect=("release",)) == set()


def test_older_than_deletes_only_old_tags_beyond_the_newest() -> None:
    tags = [tag("a", 1), tag("b", 10), tag("c", 40), tag("d", 100)]
    result = verdicts(tags, keep_last=1, older_than_days=30)
    assert result["b"] == ("keep", "newer than 30 days")
    assert {n for n, (v, _) in result.items() if v == "delete"} == {"c", "d"}
    # the newest N stay however old they are
    assert deleted([tag("x", 400), tag("y", 500)], keep_last=1, older_than_days=30) == {"y"}


def test_unknown_creation_time_and_unreadable_tags_stay() -> None:
    tags = [tag("v3", 1), tag("v2", 2), tag("nodate", None), tag("broken", None, error="404")]
    result = verdicts(tags, keep_last=1)
    assert result["nodate"] == ("keep", "creation time unknown")
    assert result["broken"] == ("keep", "not read: 404")
    assert result["v2"][0] == "delete"


def test_an_index_child_of_a_kept_index_is_never_deleted() -> None:
    # "amd64-only" points at the child manifest the kept index uses
    tags = [tag("multi", 1, "sha256:idx", children=["sha256:c1", "sha256:c2"]),
            tag("amd64-only", 5, "sha256:c1"), tag("old", 6)]
    result = verdicts(tags, keep_last=1)
    assert result["amd64-only"] == ("keep", "same manifest as the kept tag multi")
    assert result["old"][0] == "delete"


def test_equal_creation_times_break_ties_by_name() -> None:
    tags = [tag("b", 1, "sha256:1"), tag("a", 1, "sha256:2"), tag("c", 1, "sha256:3")]
    assert deleted(tags, keep_last=1) == {"b", "c"}


@pytest.mark.parametrize("rule, problem", [
    (RetentionRule(0), "keep-last"),
    (RetentionRule(1, older_than_days=0), "older-than"),
    (RetentionRule(1, protect=(" ",)), "protect"),
    (RetentionRule(1, repositories=("",)), "repo"),
])
def test_rule_problems(rule: RetentionRule, problem: str) -> None:
    assert any(p.startswith(problem) for p in rule.problems())


def test_repository_globs() -> None:
    rule = RetentionRule(1, repositories=("team/*", "tools"))
    assert rule.covers("team/api") and rule.covers("tools")
    assert not rule.covers("other/api") and not rule.covers("toolsx")
    assert RetentionRule(1).covers("anything")


@pytest.mark.parametrize("text, expected", [
    ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"),
    ("2026-01-02T03:04:05.123456789Z", "2026-01-02T03:04:05.123456+00:00"),
    ("2026-01-02T12:04:05+09:00", "2026-01-02T03:04:05+00:00"),
    ("1970-01-01T00:00:00Z", None),  # reproducible builds: no real time
    ("yesterday", None),
    (None, None),
])
def test_creation_times_parse(text: object, expected: str | None) -> None:
    parsed = parse_created(text)
    assert (parsed.isoformat() if parsed else None) == expected
