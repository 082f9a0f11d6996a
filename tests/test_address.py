"""RegistryAddress: one spelling of the registry's address for references, URLs and certs.d."""

from __future__ import annotations

import pytest

from app.address import RegistryAddress
from app.plan import new_plan


@pytest.mark.parametrize(
    ("host", "port", "reference", "url"),
    [
        ("registry.internal", 8443, "registry.internal:8443", "https://registry.internal:8443"),
        ("registry.internal", 443, "registry.internal", "https://registry.internal"),
        ("198.18.0.2", 5000, "198.18.0.2:5000", "https://198.18.0.2:5000"),
        ("fd00::5", 8443, "[fd00::5]:8443", "https://[fd00::5]:8443"),
        ("fd00::5", 443, "[fd00::5]", "https://[fd00::5]"),
    ],
)
def test_address_spellings(host: str, port: int, reference: str, url: str) -> None:
    address = RegistryAddress(host, port)
    assert address.reference == reference == address.certs_d_name == str(address)
    assert address.url == url
    assert address.api_url == url + "/v2/"


def test_plan_builds_the_address_once() -> None:
    plan = new_plan()
    plan.registry.address, plan.registry.port = "fd00::7", 5000
    assert plan.registry_address == RegistryAddress("fd00::7", 5000)
    assert plan.registry_reference == "[fd00::7]:5000"
