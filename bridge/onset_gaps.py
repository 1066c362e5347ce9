"""How the training music moved from one onset to the next, by where in the beat it stood: the prior
the rhythm grid weighs onset gaps by.

The network does not keep the beat: its clean-sample gaps spread evenly from a sixteenth to a
dotted eighth, so the plain grid rounds them to sixteenths and dotted eighths at random, and the
default model's onsets fell on every sixteenth of the beat alike (25% each; the corpus puts 46%
on the beat and 35% on its half). With this prior each gap, along the phrase, is the grid gap
with the best ``log P(gap | phase) - (gap - estimate)^2 / (2 tau^2)``, ``tau`` half a grid step:
a sixteenth off the beat is followed by the sixteenth that returns to it, as the corpus does.
A gap the network puts within half a step of 0 stays a chord, as on the plain grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bridge.errors import BridgeError
from bridge.note_lengths import CELLS_PER_BEAT, MIN_SHARE

MAX_GAP_CELL = 2 * CELLS_PER_BEAT  # the last cell holds every gap of 2 beats or more
ONSET_CHOICES = ("corpus", "grid")  # corpus: gaps weighed by these shares; grid: the nearest grid gap


@dataclass(frozen=True)
class OnsetGaps:
    """Share of the training music's positive onset gaps per (phase in the beat, gap) in 1/12-beat cells,
    ``(CELLS_PER_BEAT, MAX_GAP_CELL + 1)``; phases from each segment's first onset."""

    shares: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        s = np.asarray(self.shares, dtype=np.float64)
        if s.shape != (CELLS_PER_BEAT, MAX_GAP_CELL + 1) or np.any(s < 0) or not 0.99 < s.sum() < 1.01:
            raise BridgeError(
                f"onset-gap shares must be {CELLS_PER_BEAT} rows of {MAX_GAP_CELL + 1} non-negative numbers "
                "summing to 1; re-export the model"
            )

    @classmethod
    def fit(cls, features: np.ndarray) -> OnsetGaps:
        """From unscaled training segments ``(n, L, 3)`` (gaps in beats)."""
        gaps = np.asarray(features, dtype=np.float64)[..., 2]
        onsets = np.cumsum(gaps, axis=-1) - gaps[..., :1]
        phases = np.rint(onsets[..., :-1] * CELLS_PER_BEAT).astype(np.int64) % CELLS_PER_BEAT
        cells = np.minimum(np.rint(gaps[..., 1:] * CELLS_PER_BEAT), MAX_GAP_CELL).astype(np.int64)
        moved = cells > 0
        if not moved.any():
            raise BridgeError("cannot count onset gaps of a dataset whose notes all start together")
        counts = np.zeros((CELLS_PER_BEAT, MAX_GAP_CELL + 1))
        np.add.at(counts, (phases[moved], cells[moved]), 1.0)
        shares = counts / counts.sum()
        return cls(tuple(tuple(round(float(v), 6) for v in row) for row in shares))  # as the card's JSON keeps them

    def weigh(self, estimates: np.ndarray, grid: float, longest: float, start: np.ndarray | float = 0.0) -> np.ndarray:
        """The network's gaps ``(..., L)`` in beats -> gaps on the grid, chosen note by note along each phrase;
        ``start`` (beats, scalar or ``(...)``): where in the beat each phrase's first note falls."""
        gaps = np.asarray(estimates, dtype=np.float64)
        steps = np.arange(1, max(int(np.ceil(longest / grid)), 1) + 1)
        best = self._best_steps(gaps, grid, steps)  # (..., L, phase): the step to take from each phase
        chord = gaps < grid / 2
        flat_best, flat_chord = best.reshape(-1, *best.shape[-2:]), chord.reshape(-1, gaps.shape[-1])
        taken = np.zeros(flat_chord.shape, dtype=np.int64)
        first = np.broadcast_to(np.asarray(start, dtype=np.float64), gaps.shape[:-1]).reshape(-1)
        phase = np.rint(first * CELLS_PER_BEAT).astype(np.int64) % CELLS_PER_BEAT
        rows = np.arange(len(taken))
        step_cells = round(grid * CELLS_PER_BEAT)  # grids off the 1/12-beat cells: their nearest
        for k in range(1, taken.shape[1]):  # the first note's gap is not played: the phrase starts there
            taken[:, k] = np.where(flat_chord[:, k], 0, flat_best[rows, k, phase])
            phase = (phase + taken[:, k] * step_cells) % CELLS_PER_BEAT
        return taken.reshape(gaps.shape) * grid

    @cached_property
    def _log_conditional(self) -> np.ndarray:
        """``(CELLS_PER_BEAT, MAX_GAP_CELL + 1)``: log P(gap | phase), floored at MIN_SHARE; made once."""
        shares = np.asarray(self.shares)
        conditional = shares / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12)
        return np.log(np.maximum(conditional, MIN_SHARE))

    def _best_steps(self, gaps: np.ndarray, grid: float, steps: np.ndarray) -> np.ndarray:
        """``(..., L, CELLS_PER_BEAT)``: for every phase, the number of grid steps that scores best."""
        cells = np.minimum(np.rint(steps * grid * CELLS_PER_BEAT).astype(np.int64), MAX_GAP_CELL)
        log_prior = self._log_conditional[:, cells]  # (phase, step)
        tau = grid / 2.0
        closeness = -((gaps[..., None] - steps * grid) ** 2) / (2.0 * tau**2)  # (..., L, step)
        return steps[np.argmax(log_prior + closeness[..., None, :], axis=-1)]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the model card."""
        return {"cells_per_beat": CELLS_PER_BEAT, "shares": [list(row) for row in self.shares]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnsetGaps:
        """Inverse of :meth:`to_dict`; another cell size is refused by name."""
        if set(data) != {"cells_per_beat", "shares"} or data["cells_per_beat"] != CELLS_PER_BEAT:
            raise BridgeError(f"onset_gaps must be {{'cells_per_beat': {CELLS_PER_BEAT}, 'shares': [[...], ...]}}")
        return cls(tuple(tuple(float(v) for v in row) for row in data["shares"]))
