"""Prove the registry works end to end: push, pull back, then a pull on every node.

1. A self-test image built in memory (app.selftest_image) is loaded into a Docker daemon (the
   registry host's, reached through the verified SSH link, or the operator's own with
   ``from_local``), pushed to ``<address>:<port>/regwiz/selftest:<random>``, removed, pulled back;
   the digests from the push, the pull and the registry API must agree.
2. Every node then pulls it with the runtime it really uses (each runtime adapter in
   app.runtimes says how, see docs/runtimes.md) or, with no runtime, makes a TLS handshake that
   trusts only the OS store. Pulled images are removed again.
3. The test tag is deleted when the registry allows deletes; otherwise the report says it stays.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.address import url_host
from app.errors import RegwizError
from app.jsonable import plain
from app.runtimes.base import NodeCheckSpec
from app.selftest_image import (
    REUSED_SELFTEST_TAG,
    SELFTEST_REPOSITORY,
    SelftestImage,
    build_selftest_image,
    new_selftest_tag,
)
from app.transport.base import display_command
from app.user_waits import Stopwatch, UserWaits

if TYPE_CHECKING:
    from app.cri.image_service import PullAuth
    from app.cri.pull import SandboxStatus
    from app.htpasswd import Credentials
    from app.plan import Plan, ResolvedNode, Secrets
    from app.runtimes.base import NodeCheckSpec, NodeCredential, RuntimeAdapter, TrustProblem
    from app.runtimes.probe import NodeFacts
    from app.transport.base import CommandResult, Transport

DEFAULT_PARALLEL = 16
PULL_TIMEOUT = 180.0
TRUST_HINT = "the CA is not trusted there: run regwiz onboard"


class CheckState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class NodeCheck:
    """One check on one node: ``kind`` says what was done, ``detail`` the evidence or the error."""

    kind: str  # e.g. a runtime's pull, or "TLS handshake (OS trust store only)"
    command: str  # the command run on the node, as typed (no secrets in it)
    passed: bool
    detail: str
    hint: str | None = None
    digest: str | None = None


class _PassedByState:
    """``passed`` for a result whose ``state`` is a CheckState."""

    state: CheckState

    @property
    def passed(self) -> bool:
        return self.state is CheckState.PASSED


@dataclass
class NodeVerifyResult(_PassedByState):
    host: str
    state: CheckState = CheckState.PENDING
    runtimes: list[str] = field(default_factory=list)
    checks: list[NodeCheck] = field(default_factory=list)
    message: str = ""
    hint: str | None = None
    seconds: float = 0.0



@dataclass
class PushPullResult(_PassedByState):
    """The registry-side proof: push from a Docker daemon, remove, pull back, compare digests."""

    reference: str
    source: str  # "registry host <host>" or "local docker"
    state: CheckState = CheckState.PENDING
    pushed_digest: str | None = None
    pulled_digest: str | None = None
    registry_digest: str | None = None
    message: str = ""
    hint: str | None = None
    cleanup: str = ""  # what happened to the test tag afterwards
    note: str = ""  # how the push was done when not the plain way (e.g. loopback)
    seconds: float = 0.0


@dataclass(frozen=True)
class NamedImage:
    """An image already in a registry regwiz did not deploy (``registry.verify_image``)."""

    registry: str
    repository_path: str
    tag: str  # a tag, or a digest "sha256:..."
    image_id: str | None = None  # unknown until pulled; nothing is removed by it

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.repository_path}"

    @property
    def reference(self) -> str:
        separator = "@" if self.tag.startswith("sha256:") else ":"
        return f"{self.repository}{separator}{self.tag}"


# What nodes pull: the self-test image regwiz pushed, or the named one it did not.
ProvenImage = SelftestImage | NamedImage


@dataclass
class VerifyReport:
    push_pull: PushPullResult
    nodes: list[NodeVerifyResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.push_pull.passed and all(node.passed for node in self.nodes)

    @property
    def failed_nodes(self) -> list[NodeVerifyResult]:
        return [node for node in self.nodes if not node.passed]

    def to_dict(self) -> dict[str, Any]:
        return plain(asdict(self), digits=3) | {"ok": self.ok}


@dataclass(frozen=True)
class VerifyProgress:
    """A live event: ``target`` is "registry" for the push/pull stage, else a node's host."""

    target: str
    state: CheckState
    message: str = ""


ProgressCallback = Callable[[VerifyProgress], None]


# ----------------------------------------------------------------------------- error reading

_X509_MARKERS = (
    "x509:",
    "certificate signed by unknown authority",
    "ssl certificate problem",
    "unable to get local issuer certificate",
    "self-signed certificate",
    "self signed certificate",
    "certificate verify failed",
    "verify error:",
    "verify return code: 2",
    "verify return code: 19",
    "verify return code: 20",
    "verify return code: 21",
    "error setting certificate",  # curl --cacert FILE where FILE is missing
    "unable to read ca cert",  # a runtime's hosts.toml names a ca.crt that is gone
)


def _is_x509(text: str) -> bool:
    """Does the text report a certificate the client could not verify?"""
    lowered = text.lower()
    return any(marker in lowered for marker in _X509_MARKERS)


def key_error_line(output: str) -> str:
    """The most telling line of a failed command's output (the x509 one when there is one)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in lines:
        if _is_x509(line):
            return line
    for line in reversed(lines):
        if "error" in line.lower() or "failed" in line.lower():
            return line
    return lines[-1] if lines else "(no output)"


def explain_node_failure(output: str, registry_reference: str) -> tuple[str, str | None]:
    """(exact error, hint) for a pull or handshake that failed on a node."""
    line = key_error_line(output)
    lowered = output.lower()
    san_markers = ("doesn't match", "not valid for", "hostname mismatch", "ip address mismatch",
                   "certificate is valid for", "no alternative certificate subject name")
    if any(marker in lowered for marker in san_markers):
        return line, (
            f"the registry certificate does not cover {registry_reference}: add the address to "
            "the SANs, run regwiz certs --renew and deploy again"
        )
    if _is_x509(output):
        return line, TRUST_HINT
    unreachable = ("connection refused", "no route to host", "i/o timeout", "failed to connect",
                   "couldn't connect", "connection timed out", "network is unreachable")
    if any(marker in lowered for marker in unreachable):
        return line, f"the node cannot reach {registry_reference}: check routing and firewalls"
    if "no such host" in lowered or "could not resolve" in lowered:
        return line, "the node cannot resolve the registry name: add it to DNS or /etc/hosts"
    if "unauthorized" in lowered or "authentication required" in lowered:
        return line, "the registry wants credentials (htpasswd): log in on the node first"
    if "not found" in lowered and ("manifest" in lowered or "repository" in lowered):
        return line, "the test image is gone from the registry: run regwiz verify again"
    return line, None


def parse_push_events(events: Iterable[dict[str, Any]]) -> str:
    """Digest reported by a docker push stream; raises RegwizError with the daemon's error."""
    digest = None
    for event in events:
        error = event.get("error") or (event.get("errorDetail") or {}).get("message")
        if error:
            raise RegwizError(f"push failed: {error}", _push_hint(str(error)))
        aux = event.get("aux") or {}
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = str(aux["Digest"])
    if not digest:
        raise RegwizError("push finished without reporting a digest", "check the daemon's log")
    return digest


def parse_pull_events(events: Iterable[dict[str, Any]]) -> None:
    for event in events:
        error = event.get("error") or (event.get("errorDetail") or {}).get("message")
        if error:
            raise RegwizError(f"pull failed: {error}", _push_hint(str(error)))


def _push_hint(error: str) -> str | None:
    lowered = error.lower()
    if _is_x509(error):
        return (
            "the pushing Docker does not trust the CA: install ca.crt in its "
            "/etc/docker/certs.d/<address:port>/ (add the host as a node and run regwiz "
            "onboard), or use --from-local on a machine that trusts it"
        )
    if "unauthorized" in lowered or "authentication required" in lowered:
        return "the registry wants credentials: set REGWIZ_REGISTRY_PASSWORD or --credentials-file"
    if "connection refused" in lowered:
        return "the registry does not answer: run regwiz status, or regwiz deploy again"
    return None


def digest_from_repo_digests(repo_digests: Iterable[str], repository: str) -> str | None:
    """The ``sha256:...`` for ``repository`` in a Docker image's RepoDigests."""
    for entry in repo_digests:
        name, _, digest = entry.partition("@")
        if name == repository and digest:
            return digest
    return None


# ----------------------------------------------------------------------------- node checks


def os_store_check_argv(address: str, port: int) -> list[str]:
    """A TLS handshake to the registry trusting only the OS store (curl, else openssl).

    curl prints the HTTP status of ``/v2/``: 200 and 401 both prove TLS is trusted. openssl
    exits 0 only when the chain verified against the system store and the name matched.
    """
    host = url_host(address)
    url = f"https://{host}:{port}/v2/"  # the port always spelled out, 443 included
    openssl = ["openssl", "s_client", "-connect", f"{host}:{port}"]
    if _is_ip(address):
        openssl += ["-verify_ip", address.strip("[]")]
    else:
        openssl += ["-servername", address, "-verify_hostname", address]
    openssl += ["-verify_return_error", "-brief"]
    script = (
        'url=$1; shift; if command -v curl >/dev/null 2>&1; then '
        'exec curl -sS --max-time 20 -o /dev/null -w "%{http_code}" "$url"; fi; '
        'exec "$@" </dev/null'
    )
    return ["sh", "-c", script, "sh", url, *openssl]


def _is_ip(address: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return True


def os_store_passed(exit_status: int, stdout: str) -> bool:
    status = stdout.strip()[-3:]
    if status.isdigit():  # curl printed the HTTP status
        return exit_status == 0 and status in ("200", "401")
    return exit_status == 0  # openssl s_client: exit 0 only when the chain verified


# ----------------------------------------------------------------------------- the engine


def verify(
    plan: Plan,
    secrets: Secrets,
    *,
    host_key_policy: Any,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    from_local: bool = False,
    parallel: int = DEFAULT_PARALLEL,
    only: Iterable[str] | None = None,
    credentials: Credentials | None = None,
    rejected_host_keys: Collection[str] = (),
) -> VerifyReport:
    """Push/pull the self-test image, then check every node (or those in ``only``) in parallel.

    Never raises for a failed check: failures are in the report (``report.ok``). Nodes are
    skipped when the push/pull proof fails, since there is then nothing to pull. Nodes in
    ``rejected_host_keys`` (the user rejected their key) fail without a connection. A node's
    ``seconds`` leave out the time the policy's questions waited for the user.
    """
    notify = on_progress or (lambda _event: None)
    stop = should_stop or (lambda: False)
    wanted = None if only is None else set(only)
    nodes = [n for n in plan.resolved_nodes() if wanted is None or n.host in wanted]
    auth = registry_auth(plan, secrets, credentials)
    image: ProvenImage | None
    if plan.registry.managed:
        image, push_pull = _push_and_pull(plan, secrets, host_key_policy, from_local, auth,
                                          notify)
    else:
        image, push_pull = _named_image(plan, auth, notify)
    report = VerifyReport(push_pull, [NodeVerifyResult(node.host) for node in nodes])
    if not push_pull.passed or image is None or stop():
        why = "cancelled" if push_pull.passed else "not checked: the push/pull proof failed"
        for result in report.nodes:
            _finish(result, CheckState.SKIPPED, why, notify)
        return report
    job = _NodeJob(plan, secrets, host_key_policy, image, push_pull.pushed_digest, auth, notify,
                   stop, _installed_credential(plan), frozenset(rejected_host_keys))
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(nodes) or 1))) as pool:
        futures = [
            pool.submit(_verify_node_safely, job, node, result)
            for node, result in zip(nodes, report.nodes, strict=True)
        ]
        for future in futures:
            future.result()
    if isinstance(image, SelftestImage):
        push_pull.cleanup = _delete_test_tag(plan, auth, image)
    return report


def _installed_credential(plan: Plan) -> NodeCredential | None:
    """The pull credential onboarding installs on nodes (None: none is, or it was revoked)."""
    from app.node_credentials import pull_credential

    try:
        wanted = pull_credential(plan)
    except RegwizError:  # a broken credentials/cluster.json: onboarding reports it
        return None
    return None if wanted is None or wanted.remove else wanted


def _finish(
    result: NodeVerifyResult,
    state: CheckState,
    message: str,
    notify: ProgressCallback,
    hint: str | None = None,
) -> None:
    result.state, result.message, result.hint = state, message, hint
    notify(VerifyProgress(result.host, state, message))


def _ca_path(plan: Plan) -> Path:
    return plan.trusted_ca_path


def registry_auth(
    plan: Plan, secrets: Secrets, credentials: Credentials | None = None
) -> tuple[str, str] | None:
    """(user, password) in htpasswd mode: the given credentials, else the operator account's
    file next to the plan (a push account), else the environment. A registry regwiz did not
    deploy: the given credentials, else the nodes' pull login (``registry.pull_auth_file``)."""
    if credentials is not None:
        return credentials.username, credentials.password
    if not plan.registry.managed:
        return _external_login(plan)
    if plan.registry.auth != "htpasswd":
        return None
    from app.accounts import OPERATOR
    from app.credential_files import credential_path, read_credential

    operator = read_credential(credential_path(plan, OPERATOR), plan.registry_reference)
    if operator is not None:
        return operator.username, operator.password
    if secrets.registry_password:
        from app.htpasswd import DEFAULT_USERNAME

        return DEFAULT_USERNAME, secrets.registry_password
    return None


def _external_login(plan: Plan) -> tuple[str, str] | None:
    from app.node_credentials import external_pull_login

    login = external_pull_login(plan)
    return None if login is None else (login.username, login.password)


# --- push and pull on a Docker daemon ----------------------------------------------------------


def _push_and_pull(
    plan: Plan,
    secrets: Secrets,
    policy: Any,
    from_local: bool,
    auth: tuple[str, str] | None,
    notify: ProgressCallback,
) -> tuple[SelftestImage | None, PushPullResult]:
    source = "local docker" if from_local else f"registry host {plan.registry.host}"
    started = time.monotonic()
    result = PushPullResult(reference="", source=source)
    notify(VerifyProgress("registry", CheckState.RUNNING, f"push/pull from the {source}"))
    image: SelftestImage | None = None
    try:
        transport = _open_pusher(plan, secrets, policy, from_local)
        try:
            image = _round_trip(plan, transport, from_local, auth, result)
        finally:
            transport.close()
        result.state = CheckState.PASSED
        result.message = f"pushed, removed and pulled back {result.reference}: digests match"
    except RegwizError as error:
        result.state, result.message, result.hint = CheckState.FAILED, error.message, error.hint
    except Exception as error:  # noqa: BLE001 - Docker SDK/requests errors become a failed check
        result.state, result.message = CheckState.FAILED, f"push/pull failed: {docker_error(error)}"
        result.hint = _push_hint(result.message)
    result.seconds = time.monotonic() - started
    notify(VerifyProgress("registry", result.state, result.message))
    return (image if result.passed else None), result


def _named_image(
    plan: Plan, auth: tuple[str, str] | None, notify: ProgressCallback
) -> tuple[NamedImage | None, PushPullResult]:
    """A registry regwiz did not deploy: nothing is pushed; the image the plan names
    (``registry.verify_image``) must exist, and its digest is what every node must pull."""
    from app import registry_api

    started = time.monotonic()
    result = PushPullResult(reference="", source="the registry's own image")
    notify(VerifyProgress("registry", CheckState.RUNNING, "looking up registry.verify_image"))
    try:
        image = named_image(plan)
        result.reference = image.reference
        basic = registry_api.BasicAuth(*auth) if auth else None
        base = registry_api.base_url(plan.registry.address, plan.registry.port)
        digest = registry_api.manifest_digest(base, _ca_path(plan), image.repository_path,
                                              image.tag, auth=basic)
        if digest is None:
            raise RegwizError(f"{image.reference} does not exist in the registry",
                              "push it there, or name another in registry.verify_image")
        result.registry_digest = result.pushed_digest = result.pulled_digest = digest
        result.state, result.message = CheckState.PASSED, f"{image.reference} is {digest}"
    except RegwizError as error:
        image = None
        result.state, result.message, result.hint = CheckState.FAILED, error.message, error.hint
    result.seconds = time.monotonic() - started
    notify(VerifyProgress("registry", result.state, result.message))
    return image, result


def named_image(plan: Plan) -> NamedImage:
    """The plan's ``registry.verify_image`` in the plan's registry."""
    name = plan.registry.verify_image
    if not name:
        raise RegwizError(
            "registry.verify_image is not set, and regwiz pushes nothing to a registry it did "
            "not deploy",
            'name an image every node should be able to pull: verify_image = '
            '"library/busybox:latest" (or a Harbor project/image:tag)')
    path, tag = _split_tag(name)
    return NamedImage(plan.registry_reference, path, tag)


def _split_tag(name: str) -> tuple[str, str]:
    if "@" in name:
        path, _, digest = name.partition("@")
        return path, digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = name.rpartition(":")
        return path, tag
    return name, "latest"


def docker_error(error: Exception) -> str:
    """The daemon's own explanation for a Docker SDK error, else the exception's text."""
    explanation = getattr(error, "explanation", None)
    text = str(explanation or error).strip()
    return text or type(error).__name__


def _open_pusher(plan: Plan, secrets: Secrets, policy: Any, from_local: bool) -> Transport:
    from app.connections import open_registry_transport
    from app.transport.local import LocalTransport

    if from_local:
        return LocalTransport()
    return open_registry_transport(plan, secrets, policy)


def registry_docker_client(transport: Transport, sudo_allowed: bool) -> Any:
    """The registry host's Docker, by the one rule deploy and status use too (as the SSH user,
    then with sudo only when the socket refused the user: ``app.registry_host``)."""
    from app.registry_host import reach_docker

    return reach_docker(transport, sudo_allowed=sudo_allowed)


def _round_trip(
    plan: Plan,
    transport: Transport,
    from_local: bool,
    auth: tuple[str, str] | None,
    result: PushPullResult,
) -> SelftestImage:
    from app import registry_api

    client = registry_docker_client(transport, plan.registry.sudo and not from_local)
    try:
        arch = str(client.version().get("Arch") or "amd64")
        image = build_selftest_image(plan.registry_reference, architecture=arch,
                                     tag=selftest_tag(plan))
        result.reference = image.reference
        auth_config = {"username": auth[0], "password": auth[1]} if auth else None
        try:
            _load(client, image)
            pushed_as = _push(client, image, plan, from_local, auth_config, result)
            _remove_image(client, image, pushed_as)
            parse_pull_events(
                client.api.pull(pushed_as, tag=image.tag, stream=True, decode=True,
                                auth_config=auth_config)
            )
            result.pulled_digest = _pulled_digest(client, image, pushed_as)
        finally:
            _remove_image(client, image, loopback_repository(plan))
    finally:
        client.close()
    basic = registry_api.BasicAuth(*auth) if auth else None
    base = registry_api.base_url(plan.registry.address, plan.registry.port)
    result.registry_digest = registry_api.manifest_digest(
        base, _ca_path(plan), SELFTEST_REPOSITORY, image.tag, auth=basic
    )
    _compare_digests(result)
    return image


def loopback_repository(plan: Plan) -> str:
    return f"127.0.0.1:{plan.registry.port}/{SELFTEST_REPOSITORY}"


def _push(
    client: Any,
    image: SelftestImage,
    plan: Plan,
    from_local: bool,
    auth_config: dict[str, str] | None,
    result: PushPullResult,
) -> str:
    """Push as ``<address>:<port>/...``; returns the repository name that was pushed.

    The registry host's own Docker usually does not trust our CA (it is no node). Docker treats
    127.0.0.0/8 registries as insecure, so the host can still push through its loopback port:
    the same registry and repository, TLS then proven by the registry API check and the nodes.
    """
    try:
        result.pushed_digest = parse_push_events(
            client.api.push(image.repository, tag=image.tag, stream=True, decode=True,
                            auth_config=auth_config)
        )
        return image.repository
    except RegwizError as error:
        if from_local or not _is_x509(error.message) or _is_loopback(plan.registry.address):
            raise
    loopback = loopback_repository(plan)
    client.api.tag(image.image_id, loopback, image.tag)
    result.pushed_digest = parse_push_events(
        client.api.push(loopback, tag=image.tag, stream=True, decode=True,
                        auth_config=auth_config)
    )
    result.note = (
        f"the registry host's Docker does not trust the CA for {plan.registry_reference} (it is "
        f"not onboarded as a node), so it pushed and pulled through {loopback.split('/')[0]}, "
        "which Docker treats as a loopback registry; TLS was checked by the registry API call "
        "from this machine and by the nodes"
    )
    return loopback


def _is_loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return address == "localhost"


def _load(client: Any, image: SelftestImage) -> None:
    import docker.errors

    try:
        client.images.load(image.archive)
    except docker.errors.APIError as error:
        raise RegwizError(
            f"loading the self-test image failed: {error.explanation or error}"
        ) from None


def _remove_image(client: Any, image: SelftestImage, other_repository: str) -> None:
    """Remove the tags and the image itself, so the pull really comes from the registry."""
    import docker.errors

    names = [image.reference, f"{other_repository}:{image.tag}", image.image_id]
    for name in names:
        try:
            client.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as error:
            raise RegwizError(f"removing {name} failed: {error.explanation or error}") from None


def _pulled_digest(client: Any, image: SelftestImage, repository: str) -> str | None:
    import docker.errors

    reference = f"{repository}:{image.tag}"
    try:
        pulled = client.images.get(reference)
    except docker.errors.ImageNotFound:
        raise RegwizError(f"{reference} is not there after the pull") from None
    if pulled.id != image.image_id:
        raise RegwizError(
            f"the pulled image has id {pulled.id}, expected {image.image_id}: the registry "
            "returned different content"
        )
    return digest_from_repo_digests(pulled.attrs.get("RepoDigests") or [], repository)


def _compare_digests(result: PushPullResult) -> None:
    found = {
        "push": result.pushed_digest,
        "pull": result.pulled_digest,
        "registry API": result.registry_digest,
    }
    if None in found.values() or len(set(found.values())) != 1:
        shown = ", ".join(f"{name} {digest or 'none'}" for name, digest in found.items())
        raise RegwizError(
            f"digests differ ({shown})", "the registry did not store what was pushed: check it"
        )


def selftest_tag(plan: Plan) -> str:
    """A tag of its own per run where verify deletes it afterwards; else the one reused tag, so
    a registry without deletes does not collect a new self-test tag on every run."""
    return new_selftest_tag() if plan.registry.delete_enabled else REUSED_SELFTEST_TAG


def _delete_test_tag(plan: Plan, auth: tuple[str, str] | None, image: SelftestImage) -> str:
    from app import registry_api

    where = f"{SELFTEST_REPOSITORY}:{image.tag}"
    if not plan.registry.delete_enabled:
        return (f"{where} stays in the registry, replaced by the next run "
                "(registry.delete_enabled is false)")
    base = registry_api.base_url(plan.registry.address, plan.registry.port)
    ca_path, basic = _ca_path(plan), registry_api.BasicAuth(*auth) if auth else None
    try:
        digest = registry_api.manifest_digest(
            base, ca_path, SELFTEST_REPOSITORY, image.tag, auth=basic
        )
        if digest:
            registry_api.delete_manifest(base, ca_path, SELFTEST_REPOSITORY, digest, auth=basic)
    except RegwizError as error:
        return f"{where} could not be deleted: {error.message}"
    return f"{where} deleted from the registry"


# --- per node ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NodeJob:
    """What every node's check shares."""

    plan: Plan
    secrets: Secrets
    policy: Any
    image: ProvenImage
    expected_digest: str | None
    auth: tuple[str, str] | None
    notify: ProgressCallback
    stop: Callable[[], bool]
    node_credential: NodeCredential | None = None  # what onboarding installed on the nodes
    rejected: frozenset[str] = frozenset()  # hosts whose key the user rejected


def _stopwatch(policy: Any) -> Stopwatch:
    """Times a node without its waits for the user (counted by the policy's questions)."""
    waits = getattr(policy, "waits", None)
    return Stopwatch(waits if isinstance(waits, UserWaits) else UserWaits())


def _verify_node_safely(job: _NodeJob, node: ResolvedNode, result: NodeVerifyResult) -> None:
    stopwatch = _stopwatch(job.policy)
    try:
        if job.stop():
            _finish(result, CheckState.SKIPPED, "cancelled", job.notify)
            return
        _finish(result, CheckState.RUNNING, "connecting", job.notify)
        _verify_node(job, node, result)
        failed = [check for check in result.checks if not check.passed]
        if failed:
            _finish(result, CheckState.FAILED, f"{failed[0].kind}: {failed[0].detail}",
                    job.notify, failed[0].hint)
        else:
            kinds = ", ".join(check.kind for check in result.checks)
            _finish(result, CheckState.PASSED, f"passed: {kinds}", job.notify)
    except RegwizError as error:
        _finish(result, CheckState.FAILED, error.message, job.notify, error.hint)
    except Exception as error:  # noqa: BLE001 - one broken node must not hide the others
        _finish(result, CheckState.FAILED, f"unexpected error: {error!r}", job.notify)
    finally:
        result.seconds = stopwatch.elapsed()


def _verify_node(job: _NodeJob, node: ResolvedNode, result: NodeVerifyResult) -> None:
    from app.connections import open_node_transport, rejected_host_key_error

    if node.host in job.rejected:
        raise rejected_host_key_error(node.host)  # connecting would ask about it again
    with open_node_transport(node, job.secrets, job.policy) as transport:
        job.notify(VerifyProgress(node.host, CheckState.RUNNING, "detecting runtimes"))
        facts = _probe(transport, node)
        result.runtimes = list(facts.runtimes)
        _registry_checks(job, node, facts, transport, result)
        if job.plan.mirrors:
            result.checks += mirror_checks(job, node, facts, transport)


def _registry_checks(job: _NodeJob, node: ResolvedNode, facts: NodeFacts, transport: Transport,
                     result: NodeVerifyResult) -> None:
    """The node's proof that it pulls from the plan's registry."""
    if job.node_credential is not None:
        result.checks += _credential_checks(job, node, facts, transport)
        return
    if job.auth is not None:
        result.checks += _login_checks(job, node, facts, transport)
    else:
        result.checks += _pull_checks(job, node, facts, transport)
    if node.os_trust_store or not result.checks:
        result.checks.append(
            run_os_store_check(transport, job.plan) if job.auth is None
            else run_login_check(transport, job, None)
        )


def mirror_checks(job: _NodeJob, node: ResolvedNode, facts: NodeFacts,
                  transport: Transport) -> list[NodeCheck]:
    """Each mirror's image (``verify_image``) pulled with every runtime of the node as its pods
    would pull it (by the upstream's name, so through the mirror onboarding configured)."""
    from app.onboard import mirror_job
    from app.runtimes import registry as runtimes
    from app.runtimes.base import NoteAction

    try:
        ca_pem = job.plan.trusted_ca_path.read_bytes()
    except OSError as error:
        raise RegwizError(f"cannot read the CA {job.plan.trusted_ca_path}: {error}") from None
    notes = {(runtime, action.upstream): action for runtime, action in runtimes.mirror_actions(
        facts, mirror_job(job.plan, node, ca_pem, job.node_credential))
        if isinstance(action, NoteAction) and action.upstream}
    checks: list[NodeCheck] = []
    for index, mirror in enumerate(job.plan.mirrors):
        cache = job.plan.mirror_address(mirror).reference
        kind = f"mirror of {mirror.upstream} ({cache})"
        image = mirror.image_to_verify
        if image is None:
            checks.append(NodeCheck(kind, "-", True,
                                    f"not checked: set mirrors[{index}].verify_image"))
            continue
        path, tag = _split_tag(image)
        named = NamedImage(mirror.upstream, path, tag)
        for adapter, name in runtimes.in_use(facts.runtimes):
            if job.stop():
                raise RegwizError("cancelled")
            note = notes.get((name, mirror.upstream))
            if note is not None:
                checks.append(NodeCheck(f"{kind}, {name}", "-", not note.refuse,
                                        f"not checked: {note.note}", note.hint))
                continue
            job.notify(VerifyProgress(node.host, CheckState.RUNNING, f"{kind}: {name} pull"))
            checks += _mirror_pull(job, node, facts, transport, adapter, name, named, cache)
    return checks


def _mirror_pull(job: _NodeJob, node: ResolvedNode, facts: NodeFacts, transport: Transport,
                 adapter: RuntimeAdapter, name: str, image: NamedImage,
                 cache: str) -> list[NodeCheck]:
    """One runtime's pull of ``image``: through its CRI socket as the kubelet pulls, else (or
    when the CRI cannot be reached) with the runtime's own pull; failures name the node, the
    mirror and the upstream."""
    kind = f"mirror of {image.registry} ({cache}), {name}"
    socket = adapter.cri_socket(name, facts)
    done: list[NodeCheck] | str = ""
    if socket is not None:
        done = run_cri_pull_check(transport, job.plan, node.sudo, name, socket, image, None)
    if isinstance(done, str):
        spec = adapter.pull_check(name, facts, image.reference, sudo=node.sudo,
                                  helpers=frozenset(), image_id=None)
        if spec is None:
            return [NodeCheck(kind, "-", True, f"not checked: {name} has no pull of its own")]
        done = [run_pull_check(transport, spec, image, job.plan)]
    return [_about_mirror(check, kind, node, image, cache) for check in done]


def _about_mirror(check: NodeCheck, kind: str, node: ResolvedNode, image: NamedImage,
                  cache: str) -> NodeCheck:
    if check.passed:
        return replace(check, kind=f"{kind}: {check.kind}",
                       detail=f"{check.detail} (through the mirror {cache})")
    return replace(check, kind=f"{kind}: {check.kind}",
                   detail=f"node {node.host} could not pull {image.reference} through the "
                          f"mirror of {image.registry} at {cache}: {check.detail}",
                   # (the pull's own hint speaks of the registry, not of this cache)
                   hint=f"run regwiz onboard (it points the runtime at the mirror and trusts "
                        f"{cache}), then check that the cache answers (regwiz status) and "
                        f"reaches {image.registry}")


def _pull_checks(
    job: _NodeJob, node: ResolvedNode, facts: NodeFacts, transport: Transport
) -> list[NodeCheck]:
    """A real pull with every runtime the node uses (registry without auth)."""
    def pull(adapter: RuntimeAdapter, name: str, have: frozenset[str]
             ) -> NodeCheckSpec | NodeCheck | None:
        if (problem := adapter.trust_problem(name, facts)) is not None:
            return trust_problem_check(problem)
        return adapter.pull_check(name, facts, job.image.reference, sudo=node.sudo,
                                  helpers=have, image_id=job.image.image_id)

    return _runtime_pull_checks(job, node, facts, transport, pull)


PullOf = Callable[["RuntimeAdapter", str, frozenset[str]], "NodeCheckSpec | NodeCheck | None"]


def _runtime_pull_checks(job: _NodeJob, node: ResolvedNode, facts: NodeFacts,
                         transport: Transport, pull_of: PullOf,
                         proven: set[str] | None = None) -> list[NodeCheck]:
    """One pull per runtime in use: through its CRI socket as the kubelet pulls when it has
    one (``proven`` collects the runtimes proven so), else (or when the CRI cannot be reached)
    as ``pull_of`` says (a spec to run, a check already judged, or None); each kind of pull
    once, since runtimes may share one (CRI-O and podman)."""
    from app.runtimes import registry as runtimes

    wanted = runtimes.helper_programs(facts.runtimes)
    have = frozenset(_helpers_present(transport, wanted) if wanted else ())
    checks: list[NodeCheck] = []
    kinds_done: set[str] = set()
    sockets_done: set[str] = set()  # k3s and RKE2 share one socket: one CRI pull
    for adapter, name in runtimes.in_use(facts.runtimes):
        if job.stop():
            raise RegwizError("cancelled")
        spec = pull_of(adapter, name, have)
        socket = adapter.cri_socket(name, facts)
        if socket in sockets_done:
            continue
        cri = _cri_check(job, node, transport, name, socket, adapter.sandbox_image(name, facts))
        if isinstance(cri, list):
            if isinstance(spec, NodeCheck):  # a trust problem: its exact reason first
                checks.append(spec)
            checks += cri
            sockets_done.add(str(socket))
            if proven is not None:
                proven.add(name)
            continue
        if isinstance(spec, NodeCheck):
            checks.append(spec)
        elif spec is not None and spec.kind not in kinds_done:
            kinds_done.add(spec.kind)
            if cri:  # say what this fallback does not prove
                spec = replace(spec, kind=f"{spec.kind} (CRI not reachable: {cri})")
            job.notify(VerifyProgress(node.host, CheckState.RUNNING, spec.kind))
            checks.append(run_pull_check(transport, spec, job.image, job.plan,
                                         job.expected_digest))
    return checks


def _cri_check(job: _NodeJob, node: ResolvedNode, transport: Transport, runtime: str,
               socket: str | None, sandbox: str | None) -> list[NodeCheck] | str:
    """The CRI pull's checks, or why it could not be made ("" for a runtime without CRI)."""
    if socket is None:
        return ""
    job.notify(VerifyProgress(node.host, CheckState.RUNNING, f"CRI pull as the kubelet "
                                                             f"({runtime})"))
    return run_cri_pull_check(transport, job.plan, node.sudo, runtime, socket, job.image,
                              job.expected_digest, sandbox)


def kubelet_pull_login(transport: Transport, sudo: bool,
                       reference: str) -> tuple[PullAuth | None, str]:
    """The login the kubelet would pass for ``reference`` (read from its config.json, over the
    node's connection: never on a command line), and where it came from, for the report."""
    from app.cri.image_service import PullAuth
    from app.runtimes.credentials import KUBELET_CONFIG, kubelet_login

    try:
        raw = transport.read_file(KUBELET_CONFIG, sudo=sudo)
    except RegwizError as error:
        return None, f"without a credential ({KUBELET_CONFIG} unreadable: {error.message})"
    login = kubelet_login(raw, reference)
    if login is None:
        return None, f"without a credential (none for it in {KUBELET_CONFIG})"
    return PullAuth(*login), f"with the kubelet's credential from {KUBELET_CONFIG}"


def run_cri_pull_check(transport: Transport, plan: Plan, sudo: bool, runtime: str,
                       socket: str, image: ProvenImage, expected_digest: str | None,
                       sandbox: str | None = None) -> list[NodeCheck] | str:
    """PullImage, ImageStatus, RemoveImage through ``socket`` as the kubelet calls them (and
    the sandbox image's check); a reason string when the CRI cannot be reached (the caller
    falls back)."""
    from app.cri.grpc_stream import GrpcError
    from app.cri.pull import CriUnreachable, cri_pull
    from app.cri.relay import describe_relay

    login, source = kubelet_pull_login(transport, sudo, image.reference)
    kind = f"CRI pull as the kubelet ({runtime})"
    shown = (f"CRI PullImage/ImageStatus/RemoveImage {image.reference} over "
             f"{describe_relay(transport, socket, sudo=sudo)}")
    try:
        # never remove the cluster's own image (a registry regwiz did not deploy)
        remove = isinstance(image, SelftestImage)
        result = cri_pull(transport, socket, image.reference, login, sudo=sudo,
                          timeout=PULL_TIMEOUT, sandbox_image=sandbox, remove=remove)
    except CriUnreachable as error:
        return error.message
    except GrpcError as error:
        detail, hint = explain_node_failure(error.message, plan.registry_reference)
        return [NodeCheck(kind, shown, False, f"{detail} (pulled {source})", hint)]
    extra = [sandbox_check(result.sandbox, runtime)] if result.sandbox else []
    if expected_digest and result.digest != expected_digest:
        return [NodeCheck(kind, shown, False,
                          f"the CRI reports digest {result.digest} for {image.reference}, "
                          f"pushed was {expected_digest}",
                          "the node reached another registry under this name: check DNS/mirrors",
                          result.digest), *extra]
    return [NodeCheck(kind, shown, True,
                      f"pulled {image.reference} through {result.runtime}'s CRI ({result.api}) "
                      f"{source}; digest {result.digest}; "
                      f"{'removed again' if remove else 'left on the node'}", None,
                      result.digest),
            *extra]


def sandbox_check(sandbox: SandboxStatus, runtime: str) -> NodeCheck:
    """What the node's sandbox (pause) image means for pods. Informational: it never fails the
    node (an air-gapped node may be given it another way), but a hint says what to do."""
    kind = f"sandbox image ({runtime})"
    shown = f"CRI ImageStatus {sandbox.image} (PullImage when missing)"
    if sandbox.present:
        return NodeCheck(kind, shown, True, f"{sandbox.image} is on the node")
    if sandbox.pulled:
        return NodeCheck(kind, shown, True, f"{sandbox.image} was not on the node; it pulls "
                                            "(removed again)")
    return NodeCheck(kind, shown, True,
                     f"{sandbox.image} is not on the node and cannot be pulled: {sandbox.error}",
                     "every pod starts with this image: load it on the node (ctr -n k8s.io "
                     "images import) or point the CRI's sandbox_image at your registry")


def _login_checks(
    job: _NodeJob, node: ResolvedNode, facts: NodeFacts, transport: Transport
) -> list[NodeCheck]:
    """htpasswd mode: nodes hold no registry password (kubelet gets it from an imagePullSecret),
    so a runtime pull would only prove "unauthorized". Instead, for each runtime, an HTTPS
    request for the test image's manifest that trusts only the CA file that runtime reads, with
    the credentials sent on stdin (never on a command line)."""
    from app.runtimes import registry as runtimes

    checks = [trust_problem_check(problem) for _, problem in runtimes.trust_problems(facts)]
    for runtime, ca_path in runtimes.ca_locations(facts, job.plan.registry_address, False):
        if job.stop():
            raise RegwizError("cancelled")
        job.notify(VerifyProgress(node.host, CheckState.RUNNING, f"{runtime}: HTTPS with login"))
        checks.append(run_login_check(transport, job, (runtime, ca_path)))
    return checks


def _credential_checks(
    job: _NodeJob, node: ResolvedNode, facts: NodeFacts, transport: Transport
) -> list[NodeCheck]:
    """With the pull credential installed on the nodes: prove the node's INSTALLED credential
    pulls, and that the registry refuses anonymous access.

    - each runtime that itself reads its installed file pulls with it (the adapter's
      ``credential_pull_check``, e.g. docker pull as root, k3s crictl pull);
    - the kubelet's file: root on the node reads the credential from it and fetches the test
      image's manifest over TLS trusting each runtime's CA file (or the OS store); the login
      reaches curl through a here-document, never a command line;
    - ``GET /v2/`` without credentials must answer 401.
    """
    from app.runtimes import registry as runtimes

    checks = [trust_problem_check(problem) for _, problem in runtimes.trust_problems(facts)]
    proven: set[str] = set()
    checks += _runtime_pull_checks(
        job, node, facts, transport,
        lambda adapter, name, have: adapter.credential_pull_check(
            name, facts, job.image.reference, sudo=node.sudo, helpers=have,
            image_id=job.image.image_id), proven)
    # The kubelet's file by curl only where no CRI pull already used it.
    targets: list[tuple[str, str] | None] = [
        target for target in runtimes.ca_locations(facts, job.plan.registry_address, False)
        if target[0] not in proven]
    if node.os_trust_store or not (targets or proven):
        targets.append(None)
    for target in targets:
        if job.stop():
            raise RegwizError("cancelled")
        job.notify(VerifyProgress(node.host, CheckState.RUNNING, "kubelet credential"))
        checks.append(run_kubelet_credential_check(transport, job, node, target))
    locations = runtimes.ca_locations(facts, job.plan.registry_address, False)
    first = locations[0][1] if locations else None
    checks.append(run_anonymous_check(transport, job.plan, first))
    return checks


def _probe(transport: Transport, node: ResolvedNode) -> NodeFacts:
    """The runtimes the node really uses (the plan's choice, or what detection finds)."""
    from app.runtimes.probe import probe_node

    return probe_node(transport, sudo=node.sudo, runtime=node.runtime)


def trust_problem_check(problem: TrustProblem) -> NodeCheck:
    """A failed check for a runtime that ignores its CA file (a pull could pass where kubelet's
    would not)."""
    return NodeCheck(problem.check, f"read {problem.path}", False, problem.detail, problem.hint)


def _helpers_present(transport: Transport, programs: Iterable[str]) -> set[str]:
    names = " ".join(programs)
    found = transport.run(
        ["sh", "-c", f"for p in {names}; do command -v $p >/dev/null && echo $p; done"],
        check=False,
    )
    return set(found.stdout.split())


def run_pull_check(
    transport: Transport,
    spec: NodeCheckSpec,
    image: ProvenImage,
    plan: Plan,
    expected_digest: str | None = None,
) -> NodeCheck:
    pulled = transport.run(spec.pull, sudo=spec.sudo, timeout=PULL_TIMEOUT, check=False)
    shown = display_command(spec.pull)
    if not pulled.ok:
        detail, hint = explain_node_failure(pulled.stderr + "\n" + pulled.stdout,
                                            plan.registry_reference)
        return NodeCheck(spec.kind, shown, False, detail, hint)
    digest = _node_digest(transport, spec, image, pulled.stdout)
    if spec.cleanup and isinstance(image, SelftestImage):  # never remove the cluster's own image
        transport.run(spec.cleanup, sudo=spec.sudo, check=False)
    if digest and expected_digest and digest != expected_digest:
        return NodeCheck(spec.kind, shown, False,
                         f"pulled digest {digest} differs from the pushed {expected_digest}",
                         "the node reached another registry under this name: check DNS/mirrors",
                         digest)
    return NodeCheck(spec.kind, shown, True, f"pulled {image.reference}", None, digest)


def _node_digest(
    transport: Transport, spec: NodeCheckSpec, image: ProvenImage, pull_output: str
) -> str | None:
    if spec.parse_digest is None:
        return None
    output = pull_output
    if spec.digest is not None:
        output = transport.run(spec.digest, sudo=spec.sudo, check=False).stdout
    return spec.parse_digest(output, image.reference)


def run_os_store_check(transport: Transport, plan: Plan) -> NodeCheck:
    argv = os_store_check_argv(plan.registry.address, plan.registry.port)
    kind = "TLS handshake (OS trust store only)"
    answer = transport.run(argv, timeout=60.0, check=False)
    shown = display_command(argv)
    if answer.exit_status == 127:
        return NodeCheck(kind, shown, False, "neither curl nor openssl is installed on the node",
                         "install curl or openssl on the node")
    if os_store_passed(answer.exit_status, answer.stdout):
        status = answer.stdout.strip()
        detail = f"{plan.registry_address.api_url} answered HTTP {status}" if status else (
            f"TLS handshake with {plan.registry_reference} verified")
        return NodeCheck(kind, shown, True, detail)
    detail, hint = explain_node_failure(answer.stderr + "\n" + answer.stdout,
                                        plan.registry_reference)
    if hint == TRUST_HINT:
        hint = "the CA is not in the node's OS trust store: set os_trust_store = true for the " \
               "node and run regwiz onboard"
    return NodeCheck(kind, shown, False, detail, hint)


# --- htpasswd mode -------------------------------------------------------------------------------


def login_check_argv(url: str, ca_path: str | None) -> list[str]:
    """HEAD of a manifest with curl: credentials come from a config on stdin (``-K -``).

    ``--cacert`` makes curl trust that file only; without it, only the OS store.
    """
    from app.registry_api import MANIFEST_MEDIA_TYPES

    argv = ["curl", "-sS", "--max-time", "20", "-I", "-K", "-",
            "-H", f"Accept: {MANIFEST_MEDIA_TYPES}"]
    if ca_path:
        argv += ["--cacert", ca_path]
    return [*argv, url]


def curl_user_config(username: str, password: str) -> bytes:
    """curl's config syntax for ``user``: a quoted string with backslash escapes."""
    value = f"{username}:{password}"
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"),
                         ("\t", "\\t")):
        value = value.replace(raw, escaped)
    return f'user = "{value}"\n'.encode()


def parse_head_response(output: str) -> tuple[int | None, str | None]:
    """(HTTP status of the last response, Docker-Content-Digest) from ``curl -I`` output."""
    status: int | None = None
    digest: str | None = None
    for line in output.splitlines():
        if line.startswith("HTTP/"):
            parts = line.split()
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            digest = None
        name, _, value = line.partition(":")
        if name.strip().lower() == "docker-content-digest":
            digest = value.strip()
    return status, digest


def run_login_check(
    transport: Transport, job: _NodeJob, runtime_ca: tuple[str, str] | None
) -> NodeCheck:
    assert job.auth is not None
    plan, image = job.plan, job.image
    url = f"{plan.registry_address.api_url}{image.repository_path}/manifests/{image.tag}"
    ca_path = runtime_ca[1] if runtime_ca else None
    kind = (f"{runtime_ca[0]} CA + login (curl --cacert {ca_path})" if runtime_ca
            else "TLS + login (OS trust store only)")
    argv = login_check_argv(url, ca_path)
    answer = transport.run(argv, stdin=curl_user_config(*job.auth), timeout=60.0, check=False)
    shown = display_command(argv)
    return _manifest_check(
        job, kind, shown, answer,
        missing_curl="install curl: in htpasswd mode regwiz checks nodes with it",
        refused=("the registry rejected the credentials (HTTP 401)",
                 "check --credentials-file / REGWIZ_REGISTRY_PASSWORD"),
        fetched=f"manifest of {image.reference} fetched with login over TLS trusting "
                f"{ca_path or 'the OS store'} (pods need an imagePullSecret: see regwiz k8s)",
    )


def _manifest_check(job: _NodeJob, kind: str, shown: str, answer: CommandResult, *,
                    missing_curl: str, refused: tuple[str, str], fetched: str) -> NodeCheck:
    """Judge a ``curl -I`` of the test image's manifest made on a node: curl missing, a TLS or
    network failure, the login refused (``refused``: detail and hint), another HTTP status,
    another digest than the one pushed, or ``fetched`` (the evidence)."""
    if answer.exit_status == 127:
        return NodeCheck(kind, shown, False, "curl is not installed on the node", missing_curl)
    if answer.exit_status != 0:
        detail, hint = explain_node_failure(answer.stderr + "\n" + answer.stdout,
                                            job.plan.registry_reference)
        return NodeCheck(kind, shown, False, detail, hint)
    status, digest = parse_head_response(answer.stdout)
    if status == 401:
        return NodeCheck(kind, shown, False, *refused)
    if status != 200:
        return NodeCheck(kind, shown, False, f"the manifest request answered HTTP {status}")
    if job.expected_digest and digest != job.expected_digest:
        return NodeCheck(kind, shown, False,
                         f"manifest digest {digest} differs from the pushed {job.expected_digest}",
                         None, digest)
    return NodeCheck(kind, shown, True, fetched, None, digest)


# --- the pull credential installed on the node -------------------------------------------------

# Reads the Docker-format config ($1) as root, takes the "auth" value of the registry (matched by
# the sed pattern $2), and HEADs the manifest URL ($3) with it, trusting $4 (or the OS store).
# The login goes to curl in a here-document (its config on stdin): never in any argv.
KUBELET_CHECK_SCRIPT = r"""f=$1; pattern=$2; url=$3; ca=$4; accept=$5
if [ ! -r "$f" ]; then echo "$f: no such file (no credential installed)" >&2; exit 3; fi
b64='\([A-Za-z0-9+/=]*\)'
auth=$(tr -d ' \t\r\n' < "$f" | sed -n "s|.*\"$pattern\":{[^}]*\"auth\":\"$b64\".*|\1|p")
if [ -z "$auth" ]; then echo "$f holds no credential for the registry" >&2; exit 4; fi
set -- -sS --max-time 20 -I -K - -H "Accept: $accept"
if [ -n "$ca" ]; then set -- "$@" --cacert "$ca"; fi
exec curl "$@" "$url" <<REGWIZ_END
header = "Authorization: Basic $auth"
REGWIZ_END
"""
_NO_FILE_STATUS, _NO_ENTRY_STATUS = 3, 4


def sed_literal(text: str) -> str:
    """``text`` as a literal in a sed basic regular expression delimited by ``|``."""
    return "".join("\\" + c if c in "\\.[]*^$|" else c for c in text)


def kubelet_check_argv(config: str, registry: str, url: str, ca_path: str | None) -> list[str]:
    from app.registry_api import MANIFEST_MEDIA_TYPES

    return ["sh", "-c", KUBELET_CHECK_SCRIPT, "sh", config, sed_literal(registry), url,
            ca_path or "", MANIFEST_MEDIA_TYPES]


def run_kubelet_credential_check(
    transport: Transport, job: _NodeJob, node: ResolvedNode, runtime_ca: tuple[str, str] | None
) -> NodeCheck:
    """Root on the node reads the kubelet's installed credential and fetches the test image's
    manifest with it (the kubelet hands the same login to any CRI runtime)."""
    from app.runtimes.credentials import KUBELET_CONFIG

    plan, image = job.plan, job.image
    url = f"{plan.registry_address.api_url}{image.repository_path}/manifests/{image.tag}"
    ca_path = runtime_ca[1] if runtime_ca else None
    trusting = f"{runtime_ca[0]}'s CA" if runtime_ca else "the OS trust store"
    kind = f"kubelet credential ({KUBELET_CONFIG}) over TLS trusting {trusting}"
    argv = kubelet_check_argv(KUBELET_CONFIG, plan.registry_reference, url, ca_path)
    answer = transport.run(argv, sudo=node.sudo, timeout=60.0, check=False)
    shown = f"sh -c <read the login from {KUBELET_CONFIG} as root; curl -I {url}>"
    if answer.exit_status in (_NO_FILE_STATUS, _NO_ENTRY_STATUS):
        return NodeCheck(kind, shown, False, key_error_line(answer.stderr),
                         "run regwiz onboard to install the pull credential")
    return _manifest_check(
        job, kind, shown, answer,
        missing_curl="install curl: regwiz checks the kubelet's credential with it",
        refused=("the registry refused the node's installed credential (HTTP 401)",
                 "it is not the current one: run regwiz onboard"),
        fetched=f"fetched the manifest of {image.reference} with the installed credential",
    )


def anonymous_check_argv(url: str, ca_path: str | None) -> list[str]:
    argv = ["curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"]
    if ca_path:
        argv += ["--cacert", ca_path]
    return [*argv, url]


def run_anonymous_check(transport: Transport, plan: Plan, ca_path: str | None) -> NodeCheck:
    """``GET /v2/`` from the node with no credentials must be refused (HTTP 401)."""
    kind = "anonymous access refused"
    argv = anonymous_check_argv(plan.registry_address.api_url, ca_path)
    answer = transport.run(argv, timeout=60.0, check=False)
    shown = display_command(argv)
    if answer.exit_status == 127:
        return NodeCheck(kind, shown, False, "curl is not installed on the node",
                         "install curl: regwiz checks the registry's refusal with it")
    if answer.exit_status != 0:
        detail, hint = explain_node_failure(answer.stderr + "\n" + answer.stdout,
                                            plan.registry_reference)
        return NodeCheck(kind, shown, False, detail, hint)
    status = answer.stdout.strip()[-3:]
    if status == "401":
        return NodeCheck(kind, shown, True, "GET /v2/ without credentials answered HTTP 401")
    return NodeCheck(kind, shown, False,
                     f"GET /v2/ without credentials answered HTTP {status or '?'}: anyone who "
                     "can reach the registry can pull", "deploy the registry with auth")
