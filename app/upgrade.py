"""Registry upgrades (``regwiz upgrade --image IMAGE``): the new image is deployed with the data
as it is, and written into the plan only once it serves. A new image that cannot start or serve
is rolled back by deploy (the old container runs again under its name, every image kept), and
the plan keeps the old image."""

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

    @property
    def ok(self) -> bool:
        return self.deploy.ok and self.plan_saved

    def lines(self) -> list[str]:
        if self.ok:
            return [f"upgraded {self.old_image} -> {self.new_image}; the plan now names "
                    f"{self.new_image}"]
        failed = self.deploy.failed
        why = failed[0].message.splitlines()[0] if failed else "the deploy did not finish"
        return [f"not upgraded: {why}",
                f"the registry runs {self.old_image} as before; the plan still names it"]


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
    from app.deploy import deploy
    from app.plan import require_managed, save_plan
    from app.validate import check_image

    require_managed(plan, "upgrade")
    if (problem := check_image(image)) is not None:
        raise UsageError(f"--image: {problem}")
    old = plan.registry.image
    candidate = dataclasses.replace(plan, registry=dataclasses.replace(plan.registry,
                                                                       image=image))
    report = deploy(candidate, secrets, options, connect=connect, on_progress=on_progress)
    saved = False
    if report.ok:
        plan.registry.image = image
        save_plan(plan)
        saved = True
    return UpgradeReport(old, image, report, saved)
