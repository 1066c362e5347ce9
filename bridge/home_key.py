"""Home-key models: every training segment was moved to C major or A minor (``FeatureStats.home_key``).

Such a network need not work out a segment's key from its notes before it can weigh the
degrees of that key: tonic, third and fifth always sit on the same pitch classes. The
sampler therefore asks it for music in its home key and moves the result: a named scale's
notes are moved into the home key before sampling and the notes back after; a prompt is
moved by its own key. With no scale the music stays in the home key; the auto key fits each
piece's key on its estimate after the first steps (bridge.constraints), which may be another.
"""

from __future__ import annotations

import numpy as np

from bridge.codec import FeatureStats, transpose_values, value_to_pitch
from bridge.constraints import MODES, PitchConstraint, key_of

HOME_TONICS = {"major": 0, "minor": 9}  # C major and A minor: both keys share the white keys
HOME_SCALE = frozenset(MODES["major"])


def home_shift(pitches: np.ndarray) -> int:
    """Semitones (-6 .. 5) that move the best-fitting key of MIDI ``pitches`` to C major or A minor."""
    tonic, mode, _ = key_of(pitches)
    return (HOME_TONICS[mode] - tonic + 6) % 12 - 6


def scale_offset(pitch_classes: frozenset[int]) -> int:
    """Semitones (-6 .. 5) from the home key to a scale: the move that lays most of its classes on
    C major's (D minor: 5, from A minor), the smallest such move on a tie."""
    moves = sorted(range(-6, 6), key=abs)
    return max(moves, key=lambda s: len({(c - s) % 12 for c in pitch_classes} & HOME_SCALE))


def output_offset(stats: FeatureStats, constraint: PitchConstraint, prompt: np.ndarray | None = None) -> int:
    """Semitones to add to a model's notes so they sound in the key asked for; 0 unless home-key.

    A prompt (unscaled ``(k, 3)``) sets the key; otherwise a named scale does; the auto key, or
    all twelve classes, leave the music in the home key.
    """
    if not stats.home_key:
        return 0
    if prompt is not None and len(prompt):
        return -home_shift(value_to_pitch(prompt[:, 0], stats.encoding))
    if constraint.auto_key or len(constraint.pitch_classes) == 12:
        return 0
    return scale_offset(constraint.pitch_classes)


def move_prompt(prompt: np.ndarray | None, semitones: int, encoding: str) -> np.ndarray | None:
    """An unscaled prompt ``(k, 3)`` with its pitches ``semitones`` higher (a copy); None stays None."""
    if prompt is None or not semitones:
        return prompt
    moved = np.array(prompt, dtype=np.float64)
    moved[:, 0] = transpose_values(moved[:, 0], semitones, encoding)
    return moved
