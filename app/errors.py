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
