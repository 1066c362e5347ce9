"""A seeded generator of tonal "real music", so the evaluation's checks mean something.

Each piece: a random key (major or natural minor), 8 bars of 4 beats over a common chord
progression, a block-chord left hand and a mostly stepwise melody whose strong beats land on
chord tones, with bar rhythms on the 1/4- and 1/3-beat grids that repeat as in real phrases.
"""

from __future__ import annotations

import numpy as np

from bridge.codec import Note, sort_notes

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (1, 4, 0, 0), (0, 4, 5, 3), (5, 3, 4, 0))
BEAT_CELLS = ((1.0,), (0.5, 0.5), (0.25, 0.25, 0.5), (0.5, 0.25, 0.25), (0.75, 0.25), (0.25,) * 4, (1 / 3,) * 3)
BAR_FORMS = ("AABA", "ABAB", "AABB", "ABAC")


def _pitch(degree: int, tonic: int, scale: tuple[int, ...]) -> int:
    """Scale degree (0 = the tonic in octave 2) -> MIDI pitch."""
    return 36 + tonic + 12 * (degree // 7) + scale[degree % 7]


def _bar_rhythm(rng: np.random.Generator) -> list[tuple[float, float]]:
    """(onset in bar, duration) of a bar of melody: four beat cells, sometimes a half note."""
    if rng.random() < 0.25:
        return [(0.0, 2.0), *((2.0 + o, d) for o, d in _bar_rhythm(rng) if o >= 2.0)]
    out = []
    for beat in range(4):
        cell = BEAT_CELLS[rng.integers(len(BEAT_CELLS))]
        out += [(beat + float(np.sum(cell[:i])), d) for i, d in enumerate(cell)]
    return out


def tonal_piece(rng: np.random.Generator, bars: int = 8) -> list[Note]:
    """One piece of the generator (see the module docstring)."""
    tonic, scale = int(rng.integers(12)), MAJOR if rng.random() < 0.6 else MINOR
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    rhythms = {k: _bar_rhythm(rng) for k in "ABC"}
    form = BAR_FORMS[rng.integers(len(BAR_FORMS))]
    degree = 21 + int(rng.integers(-2, 3))
    notes = []
    for bar in range(bars):
        root, start = progression[bar % 4], 4.0 * bar
        for half in (0.0, 2.0):
            notes += [Note(start + half, _pitch(7 + root + k, tonic, scale), 2.0, 60) for k in (0, 2, 4)]
        centre = 21 + 3 * (bar // 4 % 2)  # the second phrase sits a little higher
        for onset, duration in rhythms[form[bar % 4]]:
            step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
            degree = int(np.clip(degree + step + np.sign(centre - degree) * (rng.random() < 0.3), 14, 28))
            if onset == int(onset):  # strong beats: the nearest chord tone
                tones = [root + 7 * o + k for o in range(5) for k in (0, 2, 4)]
                degree = min(tones, key=lambda t: abs(t - degree))
            notes.append(Note(start + onset, _pitch(degree, tonic, scale), duration, int(rng.integers(70, 100))))
    return sort_notes(notes)


def tonal_set(seed: int, count: int) -> list[list[Note]]:
    """``count`` pieces of the generator from one seed."""
    rng = np.random.default_rng(seed)
    return [tonal_piece(rng) for _ in range(count)]
