"""regwiz domain layer: certificates, plan file, transports, deploy, onboarding, verification.

Nothing in this package imports textual except ``app.tui`` (the Textual App), so the
domain can be used as a library and from the headless CLI.
"""

__version__ = "0.1.0"
