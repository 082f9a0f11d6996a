"""Field validators shared by the plan loader, the CLI and the TUI.

Every ``check_*`` function takes the raw value and returns ``None`` when it is valid, or one
message saying what is wrong and what is expected. Messages never name the field (callers prefix
it, e.g. ``registry.port: ...``), except ``check_text_field`` which is given the name to use.
Validators never raise, whatever they are given: a non-string value is reported, not crashed on.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable

from app.paths import unknown_home
from app.runtimes.registry import plan_runtimes

# ISO 3166-1 alpha-2 codes (249, from Debian's iso-codes 4.x), embedded so no package is needed.
ISO_3166_ALPHA2: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - a compact table is easier to check than 249 quoted strings
)

# Common mistakes whose fix is not obvious from "not a code".
_COUNTRY_HINTS = {"UK": "GB", "EL": "GR", "KO": "KR"}

KEY_TYPES: tuple[str, ...] = (
    "ecdsa-p256",
    "ecdsa-p384",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "ed25519",
)
# A node's runtime setting: "auto" (detect), a runtime adapter's name, or "none" (OS store only).
RUNTIMES: tuple[str, ...] = ("auto", *plan_runtimes(), "none")
AUTH_MODES: tuple[str, ...] = ("none", "htpasswd")

MAX_CN_LENGTH = 64  # RFC 5280 ub-common-name
MAX_TEXT_LENGTH = 128  # RFC 5280 upper bound for ST, L, O, OU
MAX_EMAIL_LENGTH = 254
MAX_DNS_NAME_LENGTH = 253
MAX_PATH_LENGTH = 4096
MAX_VALIDITY_DAYS = 36500

_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# ssh_config Host aliases may contain underscores, so host labels allow them too.
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#%&'*+/=?^_`{|}~-]+)*")
_CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# name[:tag][@digest] with optional registry host[:port] and path components (lower case).
_IMAGE_REF = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)
_SHELL_META = set("|&;<>()$`\\\"' \t\n*?[]#~=%!{}")


def _shown(value: object, limit: int = 40) -> str:
    """A value quoted for a message: control characters escaped, long values shortened."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii", "replace")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f'"{text}"' if isinstance(value, str) else text


def _has_control(value: str) -> bool:
    return any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value)


def _not_text(value: object) -> str | None:
    if isinstance(value, str):
        return None
    return f"expected text, got {type(value).__name__} {_shown(value)}"


def check_common_name(value: object) -> str | None:
    """CN: 1..64 characters, no control characters."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if not value.strip():
        return "must not be empty: use the registry's DNS name, e.g. registry.example.internal"
    if len(value) > MAX_CN_LENGTH:
        return f"must be at most {MAX_CN_LENGTH} characters, got {len(value)}"
    if _has_control(value):
        return f"must not contain control characters, got {_shown(value)}"
    if value != value.strip():
        return f"must not start or end with spaces, got {_shown(value)}"
    return None


def check_country(value: object) -> str | None:
    """Country: empty (left out of the subject) or an upper-case ISO 3166-1 alpha-2 code."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if value == "":
        return None
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        return (
            f"expected a two-letter ISO 3166-1 country code such as KR or US, got {_shown(value)}"
        )
    if value.upper() in _COUNTRY_HINTS:
        return f"{_shown(value)} is not an ISO 3166-1 code: use {_COUNTRY_HINTS[value.upper()]}"
    if value.upper() not in ISO_3166_ALPHA2:
        return f"{_shown(value)} is not an ISO 3166-1 alpha-2 country code (e.g. KR, US, DE)"
    if value != value.upper():
        return f"country codes are upper case: use {value.upper()}"
    return None


def check_text_field(name: str, value: object, max_len: int = MAX_TEXT_LENGTH) -> str | None:
    """Free text subject fields (ST, L, O, OU): empty or up to ``max_len`` characters."""
    if (problem := _not_text(value)) is not None:
        return f"{name}: {problem}"
    assert isinstance(value, str)
    if len(value) > max_len:
        return f"{name} must be at most {max_len} characters, got {len(value)}"
    if _has_control(value):
        return f"{name} must not contain control characters, got {_shown(value)}"
    if value != value.strip():
        return f"{name} must not start or end with spaces, got {_shown(value)}"
    return None


def check_email(value: object) -> str | None:
    """E-mail address for the subject: empty (left out) or local@domain.name."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if value == "":
        return None
    expected = "expected an address like ops@example.com"
    if len(value) > MAX_EMAIL_LENGTH:
        return f"must be at most {MAX_EMAIL_LENGTH} characters, got {len(value)}"
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return f"{expected}, got {_shown(value)}"
    if len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
        return f"{expected}; the part before @ is not valid in {_shown(value)}"
    if _dns_name_problem(domain, allow_wildcard=False) is not None or "." not in domain:
        return f"{expected}; the domain after @ is not a valid DNS name in {_shown(value)}"
    return None


def _ip_problem(value: str) -> tuple[bool, str | None]:
    """(is an IP literal, problem). Problems are for IPs that make no sense in a certificate."""
    if "%" in value:
        return True, f"IPv6 zone ids (the %... part) cannot be in a certificate: {_shown(value)}"
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False, None
    if address.is_unspecified:
        return True, f"{value} is the unspecified address: use the host's real IP"
    if address.is_multicast:
        return True, f"{value} is a multicast address: use the host's unicast IP"
    return True, None


def _dns_name_problem(
    value: str,
    *,
    allow_wildcard: bool,
    label: re.Pattern[str] = _LDH_LABEL,
) -> str | None:
    if not value.isascii():
        return "non-ASCII names must be given in their xn-- (punycode) form"
    if value.endswith("."):
        return "drop the trailing dot"
    if len(value) > MAX_DNS_NAME_LENGTH:
        return f"a DNS name is at most {MAX_DNS_NAME_LENGTH} characters, got {len(value)}"
    labels = value.split(".")
    if labels[0] == "*" and allow_wildcard:
        if len(labels) < 3:
            return "a wildcard needs at least two labels after it, e.g. *.example.internal"
        labels = labels[1:]
    for part in labels:
        if "*" in part:
            return "a wildcard is only allowed as the whole left-most label, e.g. *.example.com"
        if not part:
            return "empty label (two dots in a row, or a leading dot)"
        if len(part) > 63:
            return f"label {_shown(part, 20)} is longer than 63 characters"
        if not label.fullmatch(part):
            return f"label {_shown(part, 20)} may only hold letters, digits and inner hyphens"
    if labels[-1].isdigit():
        return "not a valid IP address, and a DNS name cannot end in an all-digit label"
    return None


def check_san(value: object) -> str | None:
    """Subject alternative name: an IPv4/IPv6 address or a DNS name (wildcard left-most only)."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if value == "":
        return "must not be empty: give an IP address or a DNS name"
    if (problem := _url_problem(value)) is not None:
        return problem
    if value.startswith("[") and value.endswith("]"):
        return f"write IPv6 addresses without brackets, e.g. {value[1:-1]}"
    is_ip, problem = _ip_problem(value)
    if is_ip:
        return problem
    problem = _dns_name_problem(value, allow_wildcard=True)
    if problem is not None:
        return f"expected an IP address or a DNS name, got {_shown(value)}: {problem}"
    return None


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _url_problem(value: str) -> str | None:
    """A SAN pasted as a URL or host:port (people copy image references): say what to drop."""
    dropped: list[str] = []
    rest = value
    if scheme := _SCHEME.match(rest):
        rest, dropped = rest[scheme.end():], ["scheme"]
    host, slash, _ = rest.partition("/")
    if host.startswith("[") and "]:" in host:
        host, port = host[1:].split("]:", 1)
    elif host.count(":") == 1:
        host, port = host.split(":")
    else:
        port = ""
    dropped += ["port"] if port else []
    dropped += ["path"] if slash else []
    if not dropped or not host:
        return None
    what = " and ".join([", ".join(dropped[:-1]), dropped[-1]] if len(dropped) > 1 else dropped)
    return f"drop the {what}: a SAN is a bare DNS name or IP address, e.g. {_shown(host)}"


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return "%" not in value


def warnings_for_san(value: str) -> list[str]:
    """Valid but rarely wanted SANs: localhost, single-label names, loopback IPs."""
    if check_san(value) is not None:
        return []
    if is_ip_address(value):
        address = ipaddress.ip_address(value)
        if address.is_loopback:
            return [f"{value} is a loopback address: other nodes cannot reach the registry there"]
        if address.is_link_local:
            return [f"{value} is a link-local address: it only works on the same network link"]
        return []
    name = value.lower()
    if name == "localhost" or name.endswith(".localhost"):
        return [f"{value} only ever means the node itself: other nodes cannot use it"]
    if "." not in name:
        return [f"{value} is a single-label name: every node must resolve it the same way"]
    return []


def check_host(value: object) -> str | None:
    """SSH target: "local", an IP address or a host name (ssh_config aliases allowed)."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if value == "":
        return 'must not be empty: give an IP address, a host name, or "local"'
    if value == "local":
        return None
    if _has_control(value) or any(ch in _SHELL_META for ch in value):
        return f"must not contain spaces, control or shell characters, got {_shown(value)}"
    if value.startswith("-"):
        return f"must not start with '-', got {_shown(value)}"
    if "@" in value:
        return f"give the user name in ssh_user, not in the host: {_shown(value)}"
    if value.startswith("[") and value.endswith("]"):
        return f"write IPv6 addresses without brackets, e.g. {value[1:-1]}"
    is_ip, problem = _ip_problem(value)
    if is_ip:
        return problem
    if value.count(":") == 1:
        return f"give the port in ssh_port, not in the host: {_shown(value)}"
    problem = _dns_name_problem(value, allow_wildcard=False, label=_HOST_LABEL)
    if problem is not None:
        return f'expected an IP address, a host name or "local", got {_shown(value)}: {problem}'
    return None


_SUDO_PASSWORD_ENV = re.compile(r"REGWIZ_SUDO_PASSWORD(_[A-Z0-9_]+)?")


def check_sudo_password_env(value: object) -> str | None:
    """The name of the variable holding a host's sudo password. Only REGWIZ_SUDO_PASSWORD and
    REGWIZ_SUDO_PASSWORD_<NAME>: a plan must not be able to send any other secret of the
    operator's environment (a cloud key, a token) to a host as its sudo password."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if not _SUDO_PASSWORD_ENV.fullmatch(value):
        # the value is not shown: it may be a password written here by mistake
        return ("expected the name of an environment variable REGWIZ_SUDO_PASSWORD_<NAME> "
                "(A-Z, 0-9, _) that holds the password, never the password itself")
    return None


def check_user(value: object) -> str | None:
    """POSIX user name: letters, digits, '_', '.', '-', not starting with a digit, '-' or '.'."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if value == "":
        return "must not be empty: give the login user on that host, e.g. deploy"
    if not _USER_NAME.fullmatch(value):
        return (
            "expected a user name of at most 32 letters, digits, '_', '.' or '-', "
            f"starting with a letter or '_', got {_shown(value)}"
        )
    return None


def check_port(value: object) -> str | None:
    """TCP port: an integer (or a string of digits) from 1 to 65535."""
    expected = f"expected an integer from 1 to 65535, got {_shown(value)}"
    if isinstance(value, bool):
        return expected
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 5:
            return expected
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        return expected
    return None


def check_days(value: object, maximum: int = MAX_VALIDITY_DAYS) -> str | None:
    """A validity period in days: an integer from 1 to ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        return f"expected a number of days from 1 to {maximum}, got {_shown(value)}"
    return None


def check_percent(value: object) -> str | None:
    """A warning threshold in percent: an integer from 1 to 99."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 99:
        return f"expected a percentage from 1 to 99, got {_shown(value)}"
    return None


def check_remote_path(value: object) -> str | None:
    """Absolute path on a remote host: starts with '/', no control characters, no '..'."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if not value.startswith("/"):
        return f"expected an absolute path starting with '/', got {_shown(value)}"
    if len(value) > MAX_PATH_LENGTH:
        return f"must be at most {MAX_PATH_LENGTH} characters, got {len(value)}"
    if _has_control(value):
        return f"must not contain control characters, got {_shown(value)}"
    if ".." in value.split("/"):
        return f"must not contain '..' components, got {_shown(value)}"
    if value.rstrip("/") == "":
        return "must not be the root directory '/'"
    return None


# Directories regwiz must never use as (or delete as) the registry's data or certificate dir:
# the OS, the container runtimes' and Kubernetes' own state, and home roots.
SYSTEM_DIRECTORIES: frozenset[str] = frozenset("""
    / /bin /boot /dev /etc /home /lib /lib32 /lib64 /libx32 /media /mnt /opt /proc /root /run
    /sbin /snap /srv /sys /tmp /usr /usr/bin /usr/lib /usr/lib64 /usr/libexec /usr/local
    /usr/local/bin /usr/local/etc /usr/local/lib /usr/local/sbin /usr/local/share /usr/sbin
    /usr/share /usr/src /var /var/cache /var/lib /var/log /var/mail /var/opt /var/run /var/spool
    /var/tmp /var/www /etc/docker /etc/docker/certs.d /etc/containerd /etc/containerd/certs.d
    /etc/containers /etc/kubernetes /etc/rancher /etc/ssl /etc/ssl/certs /etc/pki /etc/systemd
    /var/lib/docker /var/lib/containerd /var/lib/containers /var/lib/kubelet /var/lib/etcd
    /var/lib/rancher
""".split())  # noqa: SIM905 - a compact table is easier to read than 70 quoted strings
# Trees owned by the kernel, the boot loader, Kubernetes or a runtime: nothing of ours inside.
SYSTEM_TREES: tuple[str, ...] = ("/proc", "/sys", "/dev", "/boot", "/etc/kubernetes",
                                 "/var/lib/kubelet", "/var/lib/docker", "/var/lib/containerd",
                                 "/var/lib/etcd")


def normalize_remote_path(path: str) -> str:
    """``path`` as a Linux host resolves it, lexically: repeated slashes collapsed (Linux reads
    ``//etc`` as ``/etc``, but ``posixpath.normpath`` keeps a leading ``//``), ``.`` and ``..``
    resolved, no trailing slash."""
    collapsed = re.sub("/+", "/", path)
    return posixpath.normpath(collapsed) if collapsed else collapsed


def system_directory(path: str) -> str | None:
    """What makes ``path`` (normalized) a system location, or None when it is not one."""
    normalized = normalize_remote_path(path)
    if normalized in SYSTEM_DIRECTORIES:
        return f"the system directory {normalized}"
    parts = normalized.split("/")
    if len(parts) == 3 and parts[1] == "home":
        return f"the home directory {normalized}"
    for tree in SYSTEM_TREES:
        if normalized.startswith(tree + "/"):
            return f"inside the system directory {tree}"
    return None


def _dedicated_dir_check(example: str) -> Callable[[object], str | None]:
    """A remote directory regwiz may write to (and purge): never a system location."""

    def check(value: object) -> str | None:
        if (problem := check_remote_path(value)) is not None:
            return problem
        assert isinstance(value, str)
        if (what := system_directory(value)) is not None:
            return (f"{_shown(value)} is {what}: give the registry a directory of its own, "
                    f"e.g. {example}")
        return None

    return check


check_data_dir = _dedicated_dir_check("/srv/registry/data")
check_certs_dir = _dedicated_dir_check("/etc/docker/certs")


def check_local_path(value: object) -> str | None:
    """A path on this machine (e.g. an identity file): non-empty, no control characters."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if not value.strip():
        return "must not be empty"
    if len(value) > MAX_PATH_LENGTH or _has_control(value):
        return f"expected a file path without control characters, got {_shown(value)}"
    if (prefix := unknown_home(value)) is not None:
        return f"there is no user {_shown(prefix[1:])} on this machine: use an absolute path"
    return None


def check_choice(value: object, choices: tuple[str, ...]) -> str | None:
    if isinstance(value, str) and value in choices:
        return None
    return f"expected one of {', '.join(choices)}, got {_shown(value)}"


def check_key_type(value: object) -> str | None:
    return check_choice(value, KEY_TYPES)


def check_runtime(value: object) -> str | None:
    return check_choice(value, RUNTIMES)


def check_auth(value: object) -> str | None:
    return check_choice(value, AUTH_MODES)


def check_bind_address(value: object) -> str | None:
    """The host address a port is published on: an IPv4/IPv6 address (0.0.0.0: all)."""
    if isinstance(value, str) and is_ip_address(value):
        return None
    return ("expected an IP address of the registry host (0.0.0.0: every address), got "
            f"{_shown(value)}")


def check_container_name(value: object) -> str | None:
    """Docker container name: [A-Za-z0-9][A-Za-z0-9_.-]*."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if not _CONTAINER_NAME.fullmatch(value):
        return (
            "expected a container name of letters, digits, '_', '.' or '-' "
            f"(not starting with '_', '.' or '-'), got {_shown(value)}"
        )
    return None


def check_image(value: object) -> str | None:
    """Image reference such as registry:2 or docker.io/library/registry:2.8.3."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if len(value) > 255 or not _IMAGE_REF.fullmatch(value):
        return f"expected an image reference such as registry:2, got {_shown(value)}"
    return None


_REPOSITORY_REF = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})?"
)


def check_repository_reference(value: object) -> str | None:
    """An image in the plan's registry, without the registry: ``project/image:tag``."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    first = value.split("/", 1)[0]
    if "/" in value and ("." in first or ":" in first or first == "localhost"):
        return (f"name the image without the registry (e.g. library/busybox:latest), got "
                f"{_shown(value)}: the registry is registry.address and registry.port")
    if len(value) > 255 or not _REPOSITORY_REF.fullmatch(value):
        return f"expected an image such as library/busybox:latest, got {_shown(value)}"
    return None


def check_upstream(value: object) -> str | None:
    """A mirrored registry's name as image references spell it: docker.io, host:5000."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if "://" in value or "/" in value:
        return (f"give the registry name as image references use it (e.g. docker.io), not a URL "
                f"or path: {_shown(value)}; the URL goes in remote_url")
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if port and (not port.isdigit() or check_port(int(port)) is not None):
        return f"the port after ':' must be 1..65535, got {_shown(value)}"
    problem = check_san(host)
    if problem is not None or host.startswith("*"):
        return f"expected a registry name such as docker.io or HOST:PORT, got {_shown(value)}"
    if host != host.lower():
        return f"registry names are lower case: {_shown(value.lower())}"
    return None


def check_remote_url(value: object) -> str | None:
    """The URL a pull-through cache fetches from: https://HOST[:PORT] (http only by choice)."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    match = re.fullmatch(r"(https?)://([^/\s@]+)/?", value)
    if match is None:
        return (f"expected https://HOST or https://HOST:PORT (no path, no user), "
                f"got {_shown(value)}")
    return check_upstream(match.group(2))


def check_upstream_user(value: object) -> str | None:
    """A login name at an upstream registry (printable, no spaces)."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if not value or len(value) > 255 or _has_control(value) or " " in value:
        return f"expected a user name without spaces, got {_shown(value)}"
    return None


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def check_image_digest(value: object) -> str | None:
    """The pinned registry image: ``sha256:`` and 64 lowercase hex digits (a repository digest,
    or the image ID when the image has none)."""
    if (problem := _not_text(value)) is not None:
        return problem
    assert isinstance(value, str)
    if not _DIGEST.fullmatch(value):
        return (f"expected sha256: and 64 lowercase hex digits, got {_shown(value)} (delete "
                "the line: the next deploy pins the image the registry runs)")
    return None
