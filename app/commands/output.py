"""What the step-based and report-based commands print, shared by each command and by
``regwiz apply`` (which runs them in a row), so no subcommand imports another.

Everything goes through ``echo``: messages quote remote stderr and container logs, which are
data, never terminal control (see app.terminal_text)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from app.commands.common import interactive
from app.steps import Outcome, StepResult, format_result, summarize
from app.terminal_text import echo

if TYPE_CHECKING:
    from app import onboard
    from app.htpasswd import Credentials
    from app.verify import NodeVerifyResult, VerifyProgress, VerifyReport

# --- steps (deploy, uninstall) -------------------------------------------------------------


def print_progress(result: StepResult) -> None:
    if not result.outcome.is_final:
        return
    echo(format_result(result), flush=True)
    variable = HEADLESS_SECRET_HINTS.get(result.kind)
    if result.outcome is Outcome.FAILED and not interactive() and variable:
        echo(f"           headless: set {variable} (no prompt without a terminal)")


# The error kind of a failed step → the env var that supplies the secret when nobody can be asked.
HEADLESS_SECRET_HINTS = {
    "sudo-password-missing": "REGWIZ_SUDO_PASSWORD",
    "key-passphrase-needed": "REGWIZ_KEY_PASSPHRASE",
    "no-credentials": "REGWIZ_SSH_PASSWORD or an identity_file in the plan",
    "login-refused": "REGWIZ_SSH_PASSWORD or an identity_file in the plan",
}


def print_summary(name: str, results: list[StepResult]) -> None:
    counts = summarize(results)
    skipped = sum(1 for r in results if r.outcome is Outcome.SKIPPED)
    line = (f"{name}: {counts['changed']} changed, {counts['unchanged']} unchanged, "
            f"{counts['failed']} failed")
    echo(line + (f", {skipped} not run" if skipped else ""))


def print_dry_run(lines: Iterable[str]) -> None:
    echo("dry run: nothing is connected to or changed")
    for block in lines:
        echo(block)


def show_new_credentials(credentials: Credentials | None, kept: Path | None) -> None:
    """A password deploy generated, and where it was saved (``kept``), if anywhere.

    Shown only on a terminal: stdout that is a file or pipe (CI logs, ``| tee``) would keep
    the password wherever that output ends up."""
    if credentials is None:
        return
    if sys.stdout.isatty():
        # Shown exactly once, on purpose: this is the only place the new password appears.
        echo(f"registry user {credentials.username!r}, password: {credentials.password}")
    else:
        echo(f"registry user {credentials.username!r}: a password was generated; not shown "
             "because stdout is not a terminal")
    if kept:
        echo(f"  saved to {kept} (mode 0600)")
    elif sys.stdout.isatty():
        echo("  not saved anywhere: note it now, or deploy with --credentials-file next time")
    else:
        echo("  not saved anywhere: deploy with --credentials-file (or set "
             "REGWIZ_REGISTRY_PASSWORD) to keep the registry's password")


# --- verify ----------------------------------------------------------------------------------


def print_verify_progress(event: VerifyProgress, out: TextIO | None = None) -> None:
    """One line per finished stage or node as it happens."""
    from app.verify import CheckState

    if event.state in (CheckState.PENDING, CheckState.RUNNING):
        return
    echo(f"{event.state.value:>8}  [{event.target}] {event.message}", file=out or sys.stdout,
          flush=True)


def print_verify_report(report: VerifyReport, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    push = report.push_pull
    echo("\nverify summary", file=stream)
    echo(f"  registry  {push.state.value}: {push.message}", file=stream)
    if push.pushed_digest:
        echo(f"            digest {push.pushed_digest} (from the {push.source})", file=stream)
    if push.note:
        echo(f"            note: {push.note}", file=stream)
    if push.hint:
        echo(f"            hint: {push.hint}", file=stream)
    if push.cleanup:
        echo(f"            test tag: {push.cleanup}", file=stream)
    for node in report.nodes:
        print_verify_node(node, stream)
    passed = sum(1 for node in report.nodes if node.passed)
    echo(f"  nodes: {passed} passed, {len(report.nodes) - passed} not passed", file=stream)


def print_verify_node(node: NodeVerifyResult, stream: TextIO) -> None:
    runtimes = ", ".join(node.runtimes) or "no runtime"
    echo(f"  {node.host}  {node.state.value}  ({runtimes}, {node.seconds:.1f} s)", file=stream)
    for check in node.checks:
        mark = "ok  " if check.passed else "FAIL"
        digest = f" ({check.digest})" if check.digest else ""
        echo(f"    {mark} {check.kind}: {check.detail}{digest}", file=stream)
        if check.hint:
            echo(f"         hint: {check.hint}", file=stream)
    if not node.checks and node.message:
        echo(f"    {node.message}", file=stream)
        if node.hint:
            echo(f"    hint: {node.hint}", file=stream)


# --- onboard ---------------------------------------------------------------------------------


def quiet_states() -> tuple[str, ...]:
    """Onboarding states not worth a line (imported late: deploy need not load onboarding)."""
    from app import onboard

    return (onboard.PENDING,)


class EventPrinter:
    """Prints one line per node event; called from worker threads."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.lock = threading.Lock()

    def __call__(self, event: onboard.NodeProgress) -> None:
        if not self.enabled or event.state in quiet_states():
            return
        runtime = event.runtime or "-"
        line = f"{event.seconds:6.1f}s  {event.host:<20} {event.state:<10} {runtime:<12} "
        with self.lock:
            echo(line + event.message, flush=True)


def print_onboard_report(report: onboard.OnboardReport, saved: Path | None,
                         out: TextIO | None = None) -> None:
    stream = out or sys.stdout

    def write(text: str = "") -> None:
        echo(text, file=stream)

    if report.dry_run:
        for result in report.results:
            write()
            write(f"== {result.host} ({result.status}"
                  f"{', ' + ', '.join(result.runtimes) if result.runtimes else ''})")
            for line in result.dry_run_lines or [result.message]:
                write(line)
    if report.waves:
        from app.runtimes.restarts import wave_lines

        write()
        for line in wave_lines(report.waves):
            write(line)
    write()
    write(f"{'HOST':<22}{'RESULT':<11}{'RUNTIME':<22}{'FILES':>5}{'TIME':>8}  REASON")
    for r in report.results:
        runtime = ",".join(r.runtimes) or "-"
        write(f"{r.host:<22}{r.status:<11}{runtime:<22}{len(r.changed_files):>5}"
              f"{r.seconds:>7.1f}s  {r.reason}")
    for r in report.failed:
        write(f"\n{r.host}: {r.reason}: {r.message}")
        if r.hint:
            write(f"  hint: {r.hint}")
    noted = [r for r in report.results if r.notes and r not in report.failed]
    if noted:  # what a node decided on its own, or what its runtime cannot do (mirrors)
        write()
        for r in noted:
            for note in r.notes:
                write(f"{r.host}: note: {note}")
    counts = ", ".join(f"{n} {state}" for state, n in report.counts().items() if n)
    write(f"\n{len(report.results)} node(s) in {report.seconds:.1f}s: {counts}")
    write(f"registry {report.registry}, CA {report.ca_fingerprint[:23]}...")
    done = [r for r in report.results if r.credential]
    if done:
        what = "removed (account revoked)" if done[0].credential == "removed" else (
            f"{done[0].credential} installed")
        rest = len(report.results) - len(done)
        write(f"pull credential: {what} on {len(done)} node(s)"
              + (f"; {rest} not reached keep their old one until regwiz onboard reaches them"
                 if rest and not report.dry_run else ""))
    if saved is not None:
        write(f"results saved to {saved}")
