"""sudo by its prompt: the password is sent only when sudo asks for it.

Writing the password to stdin up front is unsafe: when a sudoers rule needs no password for
the command (``NOPASSWD: /usr/bin/docker``) sudo never reads it, and the password line becomes
the command's own input (for ``docker system dial-stdio``: the first bytes of dockerd's API
stream). So every password sudo runs as::

    env LC_ALL=C sudo -k -S -p <prompt marker> -- sh -c '<print ready marker>; exec "$@"' ...

with two random markers per call. The password goes to stdin only after the prompt marker
appears on stderr (and only once: a second prompt means it was wrong, and stdin is closed so
sudo gives up); the command's own input only after the ready marker shows the command itself
runs. ``LC_ALL=C`` keeps sudo's messages in English whatever the host's locale, so refusals
are recognised by ``sudo_problem`` (gettext ignores LANGUAGE under the C locale).
"""

from __future__ import annotations

import secrets

# Runs the command after telling the caller (on stderr) that sudo let it start.
_READY_SCRIPT = 'printf "%s\\n" "$0" >&2; exec "$@"'
C_LOCALE = ["env", "LC_ALL=C"]
NOPASSWD_PREFIX = [*C_LOCALE, "sudo", "-n", "--"]


class SudoGate:
    """The handshake of one password-sudo command: what to write to stdin, and when."""

    def __init__(self, password: str | None) -> None:
        token = secrets.token_hex(16)
        # sudo expands %-escapes in -p: the markers hold none
        self.prompt = f"[regwiz-sudo-{token}]"
        self.ready = f"[regwiz-ready-{token}]"
        self._password = password
        self._seen = b""
        self._answered = 0
        self.started = False  # the command runs: its input may flow
        self.gave_up = False  # sudo asked again (wrong password): close its stdin

    def argv(self, command: list[str]) -> list[str]:
        return [*C_LOCALE, "sudo", "-k", "-S", "-p", self.prompt, "--",
                "sh", "-c", _READY_SCRIPT, self.ready, *command]

    def feed(self, stderr: bytes) -> bytes:
        """Take stderr as it arrives; return what to write to stdin now (the password line
        right after sudo's first prompt, else nothing)."""
        if self.started or self.gave_up or not stderr:
            return b""
        self._seen += stderr
        if self.ready.encode() in self._seen:
            self.started = True
            return b""
        asked = self._seen.count(self.prompt.encode())
        if asked <= self._answered:
            return b""
        self._answered = asked
        if asked == 1 and self._password is not None:
            return self._password.encode() + b"\n"
        self.gave_up = True
        return b""

    @property
    def done(self) -> bool:
        """Nothing more to wait for: the command runs, or sudo was refused an answer."""
        return self.started or self.gave_up

    def clean(self, stderr: str) -> str:
        """stderr without the markers (what the user sees and errors quote)."""
        return stderr.replace(self.ready + "\n", "").replace(self.prompt, "")
