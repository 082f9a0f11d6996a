"""The Textual wizard: the App (``screens.app``), its steps (``screens.steps``), the typed worker
messages (``screens.messages``), the session (``screens.session``), the command palette
(``screens.palette``), and one screen or modal per module; widgets in ``screens.widgets``."""
