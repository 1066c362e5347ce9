"""The training package's one exception type."""

from bridge.errors import ComposerError


class TrainingError(ComposerError):
    """A dataset, config or run problem the user can fix; the message says which and how."""
