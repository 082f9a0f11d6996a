"""The plan file: what the wizard will build, as TOML the operator can read, edit and keep.

Read and written with tomlkit so that comments and layout survive a save. Secrets are never part
of a plan: they come from prompts or the ``REGWIZ_*`` environment variables (see ``Secrets``).
Loading reports every problem at once, one line each, naming the key (``PlanError``).
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from app import validate
from app.address import RegistryAddress
from app.errors import RegwizError, UsageError
from app.paths import expand_user, unknown_home

DEFAULT_CERT_DIRECTORY = "certs"
#: While a CA rotation runs (app.ca_rotation), the cert dir holds this bundle of the old and
#: the new CA: what nodes, the registry host and every TLS check trust until it finishes.
CA_BUNDLE_NAME = "ca-bundle.crt"


class PlanError(UsageError):
    """An invalid plan (exit 2). ``problems``: one line per problem, each naming the key."""

    def __init__(self, problems: list[str], path: Path | str | None = None) -> None:
        self.problems = list(problems) or ["unknown problem"]
        where = f"plan {path}" if path is not None else "plan"
        count = len(self.problems)
        header = f"invalid {where} ({count} problem{'s' if count != 1 else ''}):"
        super().__init__(
            "\n".join([header, *(f"  {line}" for line in self.problems)]),
            "fix the lines above in the plan file and run again",
        )


# --------------------------------------------------------------------------- settings


@dataclass
class CertificateSettings:
    common_name: str = "registry.internal"
    country: str = ""
    state: str = ""
    locality: str = ""
    organization: str = ""
    organizational_unit: str = ""
    email: str = ""
    subject_alt_names: list[str] = field(default_factory=list)
    key_type: str = "ecdsa-p256"
    ca_validity_days: int = 3650
    cert_validity_days: int = 825
    directory: str = DEFAULT_CERT_DIRECTORY
    name_constraints: bool = False


@dataclass
class RegistrySettings:
    host: str = "local"
    ssh_user: str = "root"
    ssh_port: int = 22
    identity_file: str | None = None
    sudo: bool = True
    address: str = "registry.internal"
    port: int = 8443
    image: str = "registry:2"
    #: the exact image ``image`` named when the registry was first deployed (``sha256:``: its
    #: repository digest, or its image ID when it has none); later deploys run this one, so a
    #: tag that moves on the host changes nothing until ``regwiz upgrade``. None: not yet pinned
    image_digest: str | None = None
    container_name: str = "registry"
    data_dir: str = "/registry-image"
    certs_dir: str = "/etc/docker/certs"
    #: "htpasswd" (the default: accounts with roles, enforced by the front) or "none"
    auth: str = "htpasswd"
    delete_enabled: bool = False
    #: status warns (and exits 1) when the data volume is at least this full (percent, 1..99)
    disk_warn_percent: int = 85
    #: the environment variable holding this host's sudo password (a name, never the secret)
    sudo_password_env: str | None = None
    #: the one host address the port is published on ("0.0.0.0": every IPv4 address)
    bind_address: str = "0.0.0.0"  # noqa: S104 - the documented default: every address
    #: the TLS-terminating front (nginx) that enforces the account roles (auth = "htpasswd")
    front_image: str = "nginx:stable"
    #: false: a registry regwiz did not deploy (Harbor, Quay, Nexus, ...): no registry host, no
    #: deploy or certificates; nodes are onboarded to trust ``ca_file`` and pull with
    #: ``pull_auth_file``
    managed: bool = True
    #: the PEM CA that signs the registry's certificate (default: the cert dir's ca.crt)
    ca_file: str | None = None
    #: a Docker config.json holding the login nodes pull with (e.g. a Harbor robot account)
    pull_auth_file: str | None = None
    #: the image verify pulls on every node when regwiz cannot push its own (e.g. library/x:1)
    verify_image: str | None = None

    @property
    def is_local(self) -> bool:
        return self.host == "local"


@dataclass
class NodeDefaults:
    ssh_user: str = "root"
    ssh_port: int = 22
    sudo: bool = True
    runtime: str = "auto"
    os_trust_store: bool = False
    identity_file: str | None = None
    sudo_password_env: str | None = None
    #: true: nodes pull mirrored upstreams only through the mirrors, never from the upstream
    #: itself (air-gapped clusters); false: the upstream is the fallback
    mirror_only: bool = False


@dataclass
class NodeSettings:
    """One node as written in the plan: None means "use nodes.defaults"."""

    host: str
    ssh_user: str | None = None
    ssh_port: int | None = None
    sudo: bool | None = None
    runtime: str | None = None
    os_trust_store: bool | None = None
    identity_file: str | None = None
    sudo_password_env: str | None = None
    mirror_only: bool | None = None


@dataclass(frozen=True)
class ResolvedNode:
    """A node with the defaults applied. ``identity_file`` None means ssh-agent / ~/.ssh/config."""

    host: str
    ssh_user: str
    ssh_port: int
    sudo: bool
    runtime: str
    os_trust_store: bool
    identity_file: str | None
    sudo_password_env: str | None = None
    mirror_only: bool = False


#: Where a pull-through cache fetches from when the plan gives no remote_url.
WELL_KNOWN_UPSTREAMS: dict[str, str] = {
    "docker.io": "https://registry-1.docker.io",
    "registry.k8s.io": "https://registry.k8s.io",
    "quay.io": "https://quay.io",
    "ghcr.io": "https://ghcr.io",
}
#: What verify pulls through a cache when the plan names no verify_image (small, always there).
WELL_KNOWN_VERIFY_IMAGES: dict[str, str] = {
    "docker.io": "library/busybox:latest",
    "registry.k8s.io": "pause:3.9",
}
MIRROR_PASSWORD_ENV = "REGWIZ_MIRROR_{name}_PASSWORD"  # noqa: S105 - a variable name pattern
_MIRROR_PASSWORD_VAR = re.compile(r"REGWIZ_MIRROR_[A-Z0-9_]+_PASSWORD")


@dataclass
class MirrorSettings:
    """One ``[[mirrors]]`` entry: a pull-through cache of ``upstream`` on the registry host.

    The upstream's password is never in the plan: ``password_env`` names its variable."""

    upstream: str  # the registry name image references use, e.g. docker.io
    port: int  # published on the registry host, next to the registry's own port
    remote_url: str | None = None  # default: WELL_KNOWN_UPSTREAMS[upstream]
    remote_ca: str | None = None  # a PEM (on this machine) the cache trusts for the upstream
    username: str | None = None  # a login at the upstream: the cache is then private
    verify_image: str | None = None  # what verify pulls through it, e.g. library/busybox:latest

    @property
    def image_to_verify(self) -> str | None:
        """``verify_image``, or the well-known upstream's default (None: verify cannot check)."""
        return self.verify_image or WELL_KNOWN_VERIFY_IMAGES.get(self.upstream.lower())

    @property
    def url(self) -> str:
        """The upstream's URL the cache fetches from."""
        return self.remote_url or WELL_KNOWN_UPSTREAMS.get(self.upstream, "")

    @property
    def slug(self) -> str:
        """The upstream as a name part: docker.io -> docker-io (containers, directories)."""
        return re.sub(r"[^a-z0-9]+", "-", self.upstream.lower()).strip("-")

    @property
    def password_env(self) -> str:
        """REGWIZ_MIRROR_DOCKER_IO_PASSWORD for docker.io."""
        return MIRROR_PASSWORD_ENV.format(name=self.slug.replace("-", "_").upper())

    @property
    def private(self) -> bool:
        """A cache holding what a login fetched: never served to anonymous clients."""
        return self.username is not None


@dataclass
class Plan:
    certificate: CertificateSettings = field(default_factory=CertificateSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    node_defaults: NodeDefaults = field(default_factory=NodeDefaults)
    nodes: list[NodeSettings] = field(default_factory=list)
    path: Path | None = None
    mirrors: list[MirrorSettings] = field(default_factory=list)

    @property
    def cert_dir(self) -> Path:
        """The certificate directory; relative paths are resolved against the plan's folder."""
        return self.local_path(self.certificate.directory)

    @property
    def trusted_ca_path(self) -> Path:
        """The CA nodes are made to trust: ``registry.ca_file`` when set, else the cert dir's
        ca.crt (the one regwiz creates, or the one ``certs fetch-ca`` saves) — or, while a CA
        rotation runs, its bundle of both CAs (``CA_BUNDLE_NAME``)."""
        if self.registry.ca_file is not None:
            return self.local_path(self.registry.ca_file)
        bundle = self.cert_dir / CA_BUNDLE_NAME
        return bundle if bundle.is_file() else self.cert_dir / "ca.crt"

    def local_path(self, value: str) -> Path:
        """A path written in the plan, on this machine: relative to the plan's folder."""
        path = expand_user(value)
        if path.is_absolute():
            return path
        base = self.path.parent if self.path is not None else Path.cwd()
        return (base / path).absolute()

    @property
    def registry_address(self) -> RegistryAddress:
        """The registry's address value: reference, URL, certs.d name, all spelled one way."""
        return RegistryAddress(self.registry.address, self.registry.port)

    @property
    def registry_reference(self) -> str:
        """HOST:PORT as used in image references and certs.d folder names (HOST alone for 443)."""
        return self.registry_address.reference

    def mirror_address(self, mirror: MirrorSettings) -> RegistryAddress:
        """Where nodes reach a mirror: the registry's address (its certificate) on its own port."""
        return RegistryAddress(self.registry.address, mirror.port)

    def all_sans(self) -> list[str]:
        """Configured SANs, then the CN and the registry address when valid SANs; no duplicates."""
        candidates = [
            *self.certificate.subject_alt_names,
            self.certificate.common_name,
            self.registry.address,
        ]
        result: list[str] = []
        seen: set[str] = set()
        for name in candidates:
            if not isinstance(name, str) or validate.check_san(name) is not None:
                continue
            key = str(ipaddress.ip_address(name)) if validate.is_ip_address(name) else name.lower()
            if key not in seen:
                seen.add(key)
                result.append(name)
        return result

    def resolved_nodes(self) -> list[ResolvedNode]:
        defaults = self.node_defaults

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        return [
            ResolvedNode(
                host=node.host,
                ssh_user=pick(node.ssh_user, defaults.ssh_user),
                ssh_port=pick(node.ssh_port, defaults.ssh_port),
                sudo=pick(node.sudo, defaults.sudo),
                runtime=pick(node.runtime, defaults.runtime),
                os_trust_store=pick(node.os_trust_store, defaults.os_trust_store),
                identity_file=pick(node.identity_file, defaults.identity_file),
                sudo_password_env=pick(node.sudo_password_env, defaults.sudo_password_env),
                mirror_only=pick(node.mirror_only, defaults.mirror_only),
            )
            for node in self.nodes
        ]


def require_managed(plan: Plan, command: str) -> None:
    """Refuse work that needs the registry host when regwiz did not deploy the registry."""
    if not plan.registry.managed:
        raise UsageError(
            f"regwiz {command} works on a registry regwiz deploys, and this plan's registry "
            f"({plan.registry_reference}) has managed = false",
            "manage that registry with its own tools; regwiz onboards, verifies and reports "
            "the nodes (regwiz certs fetch-ca, onboard, verify, status)")


def default_plan_path() -> Path:
    """Where the wizard keeps the user's plan when no --plan is given."""
    import platformdirs

    return Path(platformdirs.user_config_dir("regwiz")) / "plan.toml"


def example_plan_path() -> str:
    """Where the fully commented example plan is installed (a path to show to the user)."""
    from assets import asset

    return str(asset("plan-example.toml"))


def new_plan(path: Path | None = None) -> Plan:
    """A plan with sensible defaults: registry on this machine, SSH as the current user."""
    user = _current_user()
    return Plan(
        # new plans: a leaked CA key cannot sign for other names
        certificate=CertificateSettings(name_constraints=True),
        registry=RegistrySettings(ssh_user=user),
        node_defaults=NodeDefaults(ssh_user=user),
        path=path,
    )


def _current_user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return "root"
    return user if validate.check_user(user) is None else "root"


# --------------------------------------------------------------------------- secrets

SHARED_SUDO_PASSWORD_ENV = "REGWIZ_SUDO_PASSWORD"  # noqa: S105 - a variable name
SECRET_ENV_VARS: dict[str, str] = {
    "ssh_password": "REGWIZ_SSH_PASSWORD",
    "sudo_password": SHARED_SUDO_PASSWORD_ENV,
    "key_passphrase": "REGWIZ_KEY_PASSPHRASE",
    "ca_key_passphrase": "REGWIZ_CA_KEY_PASSPHRASE",
    "registry_password": "REGWIZ_REGISTRY_PASSWORD",
}


@dataclass
class Secrets:
    """Passwords and passphrases, from prompts or env vars; never saved, never shown."""

    ssh_password: str | None = field(default=None, repr=False)
    sudo_password: str | None = field(default=None, repr=False)
    key_passphrase: str | None = field(default=None, repr=False)
    ca_key_passphrase: str | None = field(default=None, repr=False)
    registry_password: str | None = field(default=None, repr=False)
    #: sudo passwords of single hosts (host -> password), ahead of the shared ``sudo_password``
    sudo_passwords: dict[str, str] = field(default_factory=dict, repr=False)
    #: the values of REGWIZ_SUDO_PASSWORD_<NAME> variables, which the plan's
    #: ``sudo_password_env`` keys name (variable name -> password)
    named_sudo_passwords: dict[str, str] = field(default_factory=dict, repr=False)
    #: upstream logins of private mirrors: REGWIZ_MIRROR_<NAME>_PASSWORD -> password
    mirror_passwords: dict[str, str] = field(default_factory=dict, repr=False)

    def mirror_password(self, mirror: MirrorSettings) -> str | None:
        return self.mirror_passwords.get(mirror.password_env) or None

    def sudo_password_for(self, host: str, env_name: str | None = None) -> str | None:
        """The sudo password to use on ``host``: its own, else the variable the plan names for
        it (``env_name``; then never the shared one, so a host given its own secret never
        receives the others'), else the shared one (REGWIZ_SUDO_PASSWORD /
        --ask-sudo-password)."""
        if host in self.sudo_passwords:
            return self.sudo_passwords[host] or None
        if env_name and env_name != SHARED_SUDO_PASSWORD_ENV:
            return self.named_sudo_passwords.get(env_name) or None
        return self.sudo_password

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {name: env.get(var) or None
                                  for name, var in SECRET_ENV_VARS.items()}
        named = {var: value for var, value in env.items()
                 if var.startswith(SHARED_SUDO_PASSWORD_ENV + "_") and value}
        mirrors = {var: value for var, value in env.items()
                   if _MIRROR_PASSWORD_VAR.fullmatch(var) and value}
        return cls(**values, named_sudo_passwords=named, mirror_passwords=mirrors)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'<set>' if getattr(self, f.name) else None}" for f in fields(self)
        )
        return f"Secrets({shown})"

    __str__ = __repr__


# --------------------------------------------------------------------------- parsing

Checker = Callable[[object], "str | None"]
_PORT = "an integer from 1 to 65535"
_DAYS = f"a number of days from 1 to {validate.MAX_VALIDITY_DAYS}"


class _Reader:
    """Collects problems while pulling typed values out of one TOML table."""

    def __init__(self, problems: list[str], table: object, prefix: str) -> None:
        self.problems = problems
        self.prefix = prefix
        if isinstance(table, dict):
            self.table: dict[str, Any] = table
        else:
            self.table = {}
            if table is not None:
                problems.append(f"{prefix}: expected a table, got {_type_name(table)}")
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def _get(self, name: str, kind: type, kind_name: str, required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.table:
            if required:
                self.problems.append(f"{self.key(name)}: missing: this key is required")
            return None
        value = self.table[name]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            self.problems.append(f"{self.key(name)}: expected {kind_name}, got {_describe(value)}")
            return None
        return value

    def text(self, name: str, check: Checker | None = None, required: bool = False) -> str | None:
        value = self._get(name, str, "a string", required)
        return self._checked(name, value, check)

    def integer(self, name: str, check: Checker | None = None, what: str = "") -> int | None:
        value = self._get(name, int, what or "an integer")
        return self._checked(name, value, check)

    def boolean(self, name: str) -> bool | None:
        return self._get(name, bool, "true or false")

    def text_list(self, name: str, check: Checker) -> list[str] | None:
        values = self._get(name, list, "a list of strings")
        if values is None:
            return None
        result = []
        for index, value in enumerate(values):
            key = f"{self.key(name)}[{index}]"
            if not isinstance(value, str):
                self.problems.append(f"{key}: expected a string, got {_type_name(value)}")
            elif (problem := check(value)) is not None:
                self.problems.append(f"{key}: {problem}")
            else:
                result.append(value)
        return result

    def _checked(self, name: str, value: Any, check: Checker | None) -> Any:
        if value is None or check is None:
            return value
        problem = check(value)
        if problem is None:
            return value
        self.problems.append(f"{self.key(name)}: {problem}")
        return None

    def report_unknown(self, extra_allowed: tuple[str, ...] = ()) -> None:
        for name in self.table:
            if name not in self.used and name not in extra_allowed:
                shown = f"{self.prefix}.{_key_shown(name)}"
                self.problems.append(f"{shown}: unknown key (check the spelling)")


def _key_shown(name: object) -> str:
    """A key as TOML would write it: bare when it can be, else quoted with escapes."""
    text = str(name)
    if text and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in text):
        return text
    return validate._shown(text, 60)


def _describe(value: object) -> str:
    """How a wrong value is shown: strings quoted, scalars as TOML, containers by kind."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return validate._shown(value)
    if isinstance(value, (int, float)):
        return validate._shown(str(value)).strip('"')
    return _type_name(value)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _apply(target: object, values: dict[str, Any]) -> None:
    """Set the attributes that were present and valid; absent/invalid ones keep the default."""
    for name, value in values.items():
        if value is not None:
            setattr(target, name, value)


def _text_check(label: str) -> Checker:
    return lambda value: validate.check_text_field(label, value)


def _read_certificate(problems: list[str], table: object, *, managed: bool = True
                      ) -> CertificateSettings:
    """``managed`` False: regwiz makes no certificate, so nothing here is required."""
    r = _Reader(problems, table, "certificate")
    cert = CertificateSettings()
    _apply(
        cert,
        {
            "common_name": r.text("common_name", validate.check_common_name,
                                  required=managed),
            "country": r.text("country", validate.check_country),
            "state": r.text("state", _text_check("state")),
            "locality": r.text("locality", _text_check("locality")),
            "organization": r.text("organization", _text_check("organization")),
            "organizational_unit": r.text(
                "organizational_unit", _text_check("organizational_unit")
            ),
            "email": r.text("email", validate.check_email),
            "subject_alt_names": r.text_list("subject_alt_names", validate.check_san),
            "key_type": r.text("key_type", validate.check_key_type),
            "ca_validity_days": r.integer("ca_validity_days", validate.check_days, _DAYS),
            "cert_validity_days": r.integer("cert_validity_days", validate.check_days, _DAYS),
            "directory": r.text("directory", validate.check_local_path),
            "name_constraints": r.boolean("name_constraints"),
        },
    )
    r.report_unknown()
    return cert


def _read_registry(problems: list[str], table: object) -> RegistrySettings:
    r = _Reader(problems, table, "registry")
    registry = RegistrySettings()
    managed = r.boolean("managed")
    _apply(
        registry,
        {
            "managed": managed,
            # A registry regwiz did not deploy has no host for regwiz to log in to.
            "host": r.text("host", validate.check_host, required=managed is not False),
            "ssh_user": r.text("ssh_user", validate.check_user),
            "ssh_port": r.integer("ssh_port", validate.check_port, _PORT),
            "identity_file": r.text("identity_file", validate.check_local_path),
            "sudo": r.boolean("sudo"),
            "address": r.text("address", _check_address, required=True),
            "port": r.integer("port", validate.check_port, _PORT),
            "image": r.text("image", validate.check_image),
            "image_digest": r.text("image_digest", validate.check_image_digest),
            "container_name": r.text("container_name", validate.check_container_name),
            "data_dir": r.text("data_dir", validate.check_data_dir),
            "certs_dir": r.text("certs_dir", validate.check_certs_dir),
            "auth": r.text("auth", validate.check_auth),
            "delete_enabled": r.boolean("delete_enabled"),
            "disk_warn_percent": r.integer("disk_warn_percent", validate.check_percent,
                                           "a percentage from 1 to 99"),
            "sudo_password_env": r.text("sudo_password_env", validate.check_sudo_password_env),
            "bind_address": r.text("bind_address", validate.check_bind_address),
            "front_image": r.text("front_image", validate.check_image),
            "ca_file": r.text("ca_file", validate.check_local_path),
            "pull_auth_file": r.text("pull_auth_file", validate.check_local_path),
            "verify_image": r.text("verify_image", validate.check_repository_reference),
        },
    )
    r.report_unknown()
    return registry


def _check_address(value: object) -> str | None:
    problem = validate.check_san(value)
    if problem is None and isinstance(value, str) and value.startswith("*"):
        return "must be one concrete name or IP, not a wildcard"
    return problem


def _read_node_fields(r: _Reader) -> dict[str, Any]:
    return {
        "ssh_user": r.text("ssh_user", validate.check_user),
        "ssh_port": r.integer("ssh_port", validate.check_port, _PORT),
        "sudo": r.boolean("sudo"),
        "runtime": r.text("runtime", validate.check_runtime),
        "os_trust_store": r.boolean("os_trust_store"),
        "identity_file": r.text("identity_file", validate.check_local_path),
        "sudo_password_env": r.text("sudo_password_env", validate.check_sudo_password_env),
        "mirror_only": r.boolean("mirror_only"),
    }


def _read_mirrors(problems: list[str], value: object) -> list[MirrorSettings]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"mirrors: expected a list of [[mirrors]] tables, got {_type_name(value)}")
        return []
    mirrors = []
    for index, entry in enumerate(value):
        mirror = _read_mirror(problems, entry, f"mirrors[{index}]")
        if mirror is not None:
            mirrors.append(mirror)
    return mirrors


def _read_mirror(problems: list[str], entry: object, prefix: str) -> MirrorSettings | None:
    if not isinstance(entry, dict):
        problems.append(f'{prefix}: expected a table with upstream = "...", got '
                        f"{_type_name(entry)}")
        return None
    r = _Reader(problems, entry, prefix)
    upstream = r.text("upstream", validate.check_upstream, required=True)
    port = r.integer("port", validate.check_port, _PORT)
    values = {
        "remote_url": r.text("remote_url", validate.check_remote_url),
        "remote_ca": r.text("remote_ca", validate.check_local_path),
        "username": r.text("username", validate.check_upstream_user),
        "verify_image": r.text("verify_image", validate.check_repository_reference),
    }
    r.report_unknown()
    if "port" not in entry:
        problems.append(f"{prefix}.port: missing: give the port the cache is published on, "
                        "e.g. 5001 (each mirror its own)")
    if upstream is None or port is None:
        return None
    mirror = MirrorSettings(upstream=upstream, port=port)
    _apply(mirror, values)
    if not mirror.url and "remote_url" not in entry:
        known = ", ".join(WELL_KNOWN_UPSTREAMS)
        problems.append(f"{prefix}.remote_url: missing: {upstream} is not one regwiz knows "
                        f"({known}); give the URL the cache fetches from, e.g. "
                        f"https://{upstream}")
    return mirror


def _read_nodes(problems: list[str], table: object) -> tuple[NodeDefaults, list[NodeSettings]]:
    r = _Reader(problems, table, "nodes")
    defaults = NodeDefaults()
    defaults_reader = _Reader(problems, r.table.get("defaults"), "nodes.defaults")
    _apply(defaults, _read_node_fields(defaults_reader))
    defaults_reader.report_unknown()
    r.used.update({"defaults", "hosts"})
    r.report_unknown()
    hosts = r.table.get("hosts", [])
    if not isinstance(hosts, list):
        problems.append(
            f"nodes.hosts: expected a list of [[nodes.hosts]] tables, got {_type_name(hosts)}"
        )
        return defaults, []
    nodes: list[NodeSettings] = []
    for index, entry in enumerate(hosts):
        node = _read_node(problems, entry, f"nodes.hosts[{index}]")
        if node is not None:
            nodes.append(node)
    return defaults, nodes


def _read_node(problems: list[str], entry: object, prefix: str) -> NodeSettings | None:
    if not isinstance(entry, dict):
        problems.append(f'{prefix}: expected a table with host = "...", got {_type_name(entry)}')
        return None
    r = _Reader(problems, entry, prefix)
    host = r.text("host", validate.check_host)
    values = _read_node_fields(r)
    r.report_unknown()
    if "host" not in entry:
        problems.append(f'{prefix}.host: missing: every node needs host = "IP or name"')
    if host is None:
        return None
    return NodeSettings(host=host, **values)


def parse_plan(text: str, path: Path | str | None = None) -> Plan:
    """Parse plan TOML. Raises PlanError listing every problem; never any other exception."""
    plan_path = Path(path) if path is not None else None
    problems: list[str] = []
    plan = _plan_from_data(problems, _parse_toml(text, plan_path), plan_path)
    if not problems:
        problems = _cross_field_problems(plan)
    if problems:
        raise PlanError(problems, plan_path)
    return plan


def _plan_from_data(problems: list[str], data: dict[str, Any], path: Path | None) -> Plan:
    """Read every section, appending one line per problem; invalid values keep defaults."""
    for name in data:
        if name not in ("certificate", "registry", "nodes", "mirrors"):
            problems.append(f"{_key_shown(name)}: unknown section (expected certificate, "
                            "registry, nodes, mirrors)")
    try:
        registry_table = data.get("registry")
        managed = not (isinstance(registry_table, dict) and registry_table.get("managed") is False)
        certificate = _read_certificate(problems, data.get("certificate"), managed=managed)
        registry = _read_registry(problems, data.get("registry"))
        node_defaults, nodes = _read_nodes(problems, data.get("nodes"))
        mirrors = _read_mirrors(problems, data.get("mirrors"))
    except Exception as error:  # noqa: BLE001 - a last line of defence: report, never crash
        raise PlanError([f"could not read the plan: {type(error).__name__}"], path) from None
    return Plan(certificate, registry, node_defaults, nodes, path, mirrors)


def _parse_toml(text: object, path: Path | None) -> dict[str, Any]:
    if not isinstance(text, str):
        raise PlanError([f"expected TOML text, got {_type_name(text)}"], path)
    try:
        document = tomlkit.parse(text.removeprefix("\ufeff"))  # editors on Windows add a BOM
        data = document.unwrap()
    except tomlkit.exceptions.ParseError as error:
        raise PlanError(
            [f"TOML syntax error at line {error.line}, column {error.col}: {_parse_reason(error)}"],
            path,
        ) from None
    except Exception as error:  # noqa: BLE001 - tomlkit raises assorted errors on odd input
        raise PlanError([f"not valid TOML: {_safe_reason(error)}"], path) from None
    return data


def _parse_reason(error: tomlkit.exceptions.ParseError) -> str:
    message = str(error)
    # tomlkit appends " at line X col Y"; the position is already in our own wording.
    cut = message.rfind(" at line ")
    return message[:cut] if cut > 0 else message


def _safe_reason(error: Exception) -> str:
    return validate._shown(str(error) or type(error).__name__, 120).strip('"')


def expand_user_path(path: Path | str) -> Path:
    """``~`` expanded; a ``~name`` for an unknown user is a PlanError naming it."""
    prefix = unknown_home(str(path))
    if prefix is not None:
        raise PlanError([f"{validate._shown(str(path), 120)}: there is no user {prefix[1:]!r} "
                         "on this machine (use an absolute path)"])
    return expand_user(path)


def load_plan(path: Path | str) -> Plan:
    plan_path = expand_user_path(path)
    try:
        text = _read_plan_text(plan_path)
    except FileNotFoundError:
        raise PlanError(
            [
                f"{plan_path}: file not found "
                f"(create it in the wizard, or copy {example_plan_path()})"
            ],
            plan_path,
        ) from None
    except UnicodeDecodeError:
        raise PlanError([f"{plan_path}: not UTF-8 text"], plan_path) from None
    except ValueError as error:  # too large, or a NUL byte in the path
        raise PlanError([f"{validate._shown(str(plan_path))}: {error}"]) from None
    except OSError as error:
        raise PlanError([f"{plan_path}: cannot read: {error.strerror}"], plan_path) from None
    return parse_plan(text, plan_path)


MAX_PLAN_BYTES = 1 << 20


def _read_plan_text(path: Path) -> str:
    """The file's text; UnicodeDecodeError, ValueError (too large, bad name) or OSError."""
    with open(path, "rb") as stream:
        data = stream.read(MAX_PLAN_BYTES + 1)
    if len(data) > MAX_PLAN_BYTES:
        raise ValueError("larger than 1 MiB: not a plan file")
    return data.decode("utf-8-sig")


def validate_plan(plan: Plan) -> list[str]:
    """Every problem of an in-memory plan, one line each, named like the plan file's keys.

    Checks each field as loading would, then cross-field rules (cert validity within the CA's,
    registry.address usable and covered by the SANs, no node listed twice). Never raises.
    """
    problems: list[str] = []
    try:
        _plan_from_data(problems, plan_to_dict(plan), plan.path)
    except PlanError as error:
        return error.problems
    except Exception as error:  # noqa: BLE001 - e.g. a field holding an unexpected object
        return [f"the plan holds a value regwiz cannot check: {type(error).__name__}"]
    return problems or _cross_field_problems(plan)


def _cross_field_problems(plan: Plan) -> list[str]:
    """Rules between fields; every single field is already known to be valid."""
    problems: list[str] = []
    cert, registry = plan.certificate, plan.registry
    if cert.cert_validity_days > cert.ca_validity_days:
        problems.append(
            f"certificate.cert_validity_days: {cert.cert_validity_days} is longer than "
            f"ca_validity_days ({cert.ca_validity_days}); a certificate cannot outlive its CA"
        )
    if not registry.managed:
        if plan.mirrors:
            problems.append("mirrors: regwiz runs pull-through caches on the registry host it "
                            "deploys, and this plan's registry has managed = false; remove the "
                            "[[mirrors]] tables (configure mirrors in your registry's own tools)")
        return problems + _duplicate_node_problems(plan)
    problems += _mirror_problems(plan)
    if _nested(registry.data_dir, registry.certs_dir):
        problems.append(
            f"registry.certs_dir: {registry.certs_dir} and data_dir {registry.data_dir} overlap; "
            "the TLS key must not sit among the images (nor images among the certificates): "
            "give each its own directory")
    if not sans_cover(plan.all_sans(), registry.address):
        problems.append(
            f"registry.address: {registry.address} is not covered by the certificate's SANs"
        )
    if not cert.name_constraints:
        trusting = (["nodes.defaults.os_trust_store"] if plan.node_defaults.os_trust_store
                    else [])
        trusting += [f"nodes.hosts[{index}].os_trust_store"
                     for index, node in enumerate(plan.nodes) if node.os_trust_store]
        problems += [
            f"{key}: true needs certificate.name_constraints = true (a CA in the OS trust "
            "store without name constraints could vouch for any site on that host); set "
            "name_constraints = true and run regwiz certs --renew, or trust the registry "
            "only in the container runtime (os_trust_store = false)"
            for key in trusting
        ]
    return problems + _duplicate_node_problems(plan)


def _mirror_problems(plan: Plan) -> list[str]:
    """Each mirror its own port (not the registry's) and its own upstream."""
    problems: list[str] = []
    ports = {plan.registry.port: "registry.port"}
    upstreams: dict[str, int] = {}
    for index, mirror in enumerate(plan.mirrors):
        key = f"mirrors[{index}]"
        if mirror.port in ports:
            problems.append(f"{key}.port: {mirror.port} is already used by {ports[mirror.port]}; "
                            "give each mirror a port of its own")
        else:
            ports[mirror.port] = f"{key}.port"
        upstream = mirror.upstream.lower()
        if upstream in upstreams:
            problems.append(f"{key}.upstream: {mirror.upstream} already has a mirror "
                            f"(mirrors[{upstreams[upstream]}])")
        else:
            upstreams[upstream] = index
        if upstream == plan.registry_reference.lower():
            problems.append(f"{key}.upstream: {mirror.upstream} is this plan's own registry; "
                            "a mirror caches another registry")
        if mirror.private and plan.registry.auth != "htpasswd":
            # a cache filled with a login must never serve anonymous clients
            problems.append(f"{key}.username: a private mirror serves only the plan's "
                            'accounts, and registry.auth = "none" has none; set auth = '
                            '"htpasswd" or remove the username (a public upstream)')
    return problems


def _duplicate_node_problems(plan: Plan) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, node in enumerate(plan.nodes):
        key = node.host.lower()
        if key in seen:
            problems.append(
                f"nodes.hosts[{index}].host: {node.host} is already listed as "
                f"nodes.hosts[{seen[key]}]"
            )
        else:
            seen[key] = index
    return problems


def _nested(first: str, second: str) -> bool:
    """One of two remote directories is the other or inside it."""
    a, b = (validate.normalize_remote_path(path) + "/" for path in (first, second))
    return a.startswith(b) or b.startswith(a)


def plan_warnings(plan: Plan) -> list[str]:
    """Valid but suspicious settings, for the TUI and the CLI to show (not errors)."""
    warnings: list[str] = []
    for name in plan.all_sans():
        warnings += [f"certificate SAN {w}" for w in validate.warnings_for_san(name)]
    if validate.check_san(plan.certificate.common_name) is not None:
        warnings.append(
            "certificate.common_name is not a host name or IP, so it is not added to the SANs"
        )
    return warnings


ALL_ADDRESSES = "0.0.0.0"  # noqa: S104 - publishing on every address is the default
NO_AUTH_WARNING = (
    'registry.auth = "none": anyone who can reach {where} can push and overwrite the images '
    'every node pulls; remove the line (or set auth = "htpasswd") to require accounts'
)


def auth_warning(plan: Plan) -> str | None:
    """The plain warning for a registry without authentication, else None."""
    if plan.registry.auth != "none":
        return None
    registry = plan.registry
    where = f"port {registry.port} of {registry.host}"
    if registry.bind_address != ALL_ADDRESSES:
        where = f"{registry.bind_address}:{registry.port}"
    return NO_AUTH_WARNING.format(where=where)


def sans_cover(sans: list[str], name: str) -> bool:
    """Whether a certificate with ``sans`` is valid for ``name`` (wildcards match one label)."""
    if validate.is_ip_address(name):
        wanted = ipaddress.ip_address(name)
        return any(
            validate.is_ip_address(san) and ipaddress.ip_address(san) == wanted for san in sans
        )
    lowered = name.lower()
    for san in sans:
        pattern = san.lower()
        if pattern == lowered:
            return True
        if pattern.startswith("*.") and "." in lowered:
            head, _, rest = lowered.partition(".")
            if head and rest == pattern[2:]:
                return True
    return False


# --------------------------------------------------------------------------- saving


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as plain TOML data; None values (use the default) are left out."""

    def clean(obj: object, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            f.name: getattr(obj, f.name)
            for f in fields(obj)  # type: ignore[arg-type]
            if getattr(obj, f.name) is not None and f.name not in skip
        }

    certificate, registry = clean(plan.certificate), clean(plan.registry)
    if not plan.registry.managed:  # only what matters for a registry regwiz did not deploy
        fresh = new_plan()
        certificate = _non_default(certificate, CertificateSettings(), fresh.certificate)
        registry = {"address": plan.registry.address, "port": plan.registry.port,
                    **_non_default(registry, RegistrySettings(), fresh.registry)}
    defaults = clean(plan.node_defaults)
    if not plan.node_defaults.mirror_only:  # the default, and meaningless without mirrors
        defaults.pop("mirror_only", None)
    data: dict[str, Any] = {
        "certificate": certificate,
        "registry": registry,
        "nodes": {
            "defaults": defaults,
            "hosts": [clean(node) for node in plan.nodes],
        },
    }
    if plan.mirrors:
        data["mirrors"] = [clean(mirror) for mirror in plan.mirrors]
    return data


_ABSENT = object()


@dataclass
class PlanMerge:
    """What ``merge_plan_changes`` made of two versions of one plan."""

    plan: Plan
    taken: list[str]  # keys changed only in the other version: their value is kept
    conflicts: list[str]  # keys both changed differently: ours is kept


def merge_plan_changes(base: dict[str, Any], ours: Plan, theirs: Plan) -> PlanMerge:
    """Three-way merge by key: ``base`` is the plan as ``ours`` last read or wrote it (its
    ``plan_to_dict``), ``theirs`` what the file holds now (e.g. a pin a CLI deploy wrote). A key
    only one side changed takes that side's value; one both changed keeps ours. Lists
    (nodes.hosts, mirrors) are one value each. Falls back to ours when the result is invalid."""
    flat_base, flat_ours = _flatten(base), _flatten(plan_to_dict(ours))
    flat_theirs = _flatten(plan_to_dict(theirs))
    merged: dict[tuple[str, ...], Any] = {}
    taken, conflicts = [], []
    for path in sorted(flat_base.keys() | flat_ours.keys() | flat_theirs.keys()):
        was, mine, other = (flat.get(path, _ABSENT) for flat in (flat_base, flat_ours, flat_theirs))
        value = mine
        if mine == was and other != was:
            value = other
            taken.append(".".join(path))
        elif other not in (was, mine):
            conflicts.append(".".join(path))
        if value is not _ABSENT:
            merged[path] = value
    problems: list[str] = []
    plan = _plan_from_data(problems, _unflatten(merged), ours.path)
    if problems or _cross_field_problems(plan):  # each field was just checked while read
        return PlanMerge(ours, [], conflicts + taken)
    return PlanMerge(plan, taken, conflicts)


def _flatten(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in data.items():
        path = prefix + (key,)
        if isinstance(value, dict):
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def _unflatten(flat: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for path, value in flat.items():
        table = data
        for key in path[:-1]:
            table = table.setdefault(key, {})
        table[path[-1]] = value
    return data


def adopt_plan(target: Plan, source: Plan) -> None:
    """Make ``target`` hold ``source``'s settings in place (screens keep their reference)."""
    for section in ("certificate", "registry", "node_defaults"):
        into, values = getattr(target, section), getattr(source, section)
        for item in fields(values):
            setattr(into, item.name, getattr(values, item.name))
    target.nodes[:] = source.nodes
    target.mirrors[:] = source.mirrors


def _non_default(values: dict[str, Any], *defaults: object) -> dict[str, Any]:
    """The values that differ from each of ``defaults`` (a default of either kind is left out)."""
    return {key: value for key, value in values.items()
            if all(getattr(default, key) != value for default in defaults)}


def render_plan(plan: Plan, existing_text: str | None = None) -> str:
    """TOML for ``plan``; with ``existing_text``, its comments and layout are kept."""
    data = plan_to_dict(plan)
    if existing_text is None:
        document = tomlkit.document()
        # Points to what a pip install has (no checkout, so no assets/ folder to open).
        document.add(tomlkit.comment(
            "regwiz plan: run `regwiz plan example` to see every key, commented"))
    else:
        document = tomlkit.parse(existing_text)
    if data["certificate"] or document.get("certificate") is not None:
        _merge_table(document, data["certificate"], "certificate")
    _merge_table(document, data["registry"], "registry")
    nodes = document.get("nodes")
    if nodes is None:
        nodes = tomlkit.table(is_super_table=True)
        document["nodes"] = nodes
    _merge_table(nodes, data["nodes"]["defaults"], "defaults")
    _merge_array_of_tables(nodes, "hosts", data["nodes"]["hosts"], "host")
    _merge_array_of_tables(document, "mirrors", data.get("mirrors", []), "upstream")
    return tomlkit.dumps(document)


def _merge_table(parent: Any, values: dict[str, Any], name: str) -> None:
    table = parent.get(name)
    if table is None:
        table = tomlkit.table()
        parent[name] = table
    _merge_values(table, values)


def _merge_values(table: Any, values: dict[str, Any]) -> None:
    """Update keys in place (tomlkit keeps their comments); drop keys now unset."""
    for key in list(table.keys()):
        if key not in values:
            del table[key]
    for key, value in values.items():
        current = table.get(key)
        if current is None and _trailing_start(table.value.body) < len(table.value.body):
            # a new key goes above the comments that end the table (they introduce what follows)
            table.value._insert_at(_trailing_start(table.value.body), key, value)
        elif current is None or _plain(current) != value \
                or type(_plain(current)) is not type(value):
            table[key] = value


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _merge_array_of_tables(parent: Any, name: str, entries: list[dict[str, Any]],
                           key: str) -> None:
    """``[[name]]`` tables (nodes.hosts by host, mirrors by upstream) updated in place.

    A table is matched by its ``key``, not its position, so its comments stay with it when an
    entry before it is removed; a removed table's trailing comments (they introduce the next
    header, as tomlkit reads them) pass to the table before it."""
    existing = parent.get(name)
    if existing is not None and not isinstance(existing, tomlkit.items.AoT):
        del parent[name]
        existing = None
    if not entries:
        if existing is not None:
            del parent[name]
        return
    old = list(existing) if existing is not None else []
    by_key = {_plain(table.get(key)): table for table in reversed(old)}  # the first one wins
    tables = []
    for values in entries:
        table = by_key.pop(values.get(key), None) or tomlkit.table()
        _merge_values(table, values)
        tables.append(table)
    for index in range(len(old) - 1, 0, -1):
        if not any(old[index] is table for table in tables):
            _hand_on_trailing_comments(old[index], old[index - 1])
    if existing is None:
        existing = tomlkit.aot()
        parent[name] = existing
    while len(existing):
        del existing[0]
    for table in tables:
        existing.append(table)


def _hand_on_trailing_comments(removed: Any, previous: Any) -> None:
    """The comment lines ending ``previous`` introduced ``removed``: they go with it, and the
    ones ending ``removed`` (they introduce the table after it) take their place."""
    previous_body = previous.value.body
    del previous_body[_trailing_start(previous_body):]
    body = removed.value.body
    previous_body.extend(body[_trailing_start(body):])


def _trailing_start(body: list[Any]) -> int:
    """Where a table's closing run of comments and blank lines starts (no key after it)."""
    cut = len(body)
    while cut > 0 and body[cut - 1][0] is None:
        cut -= 1
    return cut


def save_plan(plan: Plan, path: Path | str | None = None) -> Path:
    """Write the plan atomically, keeping an existing file's comments; the old one goes to .bak.

    Refuses to overwrite a file that does not parse as a plan, so hand edits are never lost.
    """
    target = expand_user_path(path if path is not None else _require_path(plan))
    existing_text: str | None = None
    if target.exists():
        try:
            existing_text = target.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise PlanError([f"{target}: cannot read the existing file: {error}"], target) from None
        try:
            parse_plan(existing_text, target)
        except PlanError as error:
            raise PlanError(
                [
                    f"{target}: not overwritten: it does not parse as a plan; fix or move it",
                    *error.problems,
                ],
                target,
            ) from None
    try:
        text = render_plan(plan, existing_text)
    except Exception:  # noqa: BLE001 - a layout tomlkit cannot edit in place (e.g. inline tables)
        text = render_plan(plan)  # written fresh; the original stays in the .bak file
    parse_plan(text, target)  # never write a plan that would not load again
    try:
        if existing_text is not None:
            backup = target.with_name(target.name + ".bak")
            atomic_write(backup, existing_text.encode("utf-8"), 0o600)
        atomic_write(target, text.encode("utf-8"), 0o644)
    except OSError as error:
        raise RegwizError(
            f"cannot save the plan to {target}: {error.strerror or error}",
            "check the folder exists, its permissions and free space",
        ) from None
    plan.path = target
    return target


def _require_path(plan: Plan) -> Path:
    if plan.path is None:
        raise PlanError(["the plan has no file name yet: give a path to save it to"])
    return plan.path


def atomic_write(path: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and rename.

    The mode is set before any content lands, so a private key is never briefly world-readable.
    Returns whether the content changed.
    """
    path = Path(path)
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = write_temp_beside(path, data, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_directory(path.parent)
    return True


def write_temp_beside(path: Path, data: bytes, mode: int) -> Path:
    """A new temp file next to ``path`` holding ``data``, fsynced, for a later rename.

    Its mode is set before any content lands; on any failure the temp file is removed.
    """
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), mode)  # before content lands: keys are never exposed
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    return Path(temp_name)


def fsync_directory(directory: Path) -> None:
    """Make renames in ``directory`` durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
