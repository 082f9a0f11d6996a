"""What the wizard remembers between steps for the plan being edited (memory only).

Later screens show a job's outcome again when the user comes back to them (the deploy step's
table, the verify step's rows). The App holds one ``WizardSession``; opening or starting another
plan clears it, because those outcomes belong to the previous plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.deploy import DeployReport
    from app.onboard import OnboardReport
    from app.verify import VerifyReport


@dataclass
class WizardSession:
    """The last outcome of each job whose screen shows it again; None until one ran."""

    deploy: DeployReport | None = None  # the last real (not dry) deploy run
    onboarding: OnboardReport | None = None
    verify: VerifyReport | None = None

    def clear(self) -> None:
        """Forget every outcome (another plan was opened or started)."""
        self.deploy = None
        self.onboarding = None
        self.verify = None
