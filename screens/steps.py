"""The wizard's steps, in order: one entry per step, the only list of them.

Each entry names the step (``goto`` and the palette use it), its title (headers, help, palette),
its short label (the step indicator, which must fit 80 columns), the screen that shows it and the
help text ``?`` shows on it. The screen is named as ``"module:Class"`` and imported when the step
is first shown, so starting the wizard does not import every step's screen (and the domain modules
behind them); nothing that a step screen imports imports this module back.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from textual.screen import Screen


@dataclass(frozen=True)
class Step:
    name: str  # internal id, used by goto() and the command palette
    title: str  # shown in headers, the help screen and the palette
    short: str  # shown in the step indicator, which must fit 80 columns
    screen: str  # "module:Class" of the screen (a WizardScreen) that shows this step
    help: str  # markdown shown by ``?`` / F1 on this step
    # Which plans show it: "any", "managed" (a registry regwiz deploys) or "external" (one it
    # did not deploy: Harbor, Quay, ...; no certificates, registry host, mirrors or deploy).
    registry: str = "any"

    def shown_for(self, managed: bool) -> bool:
        return self.registry == "any" or self.registry == ("managed" if managed else "external")

    def screen_class(self) -> type[Screen[Any]]:
        module_name, class_name = self.screen.split(":")
        screen_class: type[Screen[Any]] = getattr(importlib.import_module(module_name),
                                                  class_name)
        return screen_class


STEPS: tuple[Step, ...] = (
    Step(
        "welcome", "Welcome", "Start", "screens.welcome:WelcomeScreen",
        "Start a **new plan**, open an existing plan file, or pick a recent one. "
        "With a plan open you can jump straight to **node onboarding** or **status**. "
        "**I already have a registry** makes every node trust and pull from a Harbor, Quay, "
        "Nexus or other registry regwiz did not deploy.",
    ),
    Step(
        "external", "Your registry", "Registry", "screens.external_registry:ExternalRegistryScreen",
        "The registry you already run: its address and port, the CA that signs its certificate "
        "(**Fetch CA** shows the chain the server presents; its root is saved only when you "
        "trust its fingerprint), the login nodes pull with (a Docker config.json, e.g. of a "
        "Harbor robot account) and the image verify pulls on every node.",
        registry="external",
    ),
    Step(
        "certificate", "Certificate request", "Cert", "screens.cert_request:CertRequestScreen",
        "The subject of the registry's certificate and its **SANs**: every name and "
        "IP that image references will use. The common name and the registry address are added "
        "automatically. Errors show under each field; Next stays blocked until all are fixed.",
        registry="managed",
    ),
    Step(
        "review", "Certificate review", "Review", "screens.cert_review:CertReviewScreen",
        "What will be (or was) generated: subject, SANs, validity and fingerprints. "
        "**Generate** creates the CA (once) and the server certificate, **Renew** reissues the "
        "server certificate, **New CA** replaces the CA (every node must then be onboarded "
        "again). You can also export a CSR for your own CA and import the certificate it signs.",
        registry="managed",
    ),
    Step(
        "registry", "Registry host", "Host", "screens.registry_host:RegistryHostScreen",
        "Where the registry container runs: an SSH target or `local`. Passwords typed "
        "here stay in memory only. **Test connection** checks SSH, the host key, sudo and docker.",
        registry="managed",
    ),
    Step(
        "mirrors", "Mirrors", "Mirrors", "screens.mirrors:MirrorsScreen",
        "Pull-through caches of other registries (docker.io, registry.k8s.io, quay.io, ghcr.io "
        "or any other), run on the registry host next to the registry, each on its own port. "
        "The first pull of an image fetches it from the upstream; later pulls come from the "
        "cache. Onboarding points every node at them. **Add** (a) starts from a preset, Enter "
        "or **e** edits, Delete or **x** removes. A cache of a public upstream is served "
        "anonymously, pull-only; with a username it is private, and the upstream's password "
        "comes from `REGWIZ_MIRROR_<NAME>_PASSWORD`, never the plan. Mirrors are optional.",
        registry="managed",
    ),
    Step(
        "deploy", "Deploy registry", "Deploy", "screens.deploy:DeployScreen",
        "Runs the deploy steps on the registry host with live state. Turn on **dry run** "
        "to see what would happen without changing anything. After a failure the container's "
        "log tail is shown; **Retry** runs the steps again (they are idempotent).",
        registry="managed",
    ),
    Step(
        "nodes", "Cluster nodes", "Nodes", "screens.nodes:NodesScreen",
        "The cluster nodes that must trust the registry's CA. Add, edit (Enter) and remove "
        "(Delete) rows, or import them from a file (one `user@host:port` per line) or from "
        "kubectl. **Defaults** (d) sets the user, port, runtime and sudo every node uses unless "
        "its row says otherwise (dimmed values in the table are inherited). **Space** marks rows "
        "(ctrl+a all or none); Edit then changes what you fill in on every marked node.",
    ),
    Step(
        "onboarding", "Node onboarding", "Onboard", "screens.onboarding:OnboardingScreen",
        "Installs the CA on every node for the runtime it really uses, in parallel. "
        "Each row updates live; **Retry failed** runs only the nodes that failed; Enter on a row "
        "opens that node's log. Unknown host keys of all nodes are shown on one screen before "
        "the run starts.",
    ),
    Step(
        "verify", "Verify push and pull", "Verify", "screens.verify:VerifyScreen",
        "Pushes a small test image to the registry, pulls it back, then pulls it on "
        "every node with its runtime.",
    ),
    Step(
        "status", "Status", "Status", "screens.status:StatusScreen",
        "Registry up/down and latency, certificate days left, catalog, container state, "
        "disk use and each node's trust. Refreshes on an interval and on **r**.",
    ),
)
STEP_NAMES: tuple[str, ...] = tuple(step.name for step in STEPS)


def steps_for(managed: bool) -> tuple[Step, ...]:
    """The steps a plan goes through: a registry regwiz did not deploy skips certificates,
    registry host, mirrors and deploy."""
    return tuple(step for step in STEPS if step.shown_for(managed))


def step_by_name(name: str) -> Step:
    """The step called ``name``; KeyError for a name that is no step (a programming error)."""
    for step in STEPS:
        if step.name == name:
            return step
    raise KeyError(name)
