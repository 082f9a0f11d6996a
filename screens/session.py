"""What the wizard remembers between steps for the plan being edited (memory only).

Later screens show a job's outcome again when the user comes back to them (the deploy step's
table, the verify step's rows). The App holds one ``WizardSession``; opening or starting another
plan clears it, because those outcomes belong to the previous plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from app.address import RegistryAddress
    from app.onboard import OnboardReport
    from app.steps import StepResult
    from app.verify import VerifyReport


@dataclass
class DeployResultView:
    """One deploy run as the deploy step shows it.

    The same field names as ``app.deploy.DeployReport`` (being added on another branch): once it
    exists, this class is replaced by ``from app.deploy import DeployReport as DeployResultView``
    and the deploy screen's worker returns ``deploy(...)``'s report instead of building one.
    """

    results: list[StepResult]
    planned: list[tuple[str, str]]  # (what, where) of every step, in order
    dry_run: bool
    dry_run_lines: list[str]  # what each step would do (dry run only)
    container_id: str
    log_tail: str  # the container's last log lines after a failed run
    generated_password: bool  # a registry password was generated and saved
    credentials_file: Path | None  # where the registry login is kept
    registry: RegistryAddress
    seconds: float


@dataclass
class WizardSession:
    """The last outcome of each job whose screen shows it again; None until one ran."""

    deploy: DeployResultView | None = None  # the last real (not dry) deploy run
    onboarding: OnboardReport | None = None
    verify: VerifyReport | None = None

    def clear(self) -> None:
        """Forget every outcome (another plan was opened or started)."""
        self.deploy = None
        self.onboarding = None
        self.verify = None
