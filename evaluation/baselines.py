"""Baselines that must score badly: if one passes a metric, that metric cannot tell music from noise.

Both remake real pieces one for one (an empty piece stays empty), keeping each piece's note
count and start, so baseline ``i`` can stand beside reference piece ``i`` in any split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from bridge.codec import Note, features_to_notes, notes_to_features, sort_notes


def independent_notes(pieces: Sequence[Sequence[Note]], rng: np.random.Generator) -> list[list[Note]]:
    """Pitch, duration and delta of every note drawn independently from their pooled marginals.

    What a model knows when it has learned only the per-feature histograms: right pitches and
    rhythmic values, no key, no voice leading, no chords beyond chance.
    """
    features = [notes_to_features(p) for p in pieces]
    pool = np.concatenate([np.zeros((0, 3)), *features])
    out: list[list[Note]] = []
    for piece, f in zip(pieces, features, strict=True):
        drawn = pool[rng.integers(len(pool), size=f.shape), np.arange(3)]
        out.append(features_to_notes(drawn, start=min(n.onset for n in piece)) if len(f) else [])
    return out


def shuffled_pitches(pieces: Sequence[Sequence[Note]], rng: np.random.Generator) -> list[list[Note]]:
    """Real pieces with their pitches permuted among their notes: every order-free statistic
    (key, range, rhythm) stays real, so only order-sensitive metrics can reject it."""
    out = []
    for piece in pieces:
        ordered = sort_notes(piece)
        pitches = rng.permutation([n.pitch for n in ordered])
        out.append(sort_notes(replace(n, pitch=int(p)) for n, p in zip(ordered, pitches, strict=True)))
    return out
