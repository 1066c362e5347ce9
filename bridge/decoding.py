"""Scaled samples -> notes a DAW can play, through the codec.

The model writes continuous numbers; a musician needs whole MIDI pitches inside an
instrument's range, no zero-length notes, onsets on a grid if asked, and velocities.
Times are in beats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bridge.chords import ChordVocabulary
from bridge.codec import FeatureStats, Note, features_to_notes, pitch_to_value, value_to_pitch
from bridge.errors import BridgeError


@dataclass(frozen=True)
class DecodeOptions:
    """How features become notes.

    ``min_duration``: shortest note (beats). ``min_delta``: onset gaps below it become 0 (a chord)
    or ``min_delta``, whichever is nearer, so near-simultaneous notes do not flam. ``grid``:
    onsets and durations snap to multiples of it (e.g. 1/4 or 1/12 beat). ``transpose``:
    semitones. ``low``/``high``: pitch range; notes outside move by octaves. ``velocity``: fixed,
    or a ``(low, high)`` range drawn per note (humanize). ``chords``: the model's corpus chords, which
    every chord snaps to (:mod:`bridge.chords`), keeping to ``chord_classes`` (the sampler's pitch
    classes, before ``transpose``); the first ``prompt_notes`` (the user's) are never moved.
    """

    min_duration: float = 1 / 32
    min_delta: float = 1 / 32
    grid: float | None = None
    transpose: int = 0
    low: int = 0
    high: int = 127
    velocity: int | tuple[int, int] = 80
    channel: int = 0
    program: int = 0
    chords: ChordVocabulary | None = None
    chord_classes: frozenset[int] = frozenset(range(12))
    prompt_notes: int = 0

    def __post_init__(self) -> None:
        if self.min_duration <= 0 or self.min_delta < 0:
            raise BridgeError(
                f"min_duration must be positive and min_delta at least 0, got {self.min_duration} and {self.min_delta}"
            )
        if self.grid is not None and self.grid <= 0:
            raise BridgeError(f"the grid must be a positive number of beats (e.g. 0.25), got {self.grid}")
        if not 0 <= self.low <= self.high <= 127:
            raise BridgeError(f"the pitch range needs 0 <= low <= high <= 127, got {self.low} .. {self.high}")
        velocities = (self.velocity, self.velocity) if isinstance(self.velocity, int) else tuple(self.velocity)
        if len(velocities) != 2 or not 1 <= velocities[0] <= velocities[1] <= 127:
            raise BridgeError(f"velocity must be 1..127 or a range (low, high) within it, got {self.velocity}")
        if not 0 <= self.channel <= 15 or not 0 <= self.program <= 127:
            raise BridgeError(f"channel must be 0..15 and program 0..127, got {self.channel} and {self.program}")


def decode(
    scaled: np.ndarray,
    stats: FeatureStats,
    options: DecodeOptions = DecodeOptions(),
    *,
    seed: int | np.random.Generator | None = None,
    start: float = 0.0,
) -> list[list[Note]]:
    """Scaled ``(n, L, 3)`` samples (from :func:`bridge.samplers.sample`) -> n note lists, in feature order."""
    if np.ndim(scaled) != 3 or np.shape(scaled)[2] != 3:
        raise BridgeError(f"samples to decode must have shape (n, L, 3), got {np.shape(scaled)}")
    rng = np.random.default_rng(seed)
    return [decode_one(s, stats, options, rng=rng, start=start) for s in scaled]


def decode_one(
    scaled: np.ndarray,
    stats: FeatureStats,
    options: DecodeOptions = DecodeOptions(),
    *,
    rng: np.random.Generator | None = None,
    start: float = 0.0,
) -> list[Note]:
    """One scaled ``(L, 3)`` sample -> notes; ``rng`` draws humanized velocities."""
    features = stats.unscale(scaled)  # clipped to the training range first
    pitches = value_to_pitch(features[:, 0], stats.encoding)
    onsets, durations = _times(features[:, 2], features[:, 1], options)
    if options.chords is not None:
        pitches = options.chords.snap(pitches, onsets, options.chord_classes, options.prompt_notes)
    pitches = fold_into_range(pitches + options.transpose, options.low, options.high)
    out = np.column_stack([pitch_to_value(pitches, stats.encoding), durations, np.diff(onsets, prepend=0.0)])
    return features_to_notes(
        out, stats.encoding, start=start, velocity=_velocities(options.velocity, len(out), rng),
        channel=options.channel, program=options.program,
    )


def fold_into_range(pitches: np.ndarray, low: int, high: int) -> np.ndarray:
    """Move pitches outside ``low..high`` by whole octaves (keeping the pitch class); clip if the range is narrower."""
    p = np.asarray(pitches, dtype=np.int64)
    p = np.where(p < low, p + 12 * ((low - p + 11) // 12), p)
    p = np.where(p > high, p - 12 * ((p - high + 11) // 12), p)
    return np.clip(p, low, high)


def _times(deltas: np.ndarray, durations: np.ndarray, options: DecodeOptions) -> tuple[np.ndarray, np.ndarray]:
    """Onsets from 0 and durations ``(L,)``, with the minimums and the grid applied.

    The grid snaps absolute onsets, not gaps, so rounding errors never add up along the phrase.
    """
    onsets = np.cumsum(_snap_small(deltas, options.min_delta))
    onsets -= onsets[0] if len(onsets) else 0.0
    durations = np.maximum(durations, options.min_duration)
    if options.grid is None:
        return onsets, durations
    grid = options.grid
    shortest = max(math.ceil(options.min_duration / grid - 1e-9), 1)
    return np.round(onsets / grid) * grid, np.maximum(np.round(durations / grid), shortest) * grid


def _snap_small(deltas: np.ndarray, min_delta: float) -> np.ndarray:
    """Gaps below ``min_delta`` -> 0 or ``min_delta``, whichever is nearer."""
    small = deltas < min_delta
    return np.where(small, np.where(deltas < min_delta / 2, 0.0, min_delta), deltas)


def _velocities(velocity: int | tuple[int, int], n: int, rng: np.random.Generator | None) -> np.ndarray:
    """A fixed velocity, or ``n`` drawn uniformly from an inclusive range."""
    if isinstance(velocity, int):
        return np.full(n, velocity, np.int64)
    return (rng or np.random.default_rng()).integers(velocity[0], velocity[1] + 1, n)
