"""``regwiz prune``: which tags go and which stay, and deleting the ones that go.

The selection is pure (``select``): per repository the newest ``keep_last`` tags by image
creation time stay; protected tags stay (and are not counted among the newest); a tag whose
creation time is unknown stays; with ``older_than_days`` a tag goes only when older than that;
and a tag stays when a kept tag uses its manifest (the same digest, or a child of a kept
multi-platform index), since deleting a manifest by digest takes every tag pointing at it.

Deleting is ``DELETE /v2/NAME/manifests/DIGEST`` (Distribution needs
``storage.delete.enabled``: the plan's ``registry.delete_enabled``) with the operator (push)
account. Right before deleting, the repository's tags are read again: a digest that another tag
has come to use since the listing is left alone. Deleting tags frees no disk until the
registry's garbage collection runs.
"""

from __future__ import annotations

import datetime as dt
import enum
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.errors import RegwizError, UsageError
from app.image_facts import TAG_GONE, TagFacts

if TYPE_CHECKING:
    from app.image_facts import RegistryReader
    from app.plan import Plan


@dataclass(frozen=True)
class RetentionRule:
    keep_last: int
    older_than_days: int | None = None
    protect: tuple[str, ...] = ()  # tag globs
    repositories: tuple[str, ...] = ()  # repository globs; empty: every repository

    def problems(self) -> list[str]:
        found = []
        if self.keep_last < 1:
            found.append(f"keep-last: expected at least 1, got {self.keep_last}")
        if self.older_than_days is not None and self.older_than_days < 1:
            found.append(f"older-than: expected at least 1 day, got {self.older_than_days}")
        found += [f"{name}: an empty pattern" for name, globs in
                  (("protect", self.protect), ("repo", self.repositories))
                  for glob in globs if not glob.strip()]
        return found

    def covers(self, repository: str) -> bool:
        return not self.repositories or any(fnmatch.fnmatchcase(repository, glob)
                                            for glob in self.repositories)

    def protected_by(self, tag: str) -> str | None:
        return next((g for g in self.protect if fnmatch.fnmatchcase(tag, g)), None)


class Verdict(str, enum.Enum):
    KEEP = "keep"
    DELETE = "delete"


@dataclass
class TagDecision:
    tag: str
    digest: str | None
    created: str | None
    verdict: Verdict
    reason: str

    @property
    def deleted(self) -> bool:
        return self.verdict is Verdict.DELETE


def select(tags: Sequence[TagFacts], rule: RetentionRule, now: dt.datetime
           ) -> list[TagDecision]:
    """Decide every tag of one repository (newest first, then the undated ones by name)."""
    decisions: dict[str, TagDecision] = {}

    def decide(tag: TagFacts, verdict: Verdict, reason: str) -> None:
        decisions[tag.tag] = TagDecision(tag.tag, tag.digest, tag.created, verdict, reason)

    candidates: list[tuple[dt.datetime, TagFacts]] = []
    for tag in tags:
        created = tag.created_at
        if tag.error is not None or tag.digest is None:
            decide(tag, Verdict.KEEP, f"not read: {tag.error or 'no digest'}")
        elif (glob := rule.protected_by(tag.tag)) is not None:
            decide(tag, Verdict.KEEP, f"protected ({glob})")
        elif created is None:
            decide(tag, Verdict.KEEP, "creation time unknown")
        else:
            candidates.append((created, tag))
    # newest first; equal times by tag name, so the same registry always gives the same answer
    candidates.sort(key=lambda item: item[1].tag)
    candidates.sort(key=lambda item: item[0], reverse=True)
    cutoff = None if rule.older_than_days is None else now - dt.timedelta(
        days=rule.older_than_days)
    for rank, (created, tag) in enumerate(candidates):
        if rank < rule.keep_last:
            decide(tag, Verdict.KEEP, f"among the newest {rule.keep_last}")
        elif cutoff is not None and created > cutoff:
            decide(tag, Verdict.KEEP, f"newer than {rule.older_than_days} days")
        else:
            decide(tag, Verdict.DELETE, f"older than the newest {rule.keep_last}" + (
                f" and than {rule.older_than_days} days" if cutoff is not None else ""))
    # A manifest a kept tag uses (its own, or a kept index's child) is never deleted.
    facts = {tag.tag: tag for tag in tags}
    used_by: dict[str, str] = {}
    for decision in decisions.values():
        if not decision.deleted:
            for digest in facts[decision.tag].manifests or [decision.digest or ""]:
                used_by.setdefault(digest, decision.tag)
    for decision in decisions.values():
        if decision.deleted and decision.digest in used_by:
            decision.verdict = Verdict.KEEP
            decision.reason = f"same manifest as the kept tag {used_by[decision.digest]}"
    order = {tag.tag: index for index, (_, tag) in enumerate(candidates)}
    return sorted(decisions.values(),
                  key=lambda d: (order.get(d.tag, len(order)), d.tag))


# --- a whole registry ---------------------------------------------------------------------


@dataclass
class RepositoryPrune:
    name: str
    decisions: list[TagDecision] = field(default_factory=list)
    error: str | None = None

    @property
    def doomed_digests(self) -> list[str]:
        """The manifests to delete, each once (several tags may point at one)."""
        seen: dict[str, None] = {}
        for decision in self.decisions:
            if decision.deleted and decision.digest:
                seen.setdefault(decision.digest)
        return list(seen)


@dataclass
class PrunePlan:
    rule: RetentionRule
    repositories: list[RepositoryPrune] = field(default_factory=list)
    error: str | None = None  # the catalog could not be read

    @property
    def to_delete(self) -> list[TagDecision]:
        return [d for r in self.repositories for d in r.decisions if d.deleted]

    @property
    def to_keep(self) -> list[TagDecision]:
        return [d for r in self.repositories for d in r.decisions if not d.deleted]

    @property
    def manifest_count(self) -> int:
        return sum(len(r.doomed_digests) for r in self.repositories)


def require_prunable(plan: Plan, *, deleting: bool) -> None:
    """Refuse a registry regwiz did not deploy (always) and, when deleting, one without
    ``delete_enabled`` (exit 2, saying how to turn it on)."""
    from app.plan import require_managed

    require_managed(plan, "prune")
    if deleting and not plan.registry.delete_enabled:
        raise DeleteDisabled()


class DeleteDisabled(UsageError):
    """The plan's registry does not accept DELETE (``registry.delete_enabled = false``)."""

    def __init__(self) -> None:
        super().__init__(
            "the registry does not allow deleting (registry.delete_enabled = false in the plan)",
            "set delete_enabled = true under [registry] in the plan and run regwiz deploy: it "
            "redeploys the registry with the same data (every image stays), then prune again")


def plan_prune(reader: RegistryReader, rule: RetentionRule, now: dt.datetime | None = None,
               on_repository: Callable[[str], None] | None = None) -> PrunePlan:
    """Read every covered repository and decide each tag; nothing is changed."""
    result = PrunePlan(rule)
    moment = now or dt.datetime.now(dt.timezone.utc)
    try:
        names = [name for name in reader.catalog() if rule.covers(name)]
        for name in names:
            if on_repository is not None:
                on_repository(name)
            facts = reader.repository(name)
            result.repositories.append(RepositoryPrune(
                name, select(facts.tags, rule, moment), facts.error))
    except RegwizError as error:
        result.error = error.message
    finally:
        reader.cache.save()
    return result


class DeleteState(str, enum.Enum):
    DELETED = "deleted"
    GONE = "already gone"  # 404: someone else deleted it first
    SKIPPED = "skipped"  # another tag uses it now
    FAILED = "failed"


@dataclass
class DeleteResult:
    repository: str
    digest: str
    tags: list[str]
    state: DeleteState
    message: str = ""
    done: int = 0  # manifests handled so far, this one included
    total: int = 0


@dataclass
class PruneReport:
    results: list[DeleteResult] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped early (delete disabled on the server)

    @property
    def deleted_tags(self) -> list[str]:
        return [f"{r.repository}:{t}" for r in self.results if r.state is DeleteState.DELETED
                for t in r.tags]

    @property
    def failed(self) -> list[DeleteResult]:
        return [r for r in self.results if r.state is DeleteState.FAILED]

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None


def run_prune(reader: RegistryReader, prune: PrunePlan,
              on_progress: Callable[[DeleteResult], None] | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> PruneReport:
    """Delete the manifests ``prune`` decided on, repository by repository."""
    from app.registry_api import RegistryAPIError

    report = PruneReport()
    total = prune.manifest_count
    done = 0
    for repository in prune.repositories:
        doomed = repository.doomed_digests
        if not doomed:
            continue
        tags_of = {digest: [d.tag for d in repository.decisions
                            if d.deleted and d.digest == digest] for digest in doomed}
        still_used = _now_used_elsewhere(reader, repository, doomed)
        for digest in doomed:
            if cancelled():
                report.stopped = "cancelled"
                return report
            done += 1
            result = DeleteResult(repository.name, digest, tags_of[digest], DeleteState.DELETED,
                                  done=done, total=total)
            if digest in still_used:
                result.state = DeleteState.SKIPPED
                result.message = f"the tag {still_used[digest]} now uses it too: kept"
            else:
                try:
                    reader.delete(repository.name, digest)
                except RegistryAPIError as error:
                    if error.status == 404:
                        result.state, result.message = DeleteState.GONE, "already deleted"
                    else:
                        result.state, result.message = DeleteState.FAILED, error.message
                        if error.status == 405:  # the server refuses every delete
                            report.stopped = error.hint or error.message
                except RegwizError as error:
                    result.state, result.message = DeleteState.FAILED, error.message
            report.results.append(result)
            if on_progress is not None:
                on_progress(result)
            if report.stopped is not None:
                return report
    return report


def _now_used_elsewhere(reader: RegistryReader, repository: RepositoryPrune,
                        doomed: list[str]) -> dict[str, str]:
    """Digests of ``doomed`` that a tag not being deleted points at now (tags move between
    the listing and the deletion); a tag that cannot be read keeps all of them."""
    going = {d.tag for d in repository.decisions if d.deleted}
    wanted = set(doomed)
    found: dict[str, str] = {}
    try:
        tags = reader.tags(repository.name)
    except RegwizError:
        tags = [d.tag for d in repository.decisions]
    for tag in tags:
        if tag in going:
            continue
        facts = reader.tag_facts(repository.name, tag)
        if facts.error is not None and facts.digest is None and facts.error != TAG_GONE:
            # cannot tell what it uses now: delete nothing it might use
            return dict.fromkeys(doomed, f"{tag} (could not be read again)")
        for digest in facts.manifests or [facts.digest or ""]:
            if digest in wanted:
                found.setdefault(digest, tag)
    return found
