"""Key/scale, pitch-range and rhythm-grid constraints, applied inside the denoising loop.

The sampler hands each step's predicted clean sample x0 to a :class:`Projection`, which moves
the pitch channel (in scaled units) onto the nearest allowed pitch and, with a grid, durations
and onset gaps onto multiples of it, so the model composes inside the key and the metre
instead of being corrected afterwards. The same projection snaps the final sample.
With ``auto_key`` the first steps run free; then each piece keeps to the key its own x0
leans toward (the best of 24 major/minor keys).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bridge.codec import FeatureStats, pitch_to_value, value_to_pitch
from bridge.errors import BridgeError
from bridge.note_lengths import NoteLengths, weigh
from bridge.onset_gaps import ONSET_CHOICES, OnsetGaps

NOTE_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic minor": (0, 2, 3, 5, 7, 9, 11),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole tone": (0, 2, 4, 6, 8, 10),
    "chromatic": tuple(range(12)),
}
# Keys that auto_key chooses from: fitted on major and harmonic minor (so no minor key shares its
# scale with a major one), kept as major and as natural-plus-harmonic minor (both sevenths).
KEY_FIT_SCALES = {"major": MODES["major"], "minor": MODES["harmonic minor"]}
KEY_KEEP_SCALES = {"major": MODES["major"], "minor": (0, 2, 3, 5, 7, 8, 10, 11)}
AUTO_KEY = "auto"
AUTO_KEY_SETTLE = 0.25  # share of the steps that run before the key is chosen
# Share of the steps before the corpus onset gaps weigh the grid's gaps (then to the end, and the final snap).
# From the start they kept the beat as well but cost chords and harmony (docs/evaluation.md, "Corpus onsets").
ONSETS_SETTLE = 0.75
_KEY = re.compile(r"^\s*([a-gA-G])([#♯b♭]?)\s*(.*?)\s*$")
_PITCH_CLASSES = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*,?\s*$")


def parse_scale(text: str) -> frozenset[int]:
    """Pitch classes (0 = C) of ``"C major"``, ``"F# minor"``, ``"Bb dorian"``, ``"D"`` (major) or ``"0,2,4,7,9"``."""
    if _PITCH_CLASSES.match(text):
        classes = [int(p) for p in text.replace(" ", "").strip(",").split(",")]
        if any(p > 11 for p in classes):
            raise BridgeError(f"pitch classes must lie in 0..11 (0 = C), got {text!r}")
        return frozenset(classes)
    match = _KEY.match(text)
    mode = " ".join(match.group(3).lower().split()) if match else ""
    if match is None or (mode or "major") not in MODES:
        raise BridgeError(
            f"cannot read the scale {text!r}; write a root and a mode such as 'C major', 'F# minor' or "
            f"'D dorian' (modes: {', '.join(MODES)}), or pitch classes such as '0,2,4,5,7,9,11'"
        )
    root = NOTE_NAMES[match.group(1).lower()] + ACCIDENTALS[match.group(2)]
    return frozenset((root + step) % 12 for step in MODES[mode or "major"])


def best_key(histogram: np.ndarray) -> tuple[int, str, float]:
    """(tonic, "major" or "minor", share of ``histogram`` ``(12,)`` in its scale) of the best of 24 keys."""
    best = (0, "major", -1.0)
    for mode, scale in KEY_FIT_SCALES.items():
        for tonic in range(12):
            share = float(histogram[[(tonic + step) % 12 for step in scale]].sum())
            if share > best[2]:
                best = (tonic, mode, share)
    return best


def key_of(pitches: np.ndarray) -> tuple[int, str, float]:
    """:func:`best_key` of MIDI ``pitches`` (any shape), counted note by note."""
    p = np.asarray(pitches, dtype=np.int64).ravel()
    return best_key(np.bincount(p % 12, minlength=12) / max(len(p), 1))


@dataclass(frozen=True)
class PitchConstraint:
    """Allowed pitches: those of ``pitch_classes`` (0 = C) within ``low`` .. ``high`` (MIDI, inclusive).

    ``auto_key``: the pitch classes are chosen per piece during sampling (see the module's notes).
    ``grid`` (beats): durations and onset gaps are kept to multiples of it; ``corpus_lengths``:
    durations weighed by how often the model's corpus used each length; ``onsets``: how onset gaps go onto
    the grid, late in the loop (one of :data:`bridge.onset_gaps.ONSET_CHOICES`; the corpus's when the card
    has them).
    """

    pitch_classes: frozenset[int] = frozenset(range(12))
    low: int = 0
    high: int = 127
    auto_key: bool = False
    grid: float | None = None
    corpus_lengths: bool = True
    onsets: str = "echo"

    def __post_init__(self) -> None:
        if not self.pitch_classes or not self.pitch_classes <= frozenset(range(12)):
            raise BridgeError(f"a scale needs pitch classes in 0..11, got {sorted(self.pitch_classes)}")
        if not 0 <= self.low <= self.high <= 127:
            raise BridgeError(f"a pitch range needs 0 <= low <= high <= 127, got {self.low} .. {self.high}")
        if self.grid is not None and not self.grid > 0:
            raise BridgeError(f"a rhythm grid must be a positive number of beats, got {self.grid}")
        if self.onsets not in ONSET_CHOICES:
            raise BridgeError(f"onsets must be one of {', '.join(ONSET_CHOICES)}, got {self.onsets!r}")

    @classmethod
    def parse(
        cls, scale: str | None = None, low: int = 0, high: int = 127, grid: float | None = None,
        corpus_lengths: bool = True, onsets: str = "echo",
    ) -> PitchConstraint:  # fmt: skip
        """From the user's words: a scale (see :func:`parse_scale`; ``"auto"``; None: all 12), a range, a grid."""
        auto = scale is not None and scale.strip().lower() == AUTO_KEY
        classes = frozenset(range(12)) if auto or not scale else parse_scale(scale)
        return cls(classes, low, high, auto_key=auto, grid=grid, corpus_lengths=corpus_lengths,
                   onsets=onsets)  # fmt: skip

    def moved(self, semitones: int) -> PitchConstraint:
        """The same constraint ``semitones`` higher: its pitch classes and its range (kept in 0..127)."""
        classes = frozenset((c + semitones) % 12 for c in self.pitch_classes)
        low, high = (min(max(p + semitones, 0), 127) for p in (self.low, self.high))
        return dataclasses.replace(self, pitch_classes=classes, low=low, high=high)

    def allowed(self) -> np.ndarray:
        """Allowed MIDI pitches, ascending, int64 ``(m,)``."""
        pitches = np.arange(self.low, self.high + 1)
        return pitches[np.isin(pitches % 12, list(self.pitch_classes))]

    def projection(
        self, stats: FeatureStats, steps: int = 1, note_lengths: NoteLengths | None = None,
        onset_gaps: OnsetGaps | None = None, onset_start: np.ndarray | float = 0.0, held: int = 0,
    ) -> Projection:  # fmt: skip
        """A fresh per-run projection for a model with ``stats``, over a loop of ``steps`` steps.

        ``note_lengths`` and ``onset_gaps``: the model's corpus priors for durations and onset gaps on
        the grid (see :class:`TimeGrid`); used unless ``corpus_lengths`` is off or ``onsets`` is grid.
        ``onset_start``: where in the beat each piece's first note falls (a continued piece's window);
        ``held``: how many first notes are a prompt's, whose gaps the onset weighing keeps.
        """
        lengths = note_lengths if self.corpus_lengths else None
        onsets = None if self.onsets == "grid" else onset_gaps
        time_grid = (
            TimeGrid(self.grid, stats, lengths, onsets, onset_start, echo=self.onsets == "echo", held=held)
            if self.grid
            else None
        )
        settle = int(AUTO_KEY_SETTLE * steps) if self.auto_key else None
        return Projection(self, stats, self.pitch_projection(stats), time_grid, settle, int(ONSETS_SETTLE * steps))

    def pitch_projection(self, stats: FeatureStats) -> PitchProjection:
        """The pitch projection in the scaled units of a model whose statistics are ``stats``.

        Only pitches inside the model's training range can be represented (decoding clips to
        it), so the allowed set is cut to that range; an empty cut is an error.
        """
        pitches = self.allowed()
        values = pitch_to_value(pitches, stats.encoding)
        low, high = stats.low[0], stats.high[0]
        inside = (values >= low - 1e-9) & (values <= high + 1e-9)
        if not inside.any():
            raise BridgeError(
                f"no allowed pitch ({self.low}..{self.high} in pitch classes {sorted(self.pitch_classes)}) lies in "
                f"the model's pitch range ({low:g}..{high:g} {stats.encoding}); widen the range or change the scale"
            )
        scaled = stats.scale_pitch(values[inside]).astype(np.float32)
        return PitchProjection(scaled, (scaled[1:] + scaled[:-1]) / 2.0)


@dataclass(frozen=True)
class PitchProjection:
    """Nearest-allowed-value projection of the pitch channel, in scaled units.

    ``values`` float32 ``(m,)``: the allowed pitches scaled, ascending; ``bounds`` ``(m-1,)``: midpoints.
    """

    values: np.ndarray
    bounds: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Project ``x[..., 0]`` of a scaled ``(..., 3)`` array in place onto the nearest allowed value; returns x."""
        x[..., 0] = self.values[np.searchsorted(self.bounds, x[..., 0])]
        return x


@dataclass(frozen=True)
class TimeGrid:
    """Durations and onset gaps onto multiples of ``grid`` beats, in scaled units (durations at least one step).

    With ``note_lengths`` (the model's training corpus) durations go to the grid length the
    corpus prior and the distance favour together (:mod:`bridge.note_lengths`), not the nearest;
    with ``onset_gaps`` the gaps likewise, by the phase of the beat each starts from
    (:mod:`bridge.onset_gaps`), with ``echo`` also by the phrase's own earlier gaps, keeping the first
    ``held`` (a prompt's) as they are.
    """

    grid: float
    stats: FeatureStats
    note_lengths: NoteLengths | None = None
    onset_gaps: OnsetGaps | None = None
    onset_start: np.ndarray | float = 0.0  # beats: where in the beat each piece's first note falls
    echo: bool = False
    held: int = 0

    @cached_property
    def _lattice(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The grid's lengths up to the model's longest and their log prior, made once per run."""
        if self.note_lengths is None:
            return None
        return self.note_lengths.lattice(self.grid, float(self._longest[1]))

    @cached_property
    def _longest(self) -> np.ndarray:
        """The model's longest duration and gap in beats (at ``[1]`` and ``[2]``), made once per run."""
        return self.stats.unscale(np.ones(3))

    def _starts(self, x: np.ndarray) -> np.ndarray:
        """``onset_start`` per phrase of a scaled ``(B, T, L, 3)`` or ``(B, L, 3)`` x: one value, or one per piece."""
        start = np.asarray(self.onset_start, dtype=np.float64)
        return start.reshape(-1, *[1] * (x.ndim - 3)) if start.ndim else start

    def __call__(self, x: np.ndarray, onsets: bool = True) -> np.ndarray:
        """Snap ``x[..., 1:]`` of a scaled ``(..., 3)`` array in place (``onsets``: weigh the gaps by the
        corpus's, where given); returns x."""
        features = self.stats.unscale(x)
        steps = np.rint(features[..., 1:] / self.grid)
        steps[..., 0] = np.maximum(steps[..., 0], 1.0)
        times = steps * self.grid
        if self._lattice is not None:
            times[..., 0] = weigh(features[..., 1], *self._lattice)
        if self.onset_gaps is not None and onsets:
            times[..., 1] = self.onset_gaps.weigh(features[..., 2], self.grid, float(self._longest[2]), self._starts(x),
                                                  echo=self.echo, held=self.held)  # fmt: skip
        features[..., 1:] = times
        x[..., 1:] = np.clip(self.stats.scale(features)[..., 1:], -1.0, 1.0)
        return x


class Projection:
    """One sampling run's projection of x0 ``(..., L, 3)``, in place: pitches, then times (onto the grid, or
    without one into the training range).

    Stateful: with ``auto_key``, after ``settle`` calls each piece's key is fitted on its x0 and kept
    for the rest of the run; corpus onset gaps weigh the times only after ``onsets_from`` calls. Make a
    new one per run (:meth:`PitchConstraint.projection`).
    """

    def __init__(self, constraint: PitchConstraint, stats: FeatureStats, pitch: PitchProjection,
                 time_grid: TimeGrid | None, settle: int | None, onsets_from: int = 0) -> None:  # fmt: skip
        self.constraint, self.stats, self.pitch = constraint, stats, pitch
        self.time_grid, self.settle, self.onsets_from = time_grid, settle, onsets_from
        self.calls = 0
        self.keys: list[PitchProjection] | None = None
        self._chosen: list[tuple[int, str]] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.settle is not None and self.keys is None and self.calls > self.settle:
            self._choose_keys(x)
        return self._apply(x, onsets=self.calls > self.onsets_from)

    def finish(self, x: np.ndarray) -> np.ndarray:
        """The final snap of the clean sample; chooses the keys now if the loop never did (snap only)."""
        if self.settle is not None and self.keys is None:
            self._choose_keys(x)
        return self._apply(x, onsets=True)

    def _choose_keys(self, x: np.ndarray) -> None:
        self.keys = [self._key_projection(piece) for piece in x.reshape(len(x), -1, 3)]

    def _apply(self, x: np.ndarray, onsets: bool) -> np.ndarray:
        if self.keys is None:
            self.pitch(x)
        else:
            for piece, projection in zip(x, self.keys, strict=True):
                projection(piece)
        if self.time_grid is not None:
            self.time_grid(x, onsets)
        else:  # free timing: still the training range, or guidance pushes the times past it step after step
            np.clip(x[..., 1:], -1.0, 1.0, out=x[..., 1:])
        return x

    def chosen_keys(self) -> list[tuple[int, str]]:
        """(tonic, mode) per piece once auto_key has chosen; empty before or without it."""
        return list(self._chosen)

    def _key_projection(self, piece: np.ndarray) -> PitchProjection:
        """Fit the best key on one piece's current x0 ``(L, 3)`` and keep to it."""
        pitches = value_to_pitch(self.stats.unscale(piece)[:, 0], self.stats.encoding)
        tonic, mode, _ = key_of(pitches)
        self._chosen.append((tonic, mode))
        classes = frozenset((tonic + step) % 12 for step in KEY_KEEP_SCALES[mode])
        return dataclasses.replace(self.constraint, pitch_classes=classes, auto_key=False).pitch_projection(self.stats)
