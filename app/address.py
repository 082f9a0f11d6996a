"""The registry's address, worked out once from the plan and spelled the same way everywhere."""

from __future__ import annotations

from dataclasses import dataclass

HTTPS_PORT = 443


def url_host(host: str) -> str:
    """``host`` as a URL spells it: an IPv6 literal in brackets, anything else as it is."""
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class RegistryAddress:
    """Where the registry answers: ``host`` is a DNS name or an IP (IPv6 without brackets)."""

    host: str
    port: int

    @property
    def url_host(self) -> str:
        """The host as it appears in a URL or an image reference (IPv6 in brackets)."""
        return url_host(self.host)

    @property
    def reference(self) -> str:
        """HOST:PORT as image references use it (HOST alone for 443, as Docker normalises it)."""
        return self.url_host if self.port == HTTPS_PORT else f"{self.url_host}:{self.port}"

    @property
    def certs_d_name(self) -> str:
        """The folder name Docker, containerd, CRI-O and k3s/RKE2 look up under certs.d."""
        return self.reference

    @property
    def url(self) -> str:
        """The registry's base URL, without a trailing slash."""
        return f"https://{self.reference}"

    @property
    def api_url(self) -> str:
        """The Distribution API root, ``https://HOST:PORT/v2/``."""
        return f"{self.url}/v2/"

    def __str__(self) -> str:
        return self.reference
