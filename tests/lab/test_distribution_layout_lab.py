"""A registry image laid out like registry:3 (issue 15, part 5): the config file at
``/etc/distribution/config.yml`` and the command naming it, as in the official 3.x image.

The lab has no Distribution 3 (no internet; Debian 12 ships 2.8), so this is the lab's 2.8
binary in 3.x's layout, with a file that does not parse at 2.x's config path: it proves that
regwiz reads the layout from the image and that ``regwiz gc`` gives the collector the file the
container started with — not that a real 3.x binary works.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.plan import load_plan
from tests.image_helpers import Pusher, basic_header
from tests.lab.lab import REGISTRY_CONFIG_YML, REGISTRY_IMAGE, Lab
from tests.lab.test_private_lab import Private, private_registry

pytestmark = pytest.mark.lab
V3_LAYOUT = "regwiz-lab/registry:v3-layout"
DOCKERFILE = f"""\
FROM {REGISTRY_IMAGE}
COPY config.yml /etc/distribution/config.yml
COPY broken.yml /etc/docker/registry/config.yml
CMD ["serve", "/etc/distribution/config.yml"]
"""


def build_context() -> bytes:
    files = {"Dockerfile": DOCKERFILE, "config.yml": REGISTRY_CONFIG_YML,
             "broken.yml": "storage: [not, a, storage, map\n"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def deployed(lab: Lab, tmp_path: Path) -> Iterator[Private]:
    host = lab["registry"]
    host.exec(["docker", "build", "-q", "-t", V3_LAYOUT, "-"], input=build_context(),
              timeout=120)
    try:
        with private_registry(lab, tmp_path, "rwp-v3-layout") as made:
            made.write(image=V3_LAYOUT)
            assert made.cli("deploy") == 0
            yield made
    finally:
        host.exec(["docker", "rmi", "-f", V3_LAYOUT], check=False)


def test_gc_gives_the_collector_the_config_file_of_a_3x_layout(
        deployed: Private, capsys: pytest.CaptureFixture[str]) -> None:
    push = Pusher(f"https://{deployed.address}", deployed.certs / "ca.crt",
                  basic_header("operator", deployed.password("operator")))
    kept = push.image("team/app", "1.0", [os.urandom(5000)], "2026-01-01T00:00:00Z").digest
    assert load_plan(deployed.plan).registry.image_digest is not None  # pinned as any image
    capsys.readouterr()
    # The collector reads the file it is given: 2.x's path holds one that does not parse.
    assert deployed.cli("gc") == 0, capsys.readouterr().out
    assert push.head("team/app", "1.0") == kept
