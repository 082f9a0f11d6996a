"""The pull account's credential as nodes should hold it (issue 11, items 4 and 5).

``credentials/cluster.json`` next to the plan (``app.credential_files``) is the source: when it
exists and the plan's auth is htpasswd, onboarding installs it on every node (the kubelet's
``/var/lib/kubelet/config.json`` and each runtime's own file, see docs/runtimes.md); when the
account is revoked (the file gone while the plan keeps account files, or ``revoked=True`` from the
accounts metadata) onboarding removes the entries regwiz wrote. ``regwiz accounts rotate|revoke
cluster`` updates every node with ``app.onboard.update_node_credentials``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.credential_files import (
    RegistryCredential,
    credential_path,
    credentials_dir,
    read_credential,
)
from app.runtimes.base import NodeCredential

if TYPE_CHECKING:
    from app.plan import Plan

#: The pull-only account whose credential every node gets (the server side creates it).
PULL_ACCOUNT = "cluster"


def pull_credential(plan: Plan, *, revoked: bool = False) -> NodeCredential | None:
    """What the nodes should hold for the plan's registry; None: leave node credentials alone.

    - auth other than htpasswd: None (the registry wants no login);
    - ``credentials/cluster.json`` present and not ``revoked``: install it;
    - revoked, or the file gone while ``credentials/`` exists (the plan uses accounts): remove
      the entries regwiz wrote (an entry for this registry whose user is the pull account);
    - no ``credentials/`` folder at all (a plan from before accounts): None.

    A registry regwiz did not deploy: the login in ``registry.pull_auth_file`` (e.g. a Harbor
    robot account), or None when the plan names none.

    Raises ``CredentialFileError`` for a file that is not a Docker config.json.
    """
    if not plan.registry.managed:
        return _external_pull_credential(plan)
    if plan.registry.auth != "htpasswd":
        return None
    registry = plan.registry_reference
    path = credential_path(plan, PULL_ACCOUNT)
    credential = read_credential(path, registry)
    if credential is not None and not revoked:
        return NodeCredential(registry, credential.username, credential.auth)
    if credential is not None or revoked or credentials_dir(plan).is_dir():
        username = credential.username if credential is not None else PULL_ACCOUNT
        return NodeCredential(registry, username, remove=True)
    return None


def _external_pull_credential(plan: Plan) -> NodeCredential | None:
    login = external_pull_login(plan)
    if login is None:
        return None
    return NodeCredential(login.registry, login.username, login.auth)


def external_pull_login(plan: Plan) -> RegistryCredential | None:
    """The login in ``registry.pull_auth_file`` (None when the plan names no file)."""
    from app.credential_files import CredentialFileError

    if plan.registry.pull_auth_file is None:
        return None
    registry = plan.registry_reference
    path = plan.local_path(plan.registry.pull_auth_file)
    if not path.is_file():
        raise CredentialFileError(
            f"registry.pull_auth_file: {path} does not exist",
            "save the registry's pull login there as a Docker config.json (e.g. a Harbor robot "
            f"account: docker --config DIR login {registry}, then point at DIR/config.json)")
    credential = read_credential(path, registry)
    if credential is None:
        raise CredentialFileError(
            f"registry.pull_auth_file: {path} holds no login for {registry}",
            f"its \"auths\" needs an entry named exactly {registry}")
    return credential


def current_fingerprint(plan: Plan) -> str | None:
    """The fingerprint of the credential nodes should hold ("" when none should be there;
    None when node credentials are not managed for this plan)."""
    wanted = pull_credential(plan)
    if wanted is None:
        return None
    return wanted.fingerprint
