"""containerd (CRI): a hosts directory (``certs.d``) holding ``<registry>/ca.crt`` and
``<registry>/hosts.toml``, read on every pull once ``config.toml`` names it in ``config_path``.

Setting ``config_path`` needs one restart; files under the hosts directory need none. From 2.2 on
an unset ``config_path`` defaults to ``/etc/containerd/certs.d:/etc/docker/certs.d``. The hosts
directory a node really reads is worked out once, here (``hosts_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.runtimes.base import (
    BACKUP_INFIX,
    CommandAction,
    FileAction,
    MirrorJob,
    NodeAction,
    NodeCheckSpec,
    NodeMirror,
    NodeSetupError,
    RemoveAction,
    RuntimeAdapter,
    TrustProblem,
    ca_file_action,
    mirror_ca_action,
    mirror_refusal,
    stale_mirror_ca,
)
from app.runtimes.facts import version_pair

if TYPE_CHECKING:
    from app.address import RegistryAddress
    from app.runtimes.facts import NodeFacts, ProbeResult
    from app.transport.base import Transport

DEFAULT_CONTAINERD_HOSTS_DIR = "/etc/containerd/certs.d"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"

# The CRI plugin section holding `registry.config_path`, per containerd config version.
_CRI_REGISTRY_PLUGIN = {
    1: "cri",
    2: "io.containerd.grpc.v1.cri",
    3: "io.containerd.cri.v1.images",
}

# Extra facts the probe script prints for containerd.
_PROBE_LINES = f"""c={CONTAINERD_CONFIG}
[ -e "$c" ] && echo "containerd.config_mode=$(stat -L -c %a "$c")"
command -v containerd >/dev/null 2>&1 &&
  echo "containerd.version=$(containerd --version 2>/dev/null)"
"""


# --------------------------------------------------------------------------- paths, hosts.toml


def containerd_ca_path(certs_d_name: str, hosts_dir: str = DEFAULT_CONTAINERD_HOSTS_DIR) -> str:
    return f"{hosts_dir}/{certs_d_name}/ca.crt"


def containerd_hosts_toml_path(certs_d_name: str,
                               hosts_dir: str = DEFAULT_CONTAINERD_HOSTS_DIR) -> str:
    return f"{hosts_dir}/{certs_d_name}/hosts.toml"


def render_hosts_toml(address: RegistryAddress, ca_path: str) -> str:
    """The hosts.toml that tells containerd to trust ``ca_path`` for the registry."""
    return (
        "# Written by regwiz: trust the private registry's CA.\n"
        f'server = "{address.url}"\n'
        "\n"
        f'[host."{address.url}"]\n'
        '  capabilities = ["pull", "resolve", "push"]\n'
        f'  ca = "{ca_path}"\n'
    )


MIRROR_MARK = "# Written by regwiz: mirror of "


def render_mirror_hosts_toml(mirror: NodeMirror, ca_path: str, mirror_only: bool) -> str:
    """The upstream's hosts.toml: the cache first; the upstream as ``server`` (the fallback),
    or with ``mirror_only`` the cache again (an omitted server would mean the upstream)."""
    if mirror_only:
        fallback = ("# mirror_only: no fallback to the upstream; server is the cache too.\n"
                    f'server = "{mirror.address.url}"\n'
                    f'ca = "{ca_path}"\n')
    else:
        fallback = f'server = "{mirror.upstream_url}"\n'
    return (
        f"{MIRROR_MARK}{mirror.upstream}.\n"
        f"{fallback}"
        "\n"
        f'[host."{mirror.address.url}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        f'  ca = "{ca_path}"\n'
    )


# --------------------------------------------------------------------------- config.toml


@dataclass(frozen=True)
class ContainerdConfigState:
    """What config.toml says about the registry hosts directory."""

    version: int
    hosts_dirs: list[str]  # config_path split on ":"; empty when unset
    legacy_registry: bool  # non-empty registry.mirrors/configs (conflicts with config_path)
    cri_disabled: bool  # the CRI plugin is disabled (docker's own containerd): not a k8s runtime


def _config_version(data: dict[str, Any], containerd_major: int | None) -> int:
    version = data.get("version")
    if isinstance(version, int) and version in _CRI_REGISTRY_PLUGIN:
        return version
    if version is None and not data:
        # No config at all: use the format this containerd writes by default.
        return 3 if (containerd_major or 1) >= 2 else 2
    if version is None:
        return 1
    raise NodeSetupError(
        f"{CONTAINERD_CONFIG}: unsupported config version {version!r} (expected 1, 2 or 3)",
        "fix the version line in config.toml",
    )


def _registry_table(data: dict[str, Any], version: int) -> dict[str, Any]:
    plugins = data.get("plugins")
    plugin = plugins.get(_CRI_REGISTRY_PLUGIN[version]) if isinstance(plugins, dict) else None
    registry = plugin.get("registry") if isinstance(plugin, dict) else None
    return registry if isinstance(registry, dict) else {}


def parse_containerd_config(text: str | None,
                            containerd_major: int | None = None) -> ContainerdConfigState:
    """Read config.toml (None: the file does not exist)."""
    import tomlkit  # imported when needed: app.validate loads this package for its names
    import tomlkit.exceptions

    try:
        data = tomlkit.parse(text).unwrap() if text else {}
    except tomlkit.exceptions.ParseError as error:
        raise NodeSetupError(
            f"{CONTAINERD_CONFIG} is not valid TOML ({error})",
            "fix the file by hand (containerd itself cannot start with it either)",
        ) from error
    version = _config_version(data, containerd_major)
    registry = _registry_table(data, version)
    config_path = registry.get("config_path")
    dirs = [d for d in config_path.split(":") if d] if isinstance(config_path, str) else []
    legacy = bool(registry.get("mirrors")) or bool(registry.get("configs"))
    disabled = data.get("disabled_plugins")
    cri_names = {"cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"}
    cri_disabled = isinstance(disabled, list) and any(name in cri_names for name in disabled)
    return ContainerdConfigState(version, dirs, legacy, cri_disabled)


def effective_hosts_dir(state: ContainerdConfigState,
                        containerd_version: tuple[int, int] | None) -> str | None:
    """The directory containerd reads hosts.toml from, or None when it reads none yet."""
    if state.hosts_dirs:
        return state.hosts_dirs[0]
    # From 2.2 on, an unset config_path defaults to /etc/containerd/certs.d:/etc/docker/certs.d.
    if containerd_version is not None and containerd_version >= (2, 2):
        return DEFAULT_CONTAINERD_HOSTS_DIR
    return None


def enable_config_path(text: str | None, state: ContainerdConfigState,
                       hosts_dir: str = DEFAULT_CONTAINERD_HOSTS_DIR) -> str:
    """config.toml with the CRI registry's ``config_path`` set, keeping comments and layout."""
    import tomlkit
    import tomlkit.exceptions

    if state.legacy_registry:
        raise NodeSetupError(
            f"{CONTAINERD_CONFIG} configures registries with the deprecated registry.mirrors/"
            "registry.configs tables, which containerd refuses to combine with config_path",
            "move those entries to hosts.toml files (containerd docs: 'Registry Configuration') "
            "or set config_path yourself, then run regwiz onboard again",
        )
    try:
        doc = tomlkit.parse(text or "")
    except tomlkit.exceptions.ParseError as error:
        raise NodeSetupError(f"{CONTAINERD_CONFIG} is not valid TOML ({error})") from error
    if "version" not in doc and state.version != 1:
        doc["version"] = state.version
    registry = _ensure_tables(doc, ["plugins", _CRI_REGISTRY_PLUGIN[state.version], "registry"])
    registry["config_path"] = hosts_dir
    new_text = tomlkit.dumps(doc)
    check = parse_containerd_config(new_text)
    if check.hosts_dirs[:1] != [hosts_dir]:
        raise NodeSetupError(
            f"could not add config_path to {CONTAINERD_CONFIG} automatically",
            f'add config_path = "{hosts_dir}" under the CRI registry plugin yourself',
        )
    return new_text


def _ensure_tables(doc: Any, keys: list[str]) -> Any:
    import tomlkit

    container = doc
    for index, key in enumerate(keys):
        if key not in container:
            last = index == len(keys) - 1
            container[key] = tomlkit.table(is_super_table=not last)
        container = container[key]
        if not isinstance(container, dict):
            raise NodeSetupError(
                f"{CONTAINERD_CONFIG}: {'.'.join(keys[: index + 1])} is not a table",
                "fix config.toml by hand",
            )
    return container


def parse_containerd_version(output: str) -> tuple[int, int] | None:
    """(major, minor) from `containerd --version` output, e.g. "... 1.6.20~ds1 ..." or "v2.0.1"."""
    return version_pair(output)


# --------------------------------------------------------------------------- facts about a node


def probed_version(probe: ProbeResult) -> tuple[int, int] | None:
    """containerd's (major, minor) as the probe script found it."""
    return parse_containerd_version(probe.values.get("containerd.version", ""))


def probed_config_mode(probe: ProbeResult) -> int:
    """config.toml's permission bits (0644 when unknown), kept when regwiz rewrites it."""
    raw = probe.values.get("containerd.config_mode", "")
    return int(raw, 8) if 3 <= len(raw) <= 4 and set(raw) <= set("01234567") else 0o644


# Prints the command line (one argument a line) of each containerd running in this host's mount
# namespace (the machine may show others', e.g. of containers); nothing when none runs.
RUNNING_CONFIG_SCRIPT = """own=$(readlink /proc/self/ns/mnt)
for p in $(pgrep -x containerd 2>/dev/null); do
  [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$own" ] || continue
  tr '\\0' '\\n' < "/proc/$p/cmdline" 2>/dev/null
  echo "--regwiz-end--"
done
true
"""


def running_config_file(output: str) -> str:
    """The config file the node's CRI containerd was started with (``--config``/``-c``), from
    RUNNING_CONFIG_SCRIPT's output; the default when none runs or it names none. Docker's own
    containerd (its config under a docker directory) is not the kubelet's."""
    for block in output.split("--regwiz-end--\n"):
        args = [arg for arg in block.split("\n") if arg]
        if not args:
            continue
        path = CONTAINERD_CONFIG
        for index, arg in enumerate(args):
            if arg in ("--config", "-c") and index + 1 < len(args):
                path = args[index + 1]
            elif arg.startswith("--config="):
                path = arg.partition("=")[2]
        if "/docker/" not in path:
            return path
    return CONTAINERD_CONFIG


@dataclass(frozen=True)
class ContainerdFacts:
    config_text: str | None  # config.toml as read (None: no such file)
    state: ContainerdConfigState  # what config.toml alone says
    # What containerd really runs (`containerd config dump`: imports and defaults included);
    # None when the dump could not be made (then config.toml alone decides).
    effective: ContainerdConfigState | None = None
    sandbox_image: str = ""  # the CRI's sandbox (pause) image, from the dump
    regwiz_dirs: tuple[str, ...] = ()  # hosts dirs holding a hosts.toml regwiz wrote
    config_file: str = CONTAINERD_CONFIG  # the file containerd was started with
    # regwiz's mirror hosts.toml files and every <dir>/<name>/ca.crt (REGWIZ_DIRS_SCRIPT)
    mirror_files: tuple[str, ...] = ()
    # backups of the operator's own hosts.toml files that regwiz's mirror files replaced
    mirror_originals: tuple[str, ...] = ()

    @property
    def running(self) -> ContainerdConfigState:
        return self.effective if self.effective is not None else self.state


def remember_config(facts: NodeFacts, config_text: str | None, dump: str | None = None,
                    regwiz_dirs: tuple[str, ...] = (),
                    config_file: str = CONTAINERD_CONFIG,
                    mirror_files: tuple[str, ...] = (),
                    mirror_originals: tuple[str, ...] = ()) -> ContainerdFacts:
    """Parse config.toml (and the effective configuration) and keep them with the facts."""
    version = probed_version(facts.probe)
    major = version[0] if version else None
    state = parse_containerd_config(config_text, major)
    effective = parse_containerd_config(dump, major) if dump else None
    found = ContainerdFacts(config_text, state, effective, sandbox_image(dump) if dump else "",
                            regwiz_dirs, config_file, mirror_files, mirror_originals)
    facts.extras[ContainerdAdapter.key] = found
    return found


def sandbox_image(dump: str) -> str:
    """The CRI's sandbox (pause) image in a config dump ("" when it names none)."""
    import tomlkit
    import tomlkit.exceptions

    try:
        plugins = tomlkit.parse(dump).unwrap().get("plugins", {})
    except tomlkit.exceptions.ParseError:
        return ""
    v2 = plugins.get("io.containerd.grpc.v1.cri", {})
    v3 = plugins.get("io.containerd.cri.v1.images", {}).get("pinned_images", {})
    found = v2.get("sandbox_image") or v3.get("sandbox") or ""
    return found if isinstance(found, str) else ""


def config_facts(facts: NodeFacts) -> ContainerdFacts | None:
    found = facts.extras.get(ContainerdAdapter.key)
    return found if isinstance(found, ContainerdFacts) else None


def hosts_dir(facts: NodeFacts) -> str:
    """The certs.d directory containerd really reads on this node (its default when it reads
    none)."""
    found = config_facts(facts)
    if found is None:
        return DEFAULT_CONTAINERD_HOSTS_DIR
    return (effective_hosts_dir(found.running, probed_version(facts.probe))
            or DEFAULT_CONTAINERD_HOSTS_DIR)


# Lists each directory (args) holding a <registry>/hosts.toml that regwiz wrote; then, as
# "file=PATH", regwiz's mirror hosts.toml files and every <name>/ca.crt there, so the entries
# of mirrors taken out of the plan can be removed; and, as "original=BACKUP", the newest
# backup of such a hosts.toml that regwiz did not write: the operator's own file, which it
# replaced and which is put back when the mirror leaves the plan. (Backup names end in a
# fixed-width UTC time, so the glob lists them oldest first.)
REGWIZ_DIRS_SCRIPT = """for d; do
  for f in "$d"/*/hosts.toml; do
    grep -qs '^# Written by regwiz' "$f" && { echo "$d"; break; }
  done
done
for d; do
  for f in "$d"/*/hosts.toml; do
    grep -qs '^# Written by regwiz: mirror of' "$f" || continue
    echo "file=$f"
    original=
    for b in "$f".regwiz-backup-*; do
      [ -f "$b" ] && ! grep -qs '^# Written by regwiz' "$b" && original=$b
    done
    [ -n "$original" ] && echo "original=$original"
  done
  for f in "$d"/*/ca.crt; do [ -e "$f" ] && echo "file=$f"; done
done
true
"""


@dataclass(frozen=True)
class RegwizListing:
    """REGWIZ_DIRS_SCRIPT's output, split."""

    dirs: tuple[str, ...]  # directories with regwiz's hosts.toml
    files: tuple[str, ...]  # regwiz's mirror hosts.toml files and every <name>/ca.crt
    originals: tuple[str, ...]  # the operator's own hosts.toml that regwiz's replaced


def split_regwiz_listing(output: str) -> RegwizListing:
    words = output.split()
    tags = ("file=", "original=")
    tagged = {tag: tuple(w.removeprefix(tag) for w in words if w.startswith(tag))
              for tag in tags}
    return RegwizListing(tuple(w for w in words if not w.startswith(tags)), tagged["file="],
                         tagged["original="])


def original_of(path: str, originals: tuple[str, ...]) -> str | None:
    """The backup of the operator's own ``path`` that regwiz's file replaced, if any."""
    return next((b for b in originals if b.startswith(f"{path}{BACKUP_INFIX}")), None)


def _dirs_in(config: str | None) -> list[str]:
    try:
        return parse_containerd_config(config).hosts_dirs
    except NodeSetupError:
        return []


def config_mismatch(found: ContainerdFacts,
                    version: tuple[int, int] | None) -> tuple[str, str] | None:
    """(summary, detail) when regwiz's hosts.toml files lie in a directory the configuration
    containerd runs does not read (e.g. an imports drop-in points config_path elsewhere)."""
    if found.effective is None:
        return None
    reads = found.effective.hosts_dirs or (
        [DEFAULT_CONTAINERD_HOSTS_DIR] if effective_hosts_dir(found.effective, version) else [])
    stray = [d for d in found.regwiz_dirs if d not in reads]
    if not reads or not stray or any(d in reads for d in found.regwiz_dirs):
        return None  # (no hosts dir read at all: the "no config_path" problem says it)
    where = ":".join(reads)
    return (f"containerd reads {where}, not {stray[0]} where regwiz wrote hosts.toml",
            f"regwiz's hosts.toml is in {stray[0]}, but the configuration containerd runs "
            f"(`containerd config dump`, imports included) has CRI registry config_path = "
            f"{where!r}: the kubelet's pulls ignore it")


def _stale_mirror_files(name: str, facts: NodeFacts, directory: str,
                        job: MirrorJob) -> list[NodeAction]:
    """regwiz's hosts.toml of upstreams no longer mirrored (the operator's own file it
    replaced, if any, put back), and the CA files of its caches no longer in the plan."""
    found = config_facts(facts)
    if found is None:
        return []
    upstreams = {mirror.upstream for mirror in job.mirrors}
    stale: list[NodeAction] = []
    for path in found.mirror_files:
        folder, _, file = path.removeprefix(directory + "/").partition("/")
        if not path.startswith(directory + "/") or "/" in file:
            continue
        if file == "hosts.toml" and folder not in upstreams:
            stale.append(RemoveAction(path, name, f"stop mirroring {folder}",
                                      "its mirror is no longer in the plan", folder,
                                      restore_from=original_of(path, found.mirror_originals)))
        elif file == "ca.crt" and job.ours(folder) and folder not in job.references:
            stale.append(stale_mirror_ca(path, name, folder, job))
    return stale


def _ctr_digest(output: str, reference: str) -> str | None:
    return digest_from_ctr_list(output, reference)


def digest_from_ctr_list(output: str, reference: str) -> str | None:
    """``ctr images ls`` prints REF TYPE DIGEST SIZE ...; pick our reference's digest."""
    for line in output.splitlines():
        columns = line.split()
        if len(columns) >= 3 and columns[0] == reference and columns[2].startswith("sha256:"):
            return columns[2]
    return None


def pull_spec(reference: str, *, sudo: bool, hosts_dir: str = DEFAULT_CONTAINERD_HOSTS_DIR,
              image_id: str | None = None) -> NodeCheckSpec:
    """``ctr pull --hosts-dir``; ``image_id``: the CRI adds the config digest as a second name."""
    ctr = ["ctr", "-n", "k8s.io", "images"]
    return NodeCheckSpec(
        f"containerd pull (ctr --hosts-dir {hosts_dir})",
        [*ctr, "pull", "--hosts-dir", hosts_dir, reference],
        sudo,
        digest=[*ctr, "ls", f"name=={reference}"],
        cleanup=[*ctr, "rm", reference, *([image_id] if image_id else [])],
        parse_digest=_ctr_digest,
    )


# --------------------------------------------------------------------------- the adapter


class ContainerdAdapter(RuntimeAdapter):
    key = "containerd"
    names = ("containerd",)
    plan_names = ("containerd",)
    probe_binaries = ("containerd",)
    probe_sockets = (CONTAINERD_SOCKET,)
    probe_paths = (CONTAINERD_CONFIG,)
    probe_services = ("containerd",)
    probe_lines = _PROBE_LINES

    def gather(self, transport: Transport, facts: NodeFacts, *, sudo: bool, wanted: str,
               timeout: float) -> None:
        # config.toml decides both detection (CRI disabled) and where the CA goes.
        probe = facts.probe
        if not ("containerd" in probe.binaries or CONTAINERD_CONFIG in probe.paths
                or CONTAINERD_SOCKET in probe.sockets or wanted == "containerd"):
            return
        # The file containerd was started with: a config.toml it never loads must not count.
        running = transport.run(["sh", "-c", RUNNING_CONFIG_SCRIPT], sudo=sudo, timeout=timeout,
                                check=False)
        config_file = running_config_file(running.stdout)
        raw = transport.read_file(config_file, sudo=sudo, timeout=timeout)
        text = raw.decode("utf-8", errors="replace") if raw is not None else None
        dump = None
        if "containerd" in probe.binaries:  # the configuration containerd really runs
            done = transport.run(["containerd", "--config", config_file, "config", "dump"],
                                 sudo=sudo, timeout=timeout, check=False)
            dump = done.stdout if done.ok else None
        candidates = dict.fromkeys([DEFAULT_CONTAINERD_HOSTS_DIR,
                                    *_dirs_in(text), *_dirs_in(dump)])
        listed = transport.run(["sh", "-c", REGWIZ_DIRS_SCRIPT, "sh", *candidates],
                               sudo=sudo, timeout=timeout, check=False)
        found = split_regwiz_listing(listed.stdout)
        remember_config(facts, text, dump, found.dirs, config_file, found.files,
                        found.originals)

    def detect(self, facts: NodeFacts) -> list[str]:
        probe = facts.probe
        here = CONTAINERD_SOCKET in probe.sockets or (
            "containerd" in probe.binaries and CONTAINERD_CONFIG in probe.paths
        )
        found = config_facts(facts)
        # docker.io installs containerd as its engine with the CRI off: not a k8s runtime.
        return ["containerd"] if here and not (found and found.state.cri_disabled) else []

    def trust_actions(self, name: str, facts: NodeFacts, address: RegistryAddress,
                      ca_pem: bytes) -> list[NodeAction]:
        found = config_facts(facts)
        state = found.state if found else parse_containerd_config(None)
        # What containerd runs decides (a config_path set only in an imported drop-in counts).
        running = found.running if found else state
        directory = effective_hosts_dir(running, probed_version(facts.probe))
        actions: list[NodeAction] = []
        if directory is None:
            directory = DEFAULT_CONTAINERD_HOSTS_DIR
            actions += self._enable_config_path(facts, found, state, directory)
        ca_path = containerd_ca_path(address.certs_d_name, directory)
        hosts_toml = render_hosts_toml(address, ca_path).encode()
        # CA first, then hosts.toml: containerd never sees a hosts.toml naming a missing CA file.
        return [
            ca_file_action(ca_path, name, ca_pem, "containerd (via hosts.toml)"),
            FileAction(
                containerd_hosts_toml_path(address.certs_d_name, directory), hosts_toml, name,
                "point containerd at the registry CA (hosts.toml)",
                "containerd reads hosts.toml on every pull, no restart needed",
                backup=True,  # a hand-written hosts.toml for this registry is kept as a backup
            ),
            *actions,
        ]

    def _enable_config_path(self, facts: NodeFacts, found: ContainerdFacts | None,
                            state: ContainerdConfigState, directory: str) -> list[NodeAction]:
        new_config = enable_config_path(found.config_text if found else None, state, directory)
        config_file = found.config_file if found else CONTAINERD_CONFIG
        return [
            FileAction(
                config_file, new_config.encode(), "containerd",
                "enable containerd's registry hosts directory (config_path)",
                "containerd ignores certs.d until config_path is set; the old file is backed up",
                mode=probed_config_mode(facts.probe), backup=True,
            ),
            CommandAction(
                ("systemctl", "restart", "containerd"), "containerd", "restart containerd",
                "containerd reads config.toml only at start (needed once, for config_path)",
                triggers=(config_file,), service="containerd", wait_active="containerd",
            ),
        ]

    def ca_paths(self, name: str, facts: NodeFacts, address: RegistryAddress) -> list[str]:
        return [containerd_ca_path(address.certs_d_name, hosts_dir(facts))]

    def mirror_actions(self, name: str, facts: NodeFacts, job: MirrorJob) -> list[NodeAction]:
        # The same directory as the CA's: trust_actions sets config_path when none is read.
        directory = hosts_dir(facts)
        actions: list[NodeAction] = []
        for mirror in job.mirrors:
            if mirror.private:
                actions.append(mirror_refusal(
                    name, mirror, "containerd hands the kubelet's login only to the image's own "
                                  "registry host, never to a mirror (its per-host auth in "
                                  "config.toml is deprecated)"))
                continue
            ca_path = containerd_ca_path(mirror.address.certs_d_name, directory)
            toml = render_mirror_hosts_toml(mirror, ca_path, job.mirror_only)
            actions += [
                mirror_ca_action(ca_path, name, mirror, job.ca_pem,
                                 "containerd (the mirror's hosts.toml names it)"),
                FileAction(containerd_hosts_toml_path(mirror.upstream, directory),
                           toml.encode(), name, f"pull {mirror.upstream} through its mirror "
                           "(hosts.toml)", "containerd reads hosts.toml on every pull, no "
                           "restart needed; a hand-written one is backed up",
                           backup=True, upstream=mirror.upstream),
            ]
        return actions + _stale_mirror_files(name, facts, directory, job)

    def trust_problem(self, name: str, facts: NodeFacts) -> TrustProblem | None:
        # Without config_path the CRI reads no hosts dir: a ctr pull would pass, kubelet's fail.
        found = config_facts(facts)
        if found is None:
            return None
        version = probed_version(facts.probe)
        mismatch = config_mismatch(found, version)
        if mismatch is not None:
            return TrustProblem(
                path=found.config_file, summary=mismatch[0], check="containerd configuration",
                detail=mismatch[1], mismatch=True,
                hint="run regwiz onboard: it writes hosts.toml where containerd reads it, or "
                     "fix the drop-in's config_path")
        if effective_hosts_dir(found.running, version) is not None:
            return None
        return TrustProblem(
            path=found.config_file,
            summary="no registry config_path: the CRI reads no certs.d directory",
            check="containerd configuration",
            detail=f"the configuration containerd runs ({found.config_file} and its imports) "
                   "sets no registry config_path: the CRI reads no certs.d directory",
            hint="run regwiz onboard: it enables config_path and restarts containerd once",
        )

    def pull_check(self, name: str, facts: NodeFacts, reference: str, *, sudo: bool,
                   helpers: frozenset[str], image_id: str | None) -> NodeCheckSpec | None:
        return pull_spec(reference, sudo=sudo, hosts_dir=hosts_dir(facts), image_id=image_id)

    def cri_socket(self, name: str, facts: NodeFacts) -> str | None:
        return CONTAINERD_SOCKET

    def sandbox_image(self, name: str, facts: NodeFacts) -> str | None:
        found = config_facts(facts)
        return found.sandbox_image or None if found else None
