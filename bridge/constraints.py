"""Key/scale and pitch-range constraints, applied inside the denoising loop.

The sampler hands each step's predicted clean sample x0 to a :class:`PitchProjection`, which
moves the pitch channel (in scaled units) onto the nearest allowed pitch, so the model
composes inside the key instead of being corrected afterwards. The same projection snaps
the final sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from bridge.codec import FeatureStats, pitch_to_value
from bridge.errors import BridgeError

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


@dataclass(frozen=True)
class PitchConstraint:
    """Allowed pitches: those of ``pitch_classes`` (0 = C) within ``low`` .. ``high`` (MIDI, inclusive)."""

    pitch_classes: frozenset[int] = frozenset(range(12))
    low: int = 0
    high: int = 127

    def __post_init__(self) -> None:
        if not self.pitch_classes or not self.pitch_classes <= frozenset(range(12)):
            raise BridgeError(f"a scale needs pitch classes in 0..11, got {sorted(self.pitch_classes)}")
        if not 0 <= self.low <= self.high <= 127:
            raise BridgeError(f"a pitch range needs 0 <= low <= high <= 127, got {self.low} .. {self.high}")

    @classmethod
    def parse(cls, scale: str | None = None, low: int = 0, high: int = 127) -> PitchConstraint:
        """From the user's words: a scale (see :func:`parse_scale`; None: all 12) and a range."""
        return cls(parse_scale(scale) if scale else frozenset(range(12)), low, high)

    def allowed(self) -> np.ndarray:
        """Allowed MIDI pitches, ascending, int64 ``(m,)``."""
        pitches = np.arange(self.low, self.high + 1)
        return pitches[np.isin(pitches % 12, list(self.pitch_classes))]

    def projection(self, stats: FeatureStats) -> PitchProjection:
        """The projection in the scaled units of a model whose statistics are ``stats``.

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
        scaled = np.clip(2.0 * (values[inside] - low) / (high - low) - 1.0, -1.0, 1.0).astype(np.float32)
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
