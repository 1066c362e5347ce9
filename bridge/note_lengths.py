"""How often the training music used each note length: the prior the rhythm grid weighs durations by.

The network does not resolve note lengths: its clean-sample estimate of a note that could be an
eighth or a quarter is their blur, which the plain grid rounds to a dotted eighth (a third of
the default model's notes, 0.5% of the corpus's). With a prior the grid picks, among its
lengths, the one with the best ``log share - distance^2 / (2 TAU^2)``, distances in octaves of
(beats + 1/16): near one length it keeps that length; between two it takes the common one.
Onset gaps keep the plain grid: a chord's gap of 0 sits far from every positive gap in octaves,
and the plain grid already matches the corpus's onsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.codec import time_to_value
from bridge.errors import BridgeError

CELLS_PER_BEAT = 12  # the 1/4- and 1/3-beat grids together
MAX_CELL = 8 * CELLS_PER_BEAT  # the last cell holds every length of 8 beats or more
TAU_OCTAVES = 0.2  # how far (in octaves) the model's estimate may sit from a length it means
NOTE_LENGTH_CHOICES = ("corpus", "grid")  # corpus: weighed by these shares; grid: the nearest grid length
MIN_SHARE = 1e-4  # lengths the corpus never used stay possible where the model lands right on them


@dataclass(frozen=True)
class NoteLengths:
    """Share of the training notes per 1/12-beat cell of duration, ``(MAX_CELL + 1,)``."""

    shares: tuple[float, ...]

    def __post_init__(self) -> None:
        s = np.asarray(self.shares, dtype=np.float64)
        if len(s) != MAX_CELL + 1 or np.any(s < 0) or not 0.99 < s.sum() < 1.01:
            raise BridgeError(
                f"note-length shares must be {MAX_CELL + 1} non-negative numbers summing to 1; re-export the model"
            )

    @classmethod
    def fit(cls, features: np.ndarray) -> NoteLengths:
        """From unscaled training features ``(..., 3)`` (durations in beats)."""
        durations = np.asarray(features, dtype=np.float64).reshape(-1, 3)[:, 1]
        if not len(durations):
            raise BridgeError("cannot count note lengths of an empty dataset")
        cells = np.minimum(np.rint(durations * CELLS_PER_BEAT), MAX_CELL).astype(np.int64)
        counts = np.bincount(cells, minlength=MAX_CELL + 1)
        return cls(tuple(round(float(c), 6) for c in counts / counts.sum()))  # as the card's JSON keeps them

    def lattice(self, grid: float, longest: float) -> tuple[np.ndarray, np.ndarray]:
        """The grid's lengths up to ``longest`` beats ``(k,)`` and their log prior ``(k,)``: each cell's
        share goes to the nearest grid length."""
        lengths = np.arange(1, max(int(np.ceil(longest / grid)), 1) + 1) * grid
        cells = np.arange(MAX_CELL + 1) / CELLS_PER_BEAT
        owner = np.abs(cells[:, None] - lengths[None, :]).argmin(axis=1)
        mass = np.bincount(owner, weights=np.asarray(self.shares), minlength=len(lengths))
        return lengths, np.log(np.maximum(mass, MIN_SHARE))

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the model card."""
        return {"cells_per_beat": CELLS_PER_BEAT, "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoteLengths:
        """Inverse of :meth:`to_dict`; another cell size is refused by name."""
        if set(data) != {"cells_per_beat", "shares"} or data["cells_per_beat"] != CELLS_PER_BEAT:
            raise BridgeError(f"note_lengths must be {{'cells_per_beat': {CELLS_PER_BEAT}, 'shares': [...]}}")
        return cls(tuple(float(s) for s in data["shares"]))


def weigh(durations: np.ndarray, lengths: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    """Each duration (beats, any shape) -> the grid length with the best prior-weighted closeness."""
    octaves = time_to_value(durations, "log")[..., None] - time_to_value(lengths, "log")
    return lengths[np.argmax(log_prior - octaves**2 / (2.0 * TAU_OCTAVES**2), axis=-1)]
