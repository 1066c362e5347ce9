"""The chords the training music struck, and the snap that moves each sampled chord onto the nearest of them.

The network places each pitch about a semitone well, but it does not know which pitch classes sound
together: its chords hold as many fourths, seconds and tritones as thirds. Most of the transitions
metric's distance to real music is that chord content, not the voicing or the chord order (see
docs/evaluation.md). So after decoding, every chord (notes starting together) moves to the
corpus chord that costs the least total squared movement, at most ``MAX_MOVE`` semitones a note; on a
tie, the more common one. Single notes and chords no corpus chord is near stay as the network wrote them.

Chords are counted as pitch-class sets relative to the relative-major tonic of their segment's key,
so one vocabulary serves every key; the sets that together make ``COVER`` of the corpus's chords are kept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bridge.codec import value_to_pitch
from bridge.constraints import key_of
from bridge.errors import BridgeError

CHORD_CHOICES = ("corpus", "model")  # corpus: chords snapped to the corpus's; model: the network's own
COVER = 0.95  # share of the corpus's chords the kept sets make together
MAX_MOVE = 2  # semitones a note may move
ONSET_CELLS = 48  # per beat: notes whose onsets round to the same cell start together (as the evaluation counts)
RELATIVE_MAJOR = {"major": 0, "minor": 3}  # semitones from a key's tonic to its relative major's
_FULL = (1 << 12) - 1


@dataclass(frozen=True)
class ChordVocabulary:
    """Pitch-class sets ``sets`` (bit c = class c above the relative-major tonic), most common first,
    with their shares of the corpus's chords."""

    sets: tuple[int, ...]
    shares: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.sets or len(self.shares) != len(self.sets) or len(set(self.sets)) != len(self.sets):
            raise BridgeError("a chord vocabulary needs distinct sets, one share each; re-export the model")
        if any(not 0 < s <= _FULL for s in self.sets) or min(self.shares) < 0:
            raise BridgeError("chord sets must be non-empty sets of the 12 pitch classes; re-export the model")

    @classmethod
    def fit(cls, features: np.ndarray, encoding: str, cover: float = COVER) -> ChordVocabulary | None:
        """From unscaled training segments ``(n, L, 3)`` (pitch in ``encoding``, times in beats); None for
        music without chords (a corpus of melodies), which leaves nothing to snap."""
        counts: Counter[int] = Counter()
        for segment in np.asarray(features, dtype=np.float64):
            counts.update(chord_sets(value_to_pitch(segment[:, 0], encoding), np.cumsum(segment[:, 2])))
        if not counts:
            return None
        total = sum(counts.values())
        kept, made = [], 0
        for chord, count in counts.most_common():
            kept.append((chord, round(count / total, 6)))
            made += count
            if made >= cover * total:
                break
        return cls(tuple(c for c, _ in kept), tuple(s for _, s in kept))

    @cached_property
    def _set_bits(self) -> np.ndarray:
        """``(V,)``: the sets as one array, made once rather than for every chord snapped."""
        return np.array(self.sets, dtype=np.int64)

    @cached_property
    def _moves(self) -> np.ndarray:
        """``(V, 12)``: the smallest move (semitones; downwards on a tie) from each pitch class into each
        set, or a large sentinel where none within ``MAX_MOVE`` exists."""
        steps = sorted(range(-MAX_MOVE, MAX_MOVE + 1), key=lambda d: (abs(d), d))
        moves = np.full((len(self.sets), 12), 99, dtype=np.int64)
        for v, chord in enumerate(self.sets):
            for pc in range(12):
                moves[v, pc] = next((d for d in steps if chord >> ((pc + d) % 12) & 1), 99)
        return moves

    def snap(
        self, pitches: np.ndarray, onsets: np.ndarray, allowed: frozenset[int] = frozenset(range(12)), kept: int = 0
    ) -> np.ndarray:
        """MIDI ``pitches`` ``(L,)`` with every chord (same onset, beats ``(L,)``) moved onto the nearest corpus
        chord whose classes lie in ``allowed``; a new array. Chords that hold any of the first ``kept`` notes
        (a user's prompt) stay as they are, though those notes still count toward the key."""
        out = np.array(pitches, dtype=np.int64)
        tonic = _relative_major(out)
        allowed_bits = sum(1 << ((c - tonic) % 12) for c in allowed)
        usable = np.array([chord & ~allowed_bits == 0 for chord in self.sets])
        for members in _chords(onsets):
            if members.min() >= kept:
                out[members] += self._chord_moves((out[members] - tonic) % 12, usable)
        return out

    def _chord_moves(self, classes: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """The moves ``(k,)`` that take one chord's ``classes`` onto exactly one usable set at the least cost."""
        moves = self._moves[:, classes]  # (V, k)
        landed = np.bitwise_or.reduce(1 << ((classes + moves) % 12), axis=1)
        fits = usable & (moves.max(axis=1) <= MAX_MOVE) & (landed == self._set_bits)
        if not fits.any():
            return np.zeros(len(classes), dtype=np.int64)
        cost = np.where(fits, (moves**2).sum(axis=1), np.iinfo(np.int64).max)
        return moves[int(np.argmin(cost))]  # argmin takes the first: the more common set on a tie

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the model card: each set as its pitch classes above the relative-major tonic."""
        return {"sets": [[c for c in range(12) if chord >> c & 1] for chord in self.sets], "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChordVocabulary:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or set(data) != {"sets", "shares"}:
            raise BridgeError("chords must be {'sets': [[pitch classes], ...], 'shares': [...]}")
        if any(not 0 <= c <= 11 for chord in data["sets"] for c in chord):
            raise BridgeError("chord pitch classes must lie in 0..11")
        return cls(tuple(sum(1 << c for c in set(chord)) for chord in data["sets"]), tuple(map(float, data["shares"])))


def _relative_major(pitches: np.ndarray) -> int:
    """The pitch class of the relative-major tonic of the best-fitting key of MIDI ``pitches``."""
    tonic, mode, _ = key_of(pitches)
    return (tonic + RELATIVE_MAJOR[mode]) % 12


def _chords(onsets: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the notes that start together, two or more, from onsets in beats ``(L,)``."""
    cells = np.rint(np.asarray(onsets) * ONSET_CELLS).astype(np.int64)
    _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    return [np.flatnonzero(inverse == g) for g in np.flatnonzero(counts > 1)]


def chord_sets(pitches: np.ndarray, onsets: np.ndarray) -> list[int]:
    """The pitch-class set of every chord of one piece (MIDI ``pitches``, onsets in beats, ``(L,)`` each),
    as bits above the relative-major tonic of the piece's key: what :meth:`ChordVocabulary.fit` counts."""
    pitches = np.asarray(pitches, dtype=np.int64)
    tonic = _relative_major(pitches)
    return [int(np.bitwise_or.reduce(1 << ((pitches[m] - tonic) % 12))) for m in _chords(onsets)]
