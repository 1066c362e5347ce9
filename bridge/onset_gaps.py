"""How the training music moved from one onset to the next, by where in the beat it stood: the prior
the rhythm grid weighs onset gaps by.

The network does not keep the beat: its clean-sample gaps spread evenly from a sixteenth to a
dotted eighth, so the plain grid rounds them to sixteenths and dotted eighths at random, and the
default model's onsets fell on every sixteenth of the beat alike (25% each; the corpus puts 46%
on the beat and 35% on its half). With this prior each gap, along the phrase, is the grid gap
with the best ``log P(gap | phase) - (gap - estimate)^2 / (2 tau^2)``, ``tau`` half a grid step:
a sixteenth off the beat is followed by the sixteenth that returns to it, as the corpus does.
A gap the network puts within half a step of 0 stays a chord, as on the plain grid.

That kept the beat, but not the piece's rhythm: every phrase mixed sixteenths and eighths alike, where
a real piece keeps to one (its bars repeat: groove overlap 0.34 against a floor of 0.79). With the echo
(the default) the gaps the phrase has taken so far from each phase count beside the corpus's shares,
so a phrase that set out in sixteenths keeps to them; a prompt's gaps count too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bridge.errors import BridgeError
from bridge.note_lengths import CELLS_PER_BEAT, MIN_SHARE

MAX_GAP_CELL = 2 * CELLS_PER_BEAT  # the last cell holds every gap of 2 beats or more
# echo: weighed by these shares and the phrase's own gaps; corpus: by these shares; grid: the nearest grid gap
ONSET_CHOICES = ("echo", "corpus", "grid")
# How many gaps the corpus's shares weigh as, against the phrase's own: at 4 the phrases' bars repeat as the
# corpus's do (groove overlap 0.75, against 0.34 without the echo) with as few sixteenths as it (a median piece
# has 4%, the corpus 5%); at 1 nearly every gap became an eighth (73%, the corpus 47%).
ECHO_PSEUDO_COUNT = 4.0


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

    def weigh(
        self, estimates: np.ndarray, grid: float, longest: float, start: np.ndarray | float = 0.0, *,
        echo: bool = False, held: int = 0,
    ) -> np.ndarray:  # fmt: skip
        """The network's gaps ``(..., L)`` in beats -> gaps on the grid, chosen note by note along each phrase.

        ``start`` (beats, scalar or ``(...)``): where in the beat each phrase's first note falls. ``held``:
        the first gaps are a prompt's, kept as given while the beat runs on through them. ``echo``: the
        phrase's own earlier gaps from the same phase join the corpus's, which weigh ``ECHO_PSEUDO_COUNT``
        gaps, so a phrase keeps the rhythm it (or its prompt) set out with.
        """
        gaps = np.asarray(estimates, dtype=np.float64)
        flat = gaps.reshape(-1, gaps.shape[-1])
        steps = np.arange(1, max(int(np.ceil(longest / grid)), 1) + 1)
        tau = grid / 2.0
        closeness = -((flat[..., None] - steps * grid) ** 2) / (2.0 * tau**2)  # (R, L, step)
        conditional = self._conditional[:, np.minimum(np.rint(steps * grid * CELLS_PER_BEAT), MAX_GAP_CELL).astype(int)]
        first = np.broadcast_to(np.asarray(start, dtype=np.float64), gaps.shape[:-1]).reshape(-1)
        phase = np.rint(first * CELLS_PER_BEAT).astype(np.int64) % CELLS_PER_BEAT
        phrase = _PhraseBeat(phase, conditional, closeness, echo)
        moved = np.zeros(flat.shape, dtype=np.int64)  # grid steps each note moves on by
        chord = flat < grid / 2  # within half a step of 0: a chord
        step_cells = round(grid * CELLS_PER_BEAT)  # grids off the 1/12-beat cells: their nearest
        for k in range(1, flat.shape[1]):  # the first note's gap is not played: the phrase starts there
            if k < held:
                on_grid = np.abs(flat[:, k] / grid - np.rint(flat[:, k] / grid)) < 1e-6
                counted = np.where(on_grid & (flat[:, k] <= steps[-1] * grid), np.rint(flat[:, k] / grid), 0)
                phrase.move(counted.astype(np.int64), np.rint(flat[:, k] * CELLS_PER_BEAT).astype(np.int64))
                continue
            moved[:, k] = np.where(chord[:, k], 0, steps[phrase.choose(k)])
            phrase.move(moved[:, k], moved[:, k] * step_cells)
        taken = moved * grid
        taken[:, 1:held] = flat[:, 1:held]  # a prompt's gaps as given
        return taken.reshape(gaps.shape)

    @cached_property
    def _conditional(self) -> np.ndarray:
        """``(CELLS_PER_BEAT, MAX_GAP_CELL + 1)``: P(gap | phase), floored at MIN_SHARE; made once."""
        shares = np.asarray(self.shares)
        return np.maximum(shares / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12), MIN_SHARE)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the model card."""
        return {"cells_per_beat": CELLS_PER_BEAT, "shares": [list(row) for row in self.shares]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnsetGaps:
        """Inverse of :meth:`to_dict`; another cell size is refused by name."""
        if set(data) != {"cells_per_beat", "shares"} or data["cells_per_beat"] != CELLS_PER_BEAT:
            raise BridgeError(f"onset_gaps must be {{'cells_per_beat': {CELLS_PER_BEAT}, 'shares': [[...], ...]}}")
        return cls(tuple(tuple(float(v) for v in row) for row in data["shares"]))


class _PhraseBeat:
    """Where each phrase of a batch stands in the beat, and (with ``echo``) how often it has moved on by
    each number of grid steps from each phase; chooses each note's step from there."""

    def __init__(self, phase: np.ndarray, conditional: np.ndarray, closeness: np.ndarray, echo: bool) -> None:
        """``conditional`` ``(phase, step)``: the corpus's P(gap | phase); ``closeness`` ``(R, L, step)``."""
        self.phase, self.rows = phase, np.arange(len(phase))
        self.corpus, self.closeness = ECHO_PSEUDO_COUNT * conditional, closeness  # the corpus's pseudo-counts
        self.counts = np.zeros((len(phase), CELLS_PER_BEAT, conditional.shape[1] + 1))  # [..., 0]: off the grid
        # Without the echo each note's best step from every phase is known at once, which is faster.
        self.best = None if echo else np.argmax(np.log(conditional) + closeness[:, :, None, :], axis=-1)

    def choose(self, k: int) -> np.ndarray:
        """``(R,)``: the index of the step note ``k`` takes, by the log prior plus the closeness."""
        if self.best is not None:
            return self.best[self.rows, k, self.phase]
        own = self.counts[self.rows, self.phase, 1:]
        prior = (own + self.corpus[self.phase]) / (own.sum(axis=-1, keepdims=True) + ECHO_PSEUDO_COUNT)
        return np.argmax(np.log(prior) + self.closeness[:, k], axis=-1)

    def move(self, steps: np.ndarray, cells: np.ndarray) -> None:
        """Each phrase moves on by ``steps`` grid steps (0: a chord, or a gap off the grid), ``cells`` 1/12 beats."""
        if self.best is None:  # counted by steps; a chord, or a gap off the grid, in [..., 0]
            self.counts[self.rows, self.phase, steps] += 1.0
        self.phase = (self.phase + cells) % CELLS_PER_BEAT
