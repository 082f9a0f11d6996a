"""Which screen class shows which wizard step (imported lazily so startup stays quick)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from textual.screen import Screen

# step name -> "module:Class"
SCREENS: dict[str, str] = {
    "welcome": "screens.welcome:WelcomeScreen",
    "certificate": "screens.cert_request:CertRequestScreen",
    "review": "screens.cert_review:CertReviewScreen",
    "registry": "screens.registry_host:RegistryHostScreen",
    "deploy": "screens.deploy:DeployScreen",
    "nodes": "screens.nodes:NodesScreen",
    "onboarding": "screens.onboarding:OnboardingScreen",
    "verify": "screens.verify:VerifyScreen",
    "status": "screens.status:StatusScreen",
}


def screen_factory(step: str) -> Callable[[], Screen[Any]]:
    module_name, class_name = SCREENS[step].split(":")
    screen_class: Callable[[], Screen[Any]] = getattr(
        importlib.import_module(module_name), class_name
    )
    return screen_class
