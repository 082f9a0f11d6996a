"""Errors that carry a message for the user and, where possible, a hint on how to fix it."""

from __future__ import annotations


class RegwizError(Exception):
    """Base for every error regwiz reports to a user.

    ``message`` says what is wrong; ``hint`` says what to try. Neither may contain secrets.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(RegwizError):
    """Bad command-line usage or an invalid plan: exit code 2."""

    exit_code = 2


class DeployError(RegwizError):
    """A deploy or uninstall step on the registry host cannot go on (kept here so the modules
    deploy is made of share it without importing each other)."""


# Specific error kinds and the broad kind they refine. A decision uses the specific kind (e.g.
# prompt for the passphrase); a summary that groups failures uses ``kind_category``.
KIND_CATEGORIES: dict[str, str] = {
    "sudo-password-missing": "sudo-password",
    "sudo-password-wrong": "sudo-password",
    "key-passphrase-needed": "auth",
    "identity-file": "auth",
    "no-credentials": "auth",
    "login-refused": "auth",
    "host-key-rejected": "host-key-unknown",  # the user said no to an unknown key
}


# The kinds that mean "a secret is missing or wrong": what to ask for, so a caller that can ask
# (the wizard) asks and tries again instead of only reporting the failure.
SECRET_KINDS: dict[str, str] = {
    "sudo-password-missing": "sudo password",
    "sudo-password-wrong": "sudo password",
    "no-credentials": "SSH password",
    "key-passphrase-needed": "SSH key passphrase",
}


def kind_category(kind: str) -> str:
    """The broad kind ("auth", "sudo-password", ...) of a specific one; others are their own."""
    return KIND_CATEGORIES.get(kind, kind)
