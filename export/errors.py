"""The export package's one exception type."""

from bridge.errors import ComposerError


class ExportError(ComposerError):
    """An export that must not produce a model (parity failed, no checkpoint, ...); the message says why."""
