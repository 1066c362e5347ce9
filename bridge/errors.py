"""Exceptions whose messages a musician can act on: what is wrong, where, and what to do.

Each package has one class (``BridgeError`` here, ``TrainingError``, ``ExportError``); they
share :class:`ComposerError` so the command line reports any of them the same way.
"""


class ComposerError(Exception):
    """Base of every package's error class; the CLI prints its message and exits 2."""


class BridgeError(ComposerError):
    """Something in the runtime the user can fix: a bad file, port, model or setting."""
