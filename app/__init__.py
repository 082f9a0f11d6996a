"""regwiz domain layer: certificates, plan file, transports, deploy, onboarding, verification.

Nothing in this package imports textual (the wizard lives in ``screens/``; ``app.cli`` imports it
only when the wizard is asked for), so the domain can be used as a library and from the headless
CLI.
"""

__version__ = "0.1.0"
