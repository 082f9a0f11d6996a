"""Textual validators wrapping app.validate: the TUI, CLI and plan loader share every rule."""

from __future__ import annotations

from collections.abc import Callable

from textual.validation import ValidationResult, Validator

from app import validate
from app.paths import expand_user, unknown_home

Check = Callable[[str], "str | None"]


def local_file_problem(value: str, *, must_exist: bool) -> str | None:
    """A path typed for this machine: no control characters, a known ~user, not a folder."""
    text = value.strip()
    if not text:
        return "type the path of a file"
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return "the path must not contain control characters"
    unknown = unknown_home(text)
    if unknown:
        return f"{unknown} is not a user on this machine"
    path = expand_user(text)
    if path.is_dir():
        return f"{path} is a folder: name a file inside it"
    if must_exist and not path.is_file():
        return f"no file at {path}"
    return None


class Checked(Validator):
    """Runs one app.validate check; ``optional`` accepts an empty value."""

    def __init__(self, check: Check, *, optional: bool = False) -> None:
        super().__init__()
        self.check = check
        self.optional = optional

    def validate(self, value: str) -> ValidationResult:
        if self.optional and not value.strip():
            return self.success()
        problem = self.check(value)
        return self.failure(problem) if problem else self.success()


def _as_int(check: Callable[[object], str | None]) -> Check:
    """Integers arrive as text from an Input: convert before checking, report non-numbers."""

    def checked(value: str) -> str | None:
        text = value.strip()
        if not text.isdigit():
            return f"expected a whole number, got {text[:20]!r}" if text else "required"
        return check(int(text))

    return checked


def _required(check: Callable[[object], str | None]) -> Check:
    def checked(value: str) -> str | None:
        return "required" if not value.strip() else check(value)

    return checked


def country() -> Checked:
    return Checked(lambda value: validate.check_country(value.upper()))


def common_name() -> Checked:
    return Checked(_required(validate.check_common_name))


def text_field(name: str, *, optional: bool = True) -> Checked:
    return Checked(lambda value: validate.check_text_field(name, value), optional=optional)


def email(*, optional: bool = True) -> Checked:
    return Checked(validate.check_email, optional=optional)


def san() -> Checked:
    return Checked(_required(validate.check_san))


def host() -> Checked:
    return Checked(_required(validate.check_host))


def user() -> Checked:
    return Checked(_required(validate.check_user))


def port(*, optional: bool = False) -> Checked:
    return Checked(_as_int(validate.check_port), optional=optional)


def days() -> Checked:
    return Checked(_as_int(validate.check_days))


def data_dir() -> Checked:
    return Checked(_required(validate.check_data_dir))


def certs_dir() -> Checked:
    return Checked(_required(validate.check_certs_dir))


def local_path(*, optional: bool = True) -> Checked:
    return Checked(validate.check_local_path, optional=optional)


def key_file() -> Checked:
    """An SSH identity file on this machine (optional; when given it must exist)."""
    return Checked(lambda value: local_file_problem(value, must_exist=True), optional=True)


def image() -> Checked:
    return Checked(_required(validate.check_image))


def container_name() -> Checked:
    return Checked(_required(validate.check_container_name))


def upstream() -> Checked:
    """A mirrored registry's name: docker.io, HOST:PORT."""
    return Checked(_required(validate.check_upstream))


def remote_url() -> Checked:
    """Where a mirror fetches from (optional: the well-known upstreams have a default)."""
    return Checked(validate.check_remote_url, optional=True)


def upstream_user() -> Checked:
    return Checked(validate.check_upstream_user, optional=True)


def repository_reference() -> Checked:
    """An image in the plan's own registry, without the registry (optional)."""
    return Checked(validate.check_repository_reference, optional=True)
