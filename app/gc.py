"""Garbage collection in a read-only window (``regwiz gc``): deleting tags frees no disk until the
registry's own ``garbage-collect`` runs, and running it while pushes go on can delete blobs a
push in flight still needs. So the registry is redeployed read-only (pulls go on; pushes and
deletes get 405), the collector runs inside the container, and the registry is redeployed
read-write — also when anything in between fails. Each redeploy keeps the old container until
the new one answers (``app.deploy``'s rollback).

``--delete-untagged`` is never passed: Distribution 2.8 then also deletes the platform
manifests of a multi-platform image (they carry no tag of their own) and so breaks every
multi-platform tag. Manifests regwiz prune deleted are collected without it; a manifest that
lost its tag to a re-push stays until pruned by digest.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import RegwizError

if TYPE_CHECKING:
    from app.deploy import DeployReport
    from app.plan import Plan, Secrets
    from app.steps import StepResult
    from app.transport.base import Transport

GC_TIMEOUT = 3600.0


class GcError(RegwizError):
    """The window could not be opened, or the collector failed."""


@dataclass
class GcReport:
    dry_run: bool
    used_before: int | None = None
    used_after: int | None = None
    collector_output: str = ""
    read_only_deploy: DeployReport | None = None
    read_write_deploy: DeployReport | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def back_to_read_write(self) -> bool:
        return self.read_write_deploy is not None and self.read_write_deploy.ok

    @property
    def ok(self) -> bool:
        return not self.problems and self.back_to_read_write

    @property
    def freed(self) -> int | None:
        if self.used_before is None or self.used_after is None:
            return None
        return max(0, self.used_before - self.used_after)

    def lines(self) -> list[str]:
        lines = [f"✗ {problem}" for problem in self.problems]
        if self.freed is not None and not self.dry_run:
            lines.append(f"freed {self.freed} bytes ({self.used_before} → {self.used_after})")
        marked = [line for line in self.collector_output.splitlines()
                  if "eligible for deletion" in line or "blob marked" in line]
        lines.append(f"collector: {len(marked)} line(s) about blobs"
                     + (" (dry run: nothing deleted)" if self.dry_run else ""))
        lines.append("the registry is read-write again" if self.back_to_read_write else
                     "the registry may still be READ-ONLY: run regwiz deploy to restore it")
        return lines


def collect_garbage(
    plan: Plan,
    secrets: Secrets,
    *,
    connect: Callable[[], Transport],
    dry_run: bool = False,
    on_progress: Callable[[StepResult], None] | None = None,
    while_read_only: Callable[[], None] | None = None,
) -> GcReport:
    """Read-only redeploy, ``registry garbage-collect``, read-write redeploy (always tried once
    the window opened). ``while_read_only`` runs inside the window (tests probe it there)."""
    from app.deploy import DeployOptions, deploy
    from app.plan import require_managed

    require_managed(plan, "gc")
    if not plan.registry.delete_enabled:
        raise GcError("garbage collection frees what deleted manifests left behind, and this "
                      "registry cannot delete (delete_enabled = false)",
                      "set delete_enabled = true in [registry], run regwiz deploy, then "
                      "regwiz prune and regwiz gc")
    report = GcReport(dry_run)
    report.used_before = _used_bytes(plan, connect)
    report.read_only_deploy = deploy(plan, secrets, DeployOptions(read_only=True),
                                     connect=connect, on_progress=on_progress)
    try:
        if not report.read_only_deploy.ok:
            report.problems.append("the registry could not be switched to read-only; nothing "
                                   "was collected")
            return report
        if while_read_only is not None:
            while_read_only()
        report.collector_output = _run_collector(plan, connect, dry_run)
    except RegwizError as error:
        report.problems.append(error.message)
    finally:
        report.read_write_deploy = deploy(plan, secrets, DeployOptions(read_only=False),
                                          connect=connect, on_progress=on_progress)
        if not report.read_write_deploy.ok:
            report.problems.append("switching the registry back to read-write failed")
    report.used_after = _used_bytes(plan, connect)
    return report


def _run_collector(plan: Plan, connect: Callable[[], Transport], dry_run: bool) -> str:
    """``registry garbage-collect`` inside the running (read-only) registry container, given the
    config file that container started with (2.x and 3.x keep it in different places)."""
    from app.registry_host import RegistryHost

    with RegistryHost(plan, connect=connect) as host:
        transport = host.open()
        if not _holds_repositories(plan, transport):
            # Distribution's collector exits 1 on a registry nothing was ever pushed to
            return NOTHING_PUSHED
        host.open_docker()
        container = host.find_container()
        if container is None:
            raise GcError(f"the registry container {plan.registry.container_name} is gone")
        argv = collector_argv(container.attrs.get("Config"), dry_run)
        exit_code, output = container.exec_run(argv, stdout=True, stderr=True)
    text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else str(output)
    if exit_code != 0:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise GcError(f"registry garbage-collect failed (exit {exit_code}): {tail}")
    return text


NOTHING_PUSHED = "nothing to collect: no image was ever pushed to this registry\n"


def _holds_repositories(plan: Plan, transport: Transport) -> bool:
    """Whether the data directory has Distribution's repositories folder (made by a first push)."""
    repositories = posixpath.join(plan.registry.data_dir, "docker/registry/v2/repositories")
    answer = transport.run(["test", "-d", repositories], sudo=plan.registry.sudo, check=False,
                           timeout=30)
    return answer.ok


def collector_argv(container_config: dict[str, Any] | None, dry_run: bool) -> list[str]:
    """The collector's command for a container of that ``Config`` (``docker inspect``)."""
    from app.distribution import from_image_config

    config_path = from_image_config(container_config).config_path
    return ["registry", "garbage-collect", *(["--dry-run"] if dry_run else []), config_path]


def _used_bytes(plan: Plan, connect: Callable[[], Transport]) -> int | None:
    """``du`` of the data directory on the registry host (None when it cannot be read)."""
    from app.status import data_dir_bytes

    transport = connect()
    try:
        return data_dir_bytes(plan, transport, timeout=GC_TIMEOUT)
    except RegwizError:
        return None
    finally:
        transport.close()
