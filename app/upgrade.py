"""Registry upgrades (``regwiz upgrade --image IMAGE``): the new image is deployed with the data
as it is, and written into the plan, with its pin (``registry.image_digest``), only once it
serves. A new image that cannot start or serve is rolled back by deploy (the old container runs
again under its name, every image kept), and the plan keeps the old image and the old pin.

``--image`` may name the plan's own image: what that tag names on the host now is deployed and
pinned (how a moved tag is taken on purpose)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.errors import UsageError

if TYPE_CHECKING:
    from app.deploy import DeployOptions, DeployReport
    from app.plan import Plan, Secrets
    from app.steps import StepResult
    from app.transport.base import Transport


@dataclass
class UpgradeReport:
    old_image: str
    new_image: str
    deploy: DeployReport
    plan_saved: bool
    old_digest: str | None = None
    new_digest: str | None = None

    @property
    def ok(self) -> bool:
        return self.deploy.ok and self.plan_saved

    def lines(self) -> list[str]:
        if self.ok:
            return [f"upgraded {self.old_image} -> {self.new_image}; the plan now names "
                    f"{self.new_image}, pinned to {self.new_digest}"]
        failed = self.deploy.failed
        why = failed[0].message.splitlines()[0] if failed else "the deploy did not finish"
        pinned = f" (pinned to {self.old_digest})" if self.old_digest else ""
        return [f"not upgraded: {why}",
                f"the registry runs {self.old_image}{pinned} as before; the plan still names "
                "it"]


def upgrade_registry(
    plan: Plan,
    secrets: Secrets,
    image: str,
    options: DeployOptions | None = None,
    *,
    connect: Callable[[], Transport],
    on_progress: Callable[[StepResult], None] | None = None,
) -> UpgradeReport:
    """Deploy ``plan`` with ``image``; save the plan with it only when the deploy succeeded."""
    from app.deploy import DeployOptions, deploy
    from app.plan import require_managed, save_plan
    from app.validate import check_image

    require_managed(plan, "upgrade")
    if (problem := check_image(image)) is not None:
        raise UsageError(f"--image: {problem}")
    old, old_digest = plan.registry.image, plan.registry.image_digest
    # No pin: the candidate runs what ``image`` names now; its pin is written below, on success.
    candidate = dataclasses.replace(plan, registry=dataclasses.replace(
        plan.registry, image=image, image_digest=None))
    options = dataclasses.replace(options or DeployOptions(), record_pin=False)
    report = deploy(candidate, secrets, options, connect=connect, on_progress=on_progress)
    saved = False
    if report.ok:
        plan.registry.image, plan.registry.image_digest = image, report.image_digest
        save_plan(plan)
        saved = True
    return UpgradeReport(old, image, report, saved, old_digest, report.image_digest)
