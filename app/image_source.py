"""Bring the registry image onto the registry host's Docker.

Tried in order until the image is there: ``docker load`` of the operator's ``--image-tar``, a
pull on the host, then a copy from this machine's Docker (``docker save``/``load`` streamed over
the link) for air-gapped hosts. Each source that cannot help says why; all reasons together make
the error when none could.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import DeployError
from app.steps import Outcome

if TYPE_CHECKING:
    import docker

LocalDocker = Callable[[], "docker.DockerClient"]


def local_docker_client() -> docker.DockerClient:
    """This machine's Docker (DOCKER_HOST or the default socket), the source for air-gapped
    copies. Raises when there is none; deploy then reports that as one reason among others."""
    import docker

    return docker.from_env(timeout=120)


def describe_sources(image_tar: Path | None) -> list[str]:
    """The dry-run line: where the image would come from."""
    source = f"docker load from {image_tar}" if image_tar else "docker pull on the host"
    return [f"if missing: {source}; else copy from this machine's Docker (docker save/load)"]


class ImageSource:
    """Makes ``image`` present on ``target`` (a Docker client on the registry host)."""

    def __init__(self, target: Any, where: str, *, image_tar: Path | None = None,
                 allow_pull: bool = True, local_docker: LocalDocker | None = None) -> None:
        self.target = target
        self.where = where
        self.image_tar = image_tar
        self.allow_pull = allow_pull
        self.local_docker = local_docker
        self._wanted: Callable[[], bool] = lambda: False
        self._local_names: list[str] = []

    def ensure(self, image: str, *, present: Callable[[], bool] | None = None,
               local_names: list[str] | None = None, named: str | None = None,
               hint: str | None = None) -> Outcome:
        """``present`` says whether the wanted image is there (default: ``image`` is): a pinned
        image counts only by its digest. ``local_names``: what to look for in this machine's
        Docker (default: ``image``). ``named`` and ``hint`` word the error when nothing
        helped."""
        self._wanted = present or (lambda: self._present(image))
        self._local_names = local_names or [image]
        if self._wanted():
            return Outcome.UNCHANGED
        reasons: list[str] = []
        for source in (self._load_from_tar, self._pull_on_host, self._copy_from_local):
            reason = source(image)
            if reason is None:
                return Outcome.CHANGED
            reasons.append(reason)
        raise DeployError(
            f"{named or f'image {image}'} is not on {self.where} and could not be brought "
            "there: " + "; ".join(r for r in reasons if r),
            hint or f"on a machine that has it run `docker save {image} -o registry.tar`, then "
            "deploy with --image-tar registry.tar",
        )

    # Each source returns None when the image is now there, "" when it does not apply, else
    # why it could not help.

    def _load_from_tar(self, image: str) -> str | None:
        tar = self.image_tar
        if tar is None:
            return ""
        try:
            with open(tar, "rb") as stream:
                loaded = self.target.images.load(stream)
        except OSError as error:
            return f"cannot read {tar}: {error.strerror}"
        except Exception as error:  # docker APIError and tunnel errors alike
            return f"docker load of {tar} failed: {short_error(error)}"
        names = sorted({tag for item in loaded for tag in (item.tags or [])}) or ["no tag"]
        return self._present_after(image, f"{tar} holds {', '.join(names)}, not {image}")

    def _pull_on_host(self, image: str) -> str | None:
        if not self.allow_pull:
            return ""
        try:
            self.target.images.pull(image)
        except Exception as error:  # no route, no DNS, auth: all mean "pull not possible"
            return f"pull failed ({short_error(error)})"
        return self._present_after(image, "pull finished but the image is missing")

    def _copy_from_local(self, image: str) -> str | None:
        if self.local_docker is None:
            return ""
        try:
            local = self.local_docker()
        except Exception as error:  # no local Docker is a normal situation
            return f"no Docker on this machine ({short_error(error)})"
        try:
            name = self._local_name(local)  # ImageNotFound → "not on this machine either"
            # Export by the plan's reference (not tags[0]), so the archive carries that name.
            saved = local.api.get_image(name)
            self.target.images.load(saved)  # a generator: streamed, chunked
        except Exception as error:  # ImageNotFound locally, transfer errors
            return f"copy from this machine's Docker failed ({short_error(error)})"
        finally:
            local.close()
        return self._present_after(image, "copied, but the image is still missing")

    def _local_name(self, local: Any) -> str:
        """The first of the wanted names this machine's Docker has (else its ImageNotFound)."""
        import docker.errors

        for name in self._local_names[:-1]:
            try:
                local.images.get(name)
                return name
            except (docker.errors.ImageNotFound, docker.errors.APIError):
                continue
        local.images.get(self._local_names[-1])
        return self._local_names[-1]

    def _present(self, image: str) -> bool:
        import docker.errors

        try:
            self.target.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def _present_after(self, image: str, problem: str) -> str | None:
        return None if self._wanted() else problem


def short_error(error: BaseException | None) -> str:
    """The first line of an error, for a one-line reason (Docker SDK errors carry long text)."""
    if error is None:
        return "unknown error"
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    text = str(text).strip().splitlines()[0] if str(text).strip() else type(error).__name__
    return text[:300]
