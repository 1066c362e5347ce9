"""The evaluation package's one exception type."""

from bridge.errors import ComposerError


class EvaluationError(ComposerError):
    """Sets that cannot be compared (too few pieces, an unreadable source); the message says what to do."""
