"""Baselines that must score badly: if one passes a metric, that metric cannot tell music from noise.

Both are built from real pieces (in :func:`evaluation.evaluate`, the second reference half, which
stands in for training data), one per piece, with the piece's note count and start.
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
    features = [notes_to_features(p) for p in pieces if p]
    if not features:
        return []
    pool = np.concatenate(features)
    out = []
    for piece, f in zip((p for p in pieces if p), features, strict=True):
        drawn = pool[rng.integers(len(pool), size=f.shape), np.arange(3)]
        out.append(features_to_notes(drawn, start=sort_notes(piece)[0].onset))
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
