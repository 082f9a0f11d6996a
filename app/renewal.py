"""Day two for certificates: renew the server certificate and put it in service in one action.

The CA stays the same, so nodes need nothing: they trust the CA, and the CA signs the new
certificate. The action says so only after checking it — the CA's fingerprint before and after,
and the certificate the registry now serves read back and compared with the new tls.crt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import RegwizError, UsageError

if TYPE_CHECKING:
    from app.certs import CertSummary
    from app.deploy import DeployOptions, DeployReport
    from app.plan import Plan, Secrets
    from app.steps import StepResult
    from app.transport.base import Transport


@dataclass
class RenewalReport:
    certificates: CertSummary
    deploy: DeployReport
    ca_fingerprint: str
    ca_unchanged: bool
    served_fingerprint: str | None = None  # what the registry serves after the deploy
    new_fingerprint: str = ""  # the renewed tls.crt
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.deploy.ok and self.served_fingerprint == self.new_fingerprint

    def lines(self) -> list[str]:
        served = ("the registry serves it" if self.ok
                  else f"the registry serves {self.served_fingerprint or 'nothing readable'}, "
                       f"not it")
        nodes = ("nodes need nothing: the CA is unchanged "
                 f"({self.ca_fingerprint[:23]}…) and signs the new certificate"
                 if self.ca_unchanged else
                 "the CA changed: every node must be onboarded again (regwiz onboard)")
        return [f"renewed tls.crt {self.new_fingerprint[:23]}…; {served}", nodes, *self.notes]


def renew_and_deploy(
    plan: Plan,
    secrets: Secrets,
    options: DeployOptions | None,
    *,
    connect: Callable[[], Transport],
    on_progress: Callable[[StepResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RenewalReport:
    """Reissue tls.crt with the same CA, deploy it, and check what the registry serves."""
    from app.certs import CertFiles, ensure_certificates, inspect_certificate
    from app.plan import require_managed

    require_managed(plan, "certs --renew --deploy")
    files = CertFiles(plan.cert_dir)
    if files.ca_next_crt.exists():
        # renewing from the old CA now would undo the rotation's switch
        raise UsageError("a CA rotation is under way (the new CA is ca-next.crt): finish it "
                         "before renewing", "run regwiz rotate-ca --plan FILE again")
    before = _fingerprint(files.ca_crt)
    summary = ensure_certificates(plan, renew=True, ca_passphrase=secrets.ca_key_passphrase)
    after = inspect_certificate(files.ca_crt).fingerprint
    report, served = deploy_and_read_back(plan, secrets, options, connect=connect,
                                          on_progress=on_progress, should_stop=should_stop)
    return RenewalReport(summary, report, after, before == after, served,
                         inspect_certificate(files.tls_crt).fingerprint)


def deploy_and_read_back(
    plan: Plan,
    secrets: Secrets,
    options: DeployOptions | None,
    *,
    connect: Callable[[], Transport],
    on_progress: Callable[[StepResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[DeployReport, str | None]:
    """Deploy the certificate directory as it is, then read the fingerprint of the
    certificate the registry really serves (None when none can be read)."""
    from app.deploy import deploy
    from app.status import served_certificate

    report = deploy(plan, secrets, options, connect=connect, on_progress=on_progress,
                    should_stop=should_stop)
    served = served_certificate(plan.registry.address, plan.registry.port)
    return report, served.fingerprint


def _fingerprint(path: Path) -> str | None:
    from app.certs import inspect_certificate

    try:
        return inspect_certificate(path).fingerprint
    except RegwizError:
        return None  # no CA yet: the renewal creates one, and says nodes must be onboarded
