"""The regwiz test lab: real hosts on this machine, made of Linux namespaces.

Each lab host is a network namespace on the bridge ``rwlab<ID>`` (subnet ``198.18.<ID>.0/24``)
plus a private mount namespace in which per-host copies of the directories regwiz touches
(``/etc/docker``, ``/etc/containerd``, ``/etc/ssl/certs``, ``/run``, ...) are bind-mounted. A
long-lived init process (``host-init.sh``) holds those namespaces; real daemons (OpenSSH sshd,
dockerd, containerd) run inside them, each in the host's own cgroup so tear-down can end every
one of them, also after a crashed run.

Usage::

    lab = Lab()            # lab id from $REGWIZ_LAB_ID (default 0)
    lab.up()
    lab["docker"].exec(["docker", "info"])
    lab.down()

Needs root. No textual here: this is test infrastructure, not product code.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.polling import poll_until

LAB_ID_ENV = "REGWIZ_LAB_ID"
MAX_LAB_ID = 199  # 198.18.240.0/21 and .250.0/24 are the hosts' inner docker networks
LAB_DIR = Path(__file__).resolve().parent
CACHE_DIR = Path("/var/cache/regwiz-lab")
LOCK_DIR = Path("/var/lock")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEPLOY_USER = "rwdeploy"
OPS_USER = "rwops"
OPS_PASSWORD = "rwops-password"  # noqa: S105 - a documented lab-only password

REGISTRY_IMAGE = "registry:2"
BUSYBOX_IMAGE = "regwiz-lab/busybox:latest"
FRONT_IMAGE = "nginx:stable"  # the registry's front (auth = "htpasswd"), from Debian's nginx

# Directories every lab host gets its own copy of (bind-mounted in its mount namespace).
PRIVATE_DIRS: tuple[str, ...] = (
    "/etc/docker",
    "/etc/containerd",
    "/etc/containers",
    "/etc/rancher",
    "/usr/local/share/ca-certificates",
    "/etc/ssl/certs",
    "/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/etc/sudoers.d",
    "/usr/local/sbin",
    "/registry-image",
    "/var/lib/kubelet",  # the kubelet's config.json (node credentials)
    "/root/.docker",  # root's Docker client config (node credentials on Docker nodes)
)
# Of those, the ones that start as a copy of the machine's real directory.
COPIED_DIRS = frozenset(
    {"/etc/docker", "/etc/containers", "/usr/local/share/ca-certificates", "/etc/ssl/certs"}
)

CONTAINERD_CONFIG_BASE = """\
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""
CONTAINERD_CONFIG_WITH_HOSTS_DIR = (
    CONTAINERD_CONFIG_BASE
    + """\
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
"""
)

REGISTRY_CONFIG_YML = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


class LabError(RuntimeError):
    """The lab could not be built, reached or torn down; the message says what and why."""


class LabCommandError(subprocess.CalledProcessError):
    """A command run inside a lab host failed; str() includes the tail of its output."""

    def __init__(self, host: str, proc: subprocess.CompletedProcess[bytes]) -> None:
        super().__init__(proc.returncode, proc.args, proc.stdout, proc.stderr)
        self.host = host

    def __str__(self) -> str:
        out = (self.stderr or b"").decode(errors="replace").strip()[-2000:]
        if not out:
            out = (self.stdout or b"").decode(errors="replace").strip()[-2000:]
        argv = " ".join(str(a) for a in self.cmd[6:]) if len(self.cmd) > 6 else str(self.cmd)
        return f"[{self.host}] `{argv}` exited {self.returncode}: {out}"


@dataclass(frozen=True)
class HostSpec:
    name: str
    octet: int
    ssh_user: str
    daemons: tuple[str, ...] = ("sshd",)
    containerd_config: str | None = None


CORE_HOSTS: tuple[HostSpec, ...] = (
    HostSpec("registry", 2, DEPLOY_USER, ("sshd", "docker")),
    HostSpec("docker", 3, "root", ("sshd", "docker")),
    HostSpec("containerd", 4, OPS_USER, ("sshd", "containerd"), CONTAINERD_CONFIG_WITH_HOSTS_DIR),
    HostSpec("bare", 5, DEPLOY_USER, ("sshd", "containerd"), CONTAINERD_CONFIG_BASE),
    HostSpec("plain", 6, DEPLOY_USER),
)
FIRST_NODE_OCTET = 101
LAST_NODE_OCTET = 254


# --------------------------------------------------------------------------- small helpers


def run(
    argv: Sequence[str | Path],
    *,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """Runs a command in the root namespace; on failure raises LabError with its stderr."""
    proc = subprocess.run(
        [str(a) for a in argv], input=input, capture_output=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise LabError(f"`{' '.join(str(a) for a in argv)}` exited {proc.returncode}: {err}")
    return proc


def port_for(name: str) -> int:
    """A registry port for the test fixture called ``name``, the same at every run: in
    20000-29999, below the range the kernel gives outgoing connections (32768-60999), where
    any connection the lab host makes could hold it just when Docker binds it."""
    return 20000 + zlib.crc32(name.encode()) % 10000


def lab_id_from_env() -> int:
    raw = os.environ.get(LAB_ID_ENV, "0").strip() or "0"
    try:
        lab_id = int(raw)
    except ValueError:
        raise LabError(f"{LAB_ID_ENV}={raw!r} is not a number; use 0..{MAX_LAB_ID}") from None
    if not 0 <= lab_id <= MAX_LAB_ID:
        raise LabError(f"{LAB_ID_ENV}={lab_id} is out of range; use 0..{MAX_LAB_ID}")
    return lab_id


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """A machine-wide lock shared by every lab id (users and image cache are machine-wide)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_DIR / f"regwiz-lab-{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def signal_and_wait(pids: Sequence[int], sig: signal.Signals, timeout: float) -> bool:
    """Sends sig to each pid, then waits until none is alive; False if some outlived timeout."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return poll_until(lambda: not any(process_alive(p) for p in pids), timeout=timeout)


def cgroup2_mount() -> Path | None:
    """Where the machine's cgroup v2 hierarchy is mounted in the root namespace, if it is."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def cgroup2_root() -> Path:
    """cgroup2_mount(), mounting the hierarchy at a place of the lab's own when it is not."""
    mounted = cgroup2_mount()
    if mounted is not None:
        return mounted
    fallback = Path("/run/regwiz-lab-cgroup2")
    fallback.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "cgroup2", "cgroup2", fallback])
    return fallback


def parallel(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = 16) -> list[Any]:
    """Runs fn over items in threads; re-raises the first failure after all have finished."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
    return [f.result() for f in futures]


# --------------------------------------------------------------------------- users and images


def ensure_users() -> None:
    """Creates the lab users on this machine when missing (/etc/passwd is shared by all hosts)."""
    with file_lock("users"):
        if run(["getent", "passwd", DEPLOY_USER], check=False).returncode != 0:
            run(["useradd", "--create-home", "--shell", "/bin/bash", DEPLOY_USER])
        if run(["getent", "passwd", OPS_USER], check=False).returncode != 0:
            run(["useradd", "--create-home", "--shell", "/bin/bash", OPS_USER])
        if "docker" not in run(["id", "-nG", DEPLOY_USER]).stdout.decode().split():
            run(["usermod", "-aG", "docker", DEPLOY_USER])
        # sshd without PAM refuses even key logins for locked ("!") accounts: "*" means
        # "no password" without being locked.
        if _shadow_hash(DEPLOY_USER).startswith("!"):
            run(["usermod", "-p", "*", DEPLOY_USER])
        if not _password_matches(OPS_USER, OPS_PASSWORD):
            run(["chpasswd", "-c", "SHA512"], input=f"{OPS_USER}:{OPS_PASSWORD}\n".encode())


def _shadow_hash(user: str) -> str:
    for line in Path("/etc/shadow").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == user:
            return rest.split(":", 1)[0]
    return ""


def _password_matches(user: str, password: str) -> bool:
    hashed = _shadow_hash(user)
    if not hashed or hashed[0] in "!*":
        return False
    proc = run(["openssl", "passwd", "-6", "-salt", hashed.split("$")[2], password], check=False)
    return hashed.startswith("$6$") and proc.stdout.decode().strip() == hashed


def _tar_add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
             kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.linkname = link
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _docker_archive(tag: str, layer: bytes, config: dict[str, Any]) -> bytes:
    """A `docker save` style tar with one layer, loadable with `docker load`."""
    layer_hex = hashlib.sha256(layer).hexdigest()
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "regwiz test lab"}],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{layer_hex}/layer.tar"]}]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        _tar_add(tar, f"{layer_hex}/", kind=tarfile.DIRTYPE, mode=0o755)
        _tar_add(tar, f"{layer_hex}/layer.tar", data=layer)
        _tar_add(tar, config_name, data=config_bytes)
        _tar_add(tar, "manifest.json", data=json.dumps(manifest).encode())
    return out.getvalue()


def _rootfs_tar(files: dict[str, tuple[bytes, int]], dirs: dict[str, int],
                links: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, mode in sorted(dirs.items()):
            _tar_add(tar, name + "/", kind=tarfile.DIRTYPE, mode=mode)
        for name, (data, mode) in sorted(files.items()):
            _tar_add(tar, name, data=data, mode=mode)
        for name, target in sorted(links.items()):
            _tar_add(tar, name, kind=tarfile.SYMTYPE, mode=0o777, link=target)
    return out.getvalue()


def _parent_dirs(paths: Sequence[str]) -> dict[str, int]:
    dirs: dict[str, int] = {}
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs["/".join(parts[:i])] = 0o755
    return dirs


def build_registry_layer() -> bytes:
    """registry:2 made from Debian's docker-registry binary and the libraries ldd lists."""
    binary = Path("/usr/bin/docker-registry")
    if not binary.exists():
        raise LabError("/usr/bin/docker-registry is missing: apt-get install docker-registry")
    files: dict[str, tuple[bytes, int]] = {"bin/registry": (binary.read_bytes(), 0o755)}
    for lib in _ldd_paths(binary):
        files[lib.lstrip("/")] = (Path(lib).resolve().read_bytes(), 0o755)
    files["etc/docker/registry/config.yml"] = (REGISTRY_CONFIG_YML.encode(), 0o644)
    dirs = _parent_dirs(list(files))
    dirs.update({"var": 0o755, "var/lib": 0o755, "var/lib/registry": 0o755, "tmp": 0o1777})
    return _rootfs_tar(files, dirs, {})


def _ldd_paths(binary: Path) -> list[str]:
    proc = run(["ldd", binary], check=False)
    paths = []
    for line in proc.stdout.decode().splitlines():
        for token in line.split():
            if token.startswith("/") and "(" not in token:
                paths.append(token)
    return sorted(set(paths))


NGINX_DEFAULT_CONF = """\
# the lab's nginx:stable: regwiz mounts its own /etc/nginx/nginx.conf over this one
pid /tmp/nginx.pid;
error_log stderr;
events {}
http {
    access_log /dev/stdout;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    server { listen 80; location / { return 200 "lab nginx\\n"; } }
}
"""


def build_nginx_layer() -> bytes:
    """nginx:stable made from Debian's nginx package like the official image: the binary and
    the libraries ldd lists, a default /etc/nginx/nginx.conf, users and groups (root, nobody,
    nginx, www-data), and the dirs nginx writes to."""
    binary = Path("/usr/sbin/nginx")
    if not binary.exists():
        raise LabError("/usr/sbin/nginx is missing: apt-get install nginx (never start it)")
    files: dict[str, tuple[bytes, int]] = {"usr/sbin/nginx": (binary.read_bytes(), 0o755)}
    for lib in _ldd_paths(binary):
        files[lib.lstrip("/")] = (Path(lib).resolve().read_bytes(), 0o755)
    files["etc/nginx/nginx.conf"] = (NGINX_DEFAULT_CONF.encode(), 0o644)
    files["etc/passwd"] = (b"root:x:0:0:root:/root:/bin/sh\n"
                           b"www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                           b"nginx:x:101:101:nginx:/nonexistent:/usr/sbin/nologin\n"
                           b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0o644)
    files["etc/group"] = (b"root:x:0:\nwww-data:x:33:\nnginx:x:101:\nnogroup:x:65534:\n"
                          b"nobody:x:65533:\n", 0o644)
    dirs = _parent_dirs(list(files))
    dirs.update({"tmp": 0o1777, "run": 0o755, "var": 0o755, "var/log": 0o755,
                 "var/log/nginx": 0o755, "var/lib": 0o755, "var/lib/nginx": 0o755,
                 "usr/share/nginx": 0o755, "usr/share/nginx/html": 0o755, "root": 0o700})
    return _rootfs_tar(files, dirs, {})


def build_busybox_layer() -> bytes:
    binary = Path("/usr/bin/busybox")
    if not binary.exists():
        raise LabError("/usr/bin/busybox is missing: apt-get install busybox-static")
    applets = run([binary, "--list"]).stdout.decode().split()
    links = {f"bin/{a}": "busybox" for a in applets if a and "/" not in a and a != "busybox"}
    files = {"bin/busybox": (binary.read_bytes(), 0o755)}
    dirs = {"bin": 0o755, "etc": 0o755, "tmp": 0o1777, "root": 0o700}
    return _rootfs_tar(files, dirs, links)


def cached_image_archives() -> dict[str, Path]:
    """The lab's two image archives, built once per machine (keyed by their inputs)."""
    builders: dict[str, tuple[Callable[[], bytes], dict[str, Any], Path]] = {
        REGISTRY_IMAGE: (
            build_registry_layer,
            {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Entrypoint": ["registry"],
                "Cmd": ["serve", "/etc/docker/registry/config.yml"],
                "Volumes": {"/var/lib/registry": {}},
                "ExposedPorts": {"5000/tcp": {}},
            },
            Path("/usr/bin/docker-registry"),
        ),
        FRONT_IMAGE: (
            build_nginx_layer,
            {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["nginx", "-g", "daemon off;"],
                "ExposedPorts": {"80/tcp": {}},
                "StopSignal": "SIGQUIT",
            },
            Path("/usr/sbin/nginx"),
        ),
        BUSYBOX_IMAGE: (
            build_busybox_layer,
            {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            Path("/usr/bin/busybox"),
        ),
    }
    archives: dict[str, Path] = {}
    with file_lock("images"):
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        for tag, (build, config, source) in builders.items():
            stat = source.stat()
            key = hashlib.sha256(
                f"v1 {tag} {stat.st_size} {stat.st_mtime_ns} {json.dumps(config)}".encode()
            ).hexdigest()[:16]
            path = CACHE_DIR / f"{tag.replace('/', '_').replace(':', '_')}-{key}.tar"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(_docker_archive(tag, build(), config))
                tmp.rename(path)
            archives[tag] = path
    return archives


# --------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class ServiceEvent:
    """One start/stop/restart by the lab's systemctl stand-in (LabHost.service_log)."""

    host: str
    began: float  # time.time() seconds: every lab host shares the machine's clock
    ended: float
    verb: str
    service: str
    exit_code: int


@dataclass
class LabHost:
    """One lab host. Commands run as root inside it with exec(); SSH goes to ip:22."""

    name: str
    ip: str
    ssh_user: str
    key_path: Path
    password: str | None
    sudo_password: str | None
    pid: int
    state_dir: Path
    netns: str
    daemons: tuple[str, ...]
    known_hosts: Path
    extra: dict[str, Any] = field(default_factory=dict)

    # ----- running things inside the host

    def exec(
        self,
        argv: list[str],
        *,
        input: bytes | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[bytes]:
        """Runs argv as root inside this host (its network and mount namespaces)."""
        full = ["nsenter", "-t", str(self.pid), "-m", "-n", "--", *argv]
        proc = subprocess.run(
            full,
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
            env={"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"},
        )
        if check and proc.returncode != 0:
            raise LabCommandError(self.name, proc)
        return proc

    def host_path(self, path: str) -> Path:
        """The root-namespace path of `path` as this host sees it.

        Paths under a private directory map into the host's state dir; any other path is
        shared with the machine and returned unchanged.
        """
        if not path.startswith("/"):
            raise ValueError(f"host_path needs an absolute path, got {path!r}")
        normal = os.path.normpath(path)
        for private in PRIVATE_DIRS:
            if normal == private or normal.startswith(private + "/"):
                return self.state_dir / "root" / normal.lstrip("/")
        return Path(normal)

    @property
    def docker_socket(self) -> Path | None:
        """Root-namespace path of this host's /run/docker.sock (None: no dockerd here)."""
        return self.host_path("/run/docker.sock") if "docker" in self.daemons else None

    @property
    def containerd_socket(self) -> Path | None:
        if "containerd" not in self.daemons:
            return None
        return self.host_path("/run/containerd/containerd.sock")

    # ----- daemons

    def _svc(self, action: str, daemon: str) -> None:
        if daemon not in self.daemons:
            raise LabError(f"lab host {self.name} has no {daemon} (it has {self.daemons})")
        self.exec(["/usr/local/sbin/rwlab-svc", action, daemon], timeout=90)

    def stop_daemon(self, daemon: str) -> None:
        """Stops "docker" or "containerd" on this host (waits until its process is gone)."""
        self._svc("stop", daemon)

    def start_daemon(self, daemon: str) -> None:
        """Starts "docker" or "containerd" and waits until it answers on its socket."""
        self._svc("start", daemon)

    def daemon_pid(self, daemon: str) -> int | None:
        pidfile = self.state_dir / "pids" / f"{daemon}.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def refuse_config(self, daemon: str, text: str | None) -> None:
        """Fault hook: while ``daemon``'s config file contains ``text``, the daemon fails at
        start-up (rwlab-svc); None removes the hook. Only containerd honours it."""
        hook = self.state_dir / "faults" / f"{daemon}.refuse-config"
        if text is None:
            hook.unlink(missing_ok=True)
            return
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(text)

    def service_log(self) -> list[ServiceEvent]:
        """Every start/stop/restart the systemctl stand-in ran on this host, oldest first."""
        try:
            lines = (self.state_dir / "logs" / "systemctl.log").read_text().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            began, ended, verb, service, rc = line.split()
            events.append(ServiceEvent(self.name, float(began), float(ended), verb, service,
                                       int(rc)))
        return events

    def stop_sshd(self) -> None:
        self._svc("stop", "sshd")

    def start_sshd(self) -> None:
        self._svc("start", "sshd")

    @property
    def host_key_path(self) -> Path:
        return self.state_dir / "sshd" / "ssh_host_ed25519_key"

    def host_public_key(self) -> str:
        """'ssh-ed25519 AAAA...' of the key sshd presents now."""
        parts = Path(f"{self.host_key_path}.pub").read_text().split()
        return f"{parts[0]} {parts[1]}"

    def host_key_fingerprint(self) -> str:
        """'SHA256:...' as ssh-keygen -l prints it."""
        return str(run(["ssh-keygen", "-lf", f"{self.host_key_path}.pub"]).stdout.split()[1],
                   "ascii")

    def replace_host_key(self) -> str:
        """Gives sshd a new host key (known_hosts is NOT updated); returns its fingerprint."""
        generate_host_key(self.host_key_path, self.name)
        self._svc("restart", "sshd")
        return self.host_key_fingerprint()

    # ----- persistence

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()}
        for key in ("key_path", "state_dir", "known_hosts"):
            data[key] = str(data[key])
        data["daemons"] = list(self.daemons)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabHost:
        data = dict(data)
        for key in ("key_path", "state_dir", "known_hosts"):
            data[key] = Path(data[key])
        data["daemons"] = tuple(data["daemons"])
        return cls(**data)


def generate_host_key(path: Path, comment: str) -> None:
    for stale in (path, Path(f"{path}.pub")):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"regwiz-lab-{comment}", "-f", path])


# --------------------------------------------------------------------------- the lab


class Lab:
    """A set of lab hosts on bridge rwlab<ID>. See the module docstring."""

    def __init__(self, lab_id: int | None = None) -> None:
        self.lab_id = lab_id_from_env() if lab_id is None else lab_id
        if not 0 <= self.lab_id <= MAX_LAB_ID:
            raise LabError(f"lab id {self.lab_id} is out of range 0..{MAX_LAB_ID}")
        self.subnet = f"198.18.{self.lab_id}.0/24"
        self.gateway = f"198.18.{self.lab_id}.1"
        self.bridge = f"rwlab{self.lab_id}"
        self.state_dir = Path(f"/tmp/regwiz-lab-{self.lab_id}")
        self.known_hosts = self.state_dir / "known_hosts"
        self.key_path = self.state_dir / "id_ed25519"
        self.hosts: dict[str, LabHost] = {}
        self.images: dict[str, Path] = {}
        # init processes this Python process started: reaped on down (no zombies left)
        self._init_procs: dict[str, subprocess.Popen[bytes]] = {}

    def __getitem__(self, name: str) -> LabHost:
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"no lab host {name!r}; hosts: {', '.join(self.hosts)}") from None

    def __repr__(self) -> str:
        return f"Lab(lab_id={self.lab_id}, hosts={list(self.hosts)})"

    @property
    def netns_prefix(self) -> str:
        return f"rwl{self.lab_id}-"

    @property
    def cgroup(self) -> str:
        """The lab's cgroup, relative to the cgroup2 root."""
        return f"regwiz-lab-{self.lab_id}"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "lab.json"

    # ----- life cycle

    def up(self) -> None:
        """Builds the core hosts (registry, docker, containerd, bare, plain) from scratch."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, bind mounts, daemons)")
        self.down()
        try:
            self._prepare_machine()
            self._start_hosts(list(CORE_HOSTS))
            self._load_images([self.hosts["registry"], self.hosts["docker"]])
        except BaseException:
            self.down()
            raise

    def add_sshd_nodes(self, n: int) -> list[LabHost]:
        """Adds n sshd-only hosts node01.. (next free numbers), user rwdeploy; returns them."""
        specs = [HostSpec(f"node{o - FIRST_NODE_OCTET + 1:02d}", o, DEPLOY_USER)
                 for o in self._free_octets(n)]
        return self._start_hosts(specs)

    def containerd_nodes(self, count: int) -> list[LabHost]:
        """The first ``count`` containerd hosts ctrd01.. (sshd + containerd whose config.toml
        sets no config_path, user rwdeploy), adding the missing ones; shared like sshd_nodes."""
        existing = sorted((h for name, h in self.hosts.items() if name.startswith("ctrd")),
                          key=lambda h: h.name)
        missing = count - len(existing)
        if missing > 0:
            # from the top of the range, so sshd nodes keep their numbers (node01 = .101)
            octets = self._free_octets(missing, from_top=True)
            existing += self._start_hosts([
                HostSpec(f"ctrd{len(existing) + i + 1:02d}", octet, DEPLOY_USER,
                         ("sshd", "containerd"), CONTAINERD_CONFIG_BASE)
                for i, octet in enumerate(octets)])
        return existing[:count]

    def _free_octets(self, n: int, *, from_top: bool = False) -> list[int]:
        taken = {h.ip.rsplit(".", 1)[1] for h in self.hosts.values()}
        octets = [o for o in range(FIRST_NODE_OCTET, LAST_NODE_OCTET + 1) if str(o) not in taken]
        if from_top:
            octets.reverse()
        if n > len(octets):
            raise LabError(f"only {len(octets)} more hosts fit in {self.subnet}")
        return octets[:n]

    def sshd_nodes(self, count: int) -> list[LabHost]:
        """The first ``count`` sshd-only hosts (node01.., by name), adding the missing ones.

        The lab cannot remove hosts: nodes added here stay for the rest of the session, and
        every test that needs sshd-only nodes shares them (each cleans up what it writes)."""
        existing = sorted((h for name, h in self.hosts.items() if name.startswith("node")),
                          key=lambda h: h.name)
        if len(existing) < count:
            existing += self.add_sshd_nodes(count - len(existing))
        return existing[:count]

    def down(self) -> None:
        """Ends every process of this lab id, removes its namespaces, links, cgroups, files.

        Also cleans up after a crashed run: it finds leftovers by name, not only from memory.
        """
        hosts = dict(self.hosts)
        hosts.update(self._hosts_from_state_file())
        self._stop_daemons(list(hosts.values()))
        self._kill_cgroup()
        netns = self._lab_netns()
        for ns in netns:
            self._kill_netns_processes(ns)
        for host in hosts.values():
            if process_alive(host.pid) and self._pid_in_lab(host.pid):
                os.kill(host.pid, signal.SIGKILL)
        for proc in self._init_procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self._init_procs = {}
        self._remove_cgroup()
        # Delete the veths explicitly: a deleted netns frees its links only asynchronously.
        for veth in self._lab_veths():
            run(["ip", "link", "del", veth], check=False)
        for ns in netns:
            run(["ip", "netns", "del", ns], check=False)
        if Path(f"/sys/class/net/{self.bridge}").exists():
            run(["ip", "link", "del", self.bridge], check=False)
        self._unmount_under_state_dir()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.hosts = {}

    @classmethod
    def attach(cls, lab_id: int | None = None) -> Lab | None:
        """The lab already running under this id (e.g. from tests/lab/up), or None."""
        lab = cls(lab_id)
        hosts = lab._hosts_from_state_file()
        if not hosts or not (lab.state_dir / "complete").exists():
            return None
        if not all(process_alive(h.pid) and h.daemon_pid("sshd") for h in hosts.values()):
            return None
        lab.hosts = hosts
        lab.images = {k: Path(v) for k, v in lab._read_state().get("images", {}).items()}
        return lab

    # ----- machine-wide preparation

    def _prepare_machine(self) -> None:
        for tool in ("ip", "nsenter", "unshare", "sshd", "ssh-keygen", "setsid", "curl"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                raise LabError(f"`{tool}` is missing on this machine; run scripts/test once")
        ensure_users()
        self.images = cached_image_archives()
        self.state_dir.mkdir(mode=0o755, parents=True)
        # tmpfs: per-host copies (thousands of small files) and tear-down are memory-fast;
        # the machine's disk is slow for metadata when other labs run at the same time.
        run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=8g", "regwiz-lab", self.state_dir])
        (self.state_dir / "hosts").mkdir()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "regwiz-lab-client",
             "-f", self.key_path])
        authorized = self.state_dir / "authorized_keys"
        authorized.write_text(Path(f"{self.key_path}.pub").read_text())
        authorized.chmod(0o644)
        cg = cgroup2_root() / self.cgroup
        cg.mkdir(exist_ok=True)
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        self._write_state()

    # ----- hosts

    def _start_hosts(self, specs: list[HostSpec]) -> list[LabHost]:
        started: list[LabHost] = parallel(self._start_host, specs)
        for host in started:
            self.hosts[host.name] = host
        self.write_known_hosts()
        self._write_state()
        (self.state_dir / "complete").touch()
        return started

    def _start_host(self, spec: HostSpec) -> LabHost:
        host_dir = self.state_dir / "hosts" / spec.name
        self._prepare_host_dir(spec, host_dir)
        netns = f"{self.netns_prefix}{spec.name}"
        self._plug_host(netns, spec)
        ip = f"198.18.{self.lab_id}.{spec.octet}"
        with open(host_dir / "logs" / "init.log", "wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv
                ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
                 str(host_dir / "root/usr/local/sbin/rwlab-host-init"), str(host_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={"PATH": PATH, "LANG": "C.UTF-8"},
            )
        ready = poll_until(
            lambda: (host_dir / "ready").exists()
            or (host_dir / "failed").exists()
            or proc.poll() is not None,
            timeout=240,  # generous: a busy 2-core machine can take long to start dockerd
        )
        self._init_procs[spec.name] = proc
        if not (host_dir / "ready").exists():
            raise LabError(f"lab host {spec.name} did not start: "
                           f"{self._start_failure(host_dir, proc, ready)}")
        is_ops = spec.ssh_user == OPS_USER
        return LabHost(
            name=spec.name, ip=ip, ssh_user=spec.ssh_user, key_path=self.key_path,
            password=OPS_PASSWORD if is_ops else None,
            sudo_password=OPS_PASSWORD if is_ops else None,
            pid=proc.pid, state_dir=host_dir, netns=netns, daemons=spec.daemons,
            known_hosts=self.known_hosts,
        )

    @staticmethod
    def _start_failure(host_dir: Path, proc: subprocess.Popen[bytes], ready: bool) -> str:
        if not ready:
            reason = "timed out"
        elif (host_dir / "failed").exists():
            reason = (host_dir / "failed").read_text().strip()
        else:
            reason = f"its init exited with {proc.poll()}"
        log_text = (host_dir / "logs" / "init.log").read_text(errors="replace")[-1500:]
        return f"{reason}\n{log_text}"

    def _prepare_host_dir(self, spec: HostSpec, host_dir: Path) -> None:
        for sub in ("pids", "logs", "sshd", "docker-exec"):
            (host_dir / sub).mkdir(parents=True, exist_ok=True)
        root = host_dir / "root"
        for target in PRIVATE_DIRS:
            dest = root / target.lstrip("/")
            if target in COPIED_DIRS and Path(target).is_dir():
                shutil.copytree(target, dest, symlinks=True)
            else:
                dest.mkdir(parents=True, exist_ok=True)
        (root / "var/lib/docker").chmod(0o710)
        if spec.containerd_config is not None:
            (root / "etc/containerd/config.toml").write_text(spec.containerd_config)
        sudoers = root / "etc/sudoers.d/regwiz-lab"
        sudoers.write_text(
            "Defaults lecture=never\n"
            f"{DEPLOY_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n{OPS_USER} ALL=(ALL:ALL) ALL\n"
        )
        sudoers.chmod(0o440)
        sbin = root / "usr/local/sbin"
        for script, name in (("rwlab-svc", "rwlab-svc"), ("systemctl", "systemctl"),
                             ("host-init.sh", "rwlab-host-init")):
            shutil.copy2(LAB_DIR / script, sbin / name)
            (sbin / name).chmod(0o755)
        octet = spec.octet
        (sbin / "rwlab-host.env").write_text(
            f"HOST_NAME={spec.name}\nHOST_IP=198.18.{self.lab_id}.{octet}\n"
            f"HOST_DIR={host_dir}\nCGROUP={self.cgroup}/{spec.name}\n"
            f"DAEMONS='{' '.join(spec.daemons)}'\nPRIVATE_DIRS='{' '.join(PRIVATE_DIRS)}'\n"
            f"DOCKER_BIP=198.18.250.1/24\nDOCKER_POOL=198.18.240.0/21\n"
        )
        self._write_sshd_config(spec, host_dir)
        cg = cgroup2_root() / self.cgroup / spec.name
        (cg / "daemons").mkdir(parents=True, exist_ok=True)

    def _write_sshd_config(self, spec: HostSpec, host_dir: Path) -> None:
        generate_host_key(host_dir / "sshd/ssh_host_ed25519_key", spec.name)
        (host_dir / "sshd/sshd_config").write_text(
            f"""\
ListenAddress 198.18.{self.lab_id}.{spec.octet}:22
HostKey {host_dir}/sshd/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile {self.state_dir}/authorized_keys
# the key file lives under /tmp (world-writable), which StrictModes would refuse
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 100:30:200
MaxSessions 100
UseDNS no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
"""
        )

    def _plug_host(self, netns: str, spec: HostSpec) -> None:
        veth = f"rwl{self.lab_id}h{spec.octet}"
        ip = f"198.18.{self.lab_id}.{spec.octet}/24"
        run(["ip", "netns", "add", netns])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
        run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        batch = f"addr add {ip} dev eth0\nlink set eth0 up\nlink set lo up\n"
        run(["ip", "-n", netns, "-batch", "-"], input=batch.encode())

    def _load_images(self, hosts: list[LabHost]) -> None:
        def load(host: LabHost) -> None:
            for archive in self.images.values():
                host.exec(["docker", "load", "-q", "-i", str(archive)], timeout=120)

        parallel(load, hosts)

    # ----- known_hosts and state

    def write_known_hosts(self) -> None:
        """(Re)writes known_hosts from the keys the hosts' sshd present now."""
        lines = [f"{h.ip} {h.host_public_key()}\n" for h in self.hosts.values()]
        tmp = self.known_hosts.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        tmp.rename(self.known_hosts)

    def _write_state(self) -> None:
        data = {
            "lab_id": self.lab_id,
            "images": {k: str(v) for k, v in self.images.items()},
            "hosts": {name: h.to_json() for name, h in self.hosts.items()},
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.rename(self._state_file)

    def _read_state(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}
        return loaded

    def _hosts_from_state_file(self) -> dict[str, LabHost]:
        hosts = self._read_state().get("hosts", {})
        return {name: LabHost.from_json(data) for name, data in hosts.items()}

    # ----- tear-down helpers

    def _stop_daemons(self, hosts: list[LabHost]) -> None:
        """SIGTERM to each daemon by its recorded pid, then a short wait (KILL comes later)."""
        pids = [pid for host in hosts for daemon in host.daemons
                if (pid := host.daemon_pid(daemon)) and self._pid_in_lab(pid)]
        signal_and_wait(pids, signal.SIGTERM, timeout=10)

    def _pid_in_lab(self, pid: int) -> bool:
        """Guards against a recycled pid: the process must be in this lab's cgroup or netns."""
        try:
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False
        if f"/{self.cgroup}/" in cgroup:
            return True
        return any(str(pid) in self._netns_pids(ns) for ns in self._lab_netns())

    def _lab_netns(self) -> list[str]:
        out = run(["ip", "netns", "list"], check=False).stdout.decode()
        names = [line.split()[0] for line in out.splitlines() if line.strip()]
        return [n for n in names if n.startswith(self.netns_prefix)]

    def _lab_veths(self) -> list[str]:
        pattern = re.compile(rf"rwl{self.lab_id}h\d+")
        return [p.name for p in Path("/sys/class/net").iterdir() if pattern.fullmatch(p.name)]

    @staticmethod
    def _netns_pids(ns: str) -> list[str]:
        return run(["ip", "netns", "pids", ns], check=False).stdout.decode().split()

    def _kill_netns_processes(self, ns: str) -> None:
        signal_and_wait([int(p) for p in self._netns_pids(ns)], signal.SIGKILL, timeout=10)

    def _kill_cgroup(self) -> None:
        cg = self._cgroup_path()
        if cg is None or not cg.exists():
            return
        (cg / "cgroup.kill").write_text("1")
        poll_until(lambda: "populated 0" in (cg / "cgroup.events").read_text(), timeout=10)

    def _remove_cgroup(self) -> None:
        cg = self._cgroup_path()
        if cg is None or not cg.exists():
            return
        for path in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            cg.rmdir()

    def _cgroup_path(self) -> Path | None:
        root = cgroup2_mount()
        return None if root is None else root / self.cgroup

    def _unmount_under_state_dir(self) -> None:
        """Unmounts the state dir's tmpfs and anything below it (deepest first)."""
        prefix = str(self.state_dir)
        mounts = [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1] == prefix or line.split()[1].startswith(prefix + "/")
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            run(["umount", "-l", mount], check=False)

    # ----- description

    def describe(self) -> str:
        """What `tests/lab/up` prints: how to reach each host."""
        lines = [
            f"regwiz lab {self.lab_id}: bridge {self.bridge} {self.gateway}/24, "
            f"state {self.state_dir}",
            f"known_hosts: {self.known_hosts}",
            "",
            f"{'host':<11} {'address':<15} {'ssh user':<9} {'key':<31} {'password':<15} "
            f"{'sudo password':<17} daemons",
        ]
        for h in self.hosts.values():
            sudo = h.sudo_password or ("-" if h.ssh_user == "root" else "(NOPASSWD)")
            lines.append(
                f"{h.name:<11} {h.ip:<15} {h.ssh_user:<9} {str(h.key_path):<31} "
                f"{h.password or '-':<15} {sudo:<17} {' '.join(h.daemons)}"
            )
        lines.append("")
        lines.append(
            f"ssh -i {self.key_path} -o UserKnownHostsFile={self.known_hosts} "
            f"-o StrictHostKeyChecking=yes USER@ADDRESS"
        )
        return "\n".join(lines)
