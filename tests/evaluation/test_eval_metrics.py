"""Per-piece metrics on small pieces whose values are known by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from tonal_music import tonal_piece

from bridge.codec import Note
from evaluation import metrics

C_MAJOR = (60, 62, 64, 65, 67, 69, 71)


def melody(pitches: tuple[int, ...] | list[int], step: float = 1.0) -> list[Note]:
    return [Note(i * step, p, step) for i, p in enumerate(pitches)]


def triads(bars: int) -> list[Note]:
    """A C major triad on every beat of ``bars`` bars: the same rhythm and pitches everywhere."""
    return [Note(float(b), p, 1.0) for b in range(4 * bars) for p in (60, 64, 67)]


def test_pitch_class_entropy_counts_bits():
    assert metrics.pitch_class_entropy(melody(C_MAJOR)) == pytest.approx(math.log2(7))
    assert metrics.pitch_class_entropy(melody(range(60, 72))) == pytest.approx(math.log2(12))
    assert math.isnan(metrics.pitch_class_entropy([]))


def test_scale_consistency_finds_the_best_key():
    assert metrics.scale_consistency(melody([p + 5 for p in C_MAJOR])) == pytest.approx(1.0)  # F major
    assert metrics.scale_consistency(melody(range(60, 72))) == pytest.approx(7 / 12)
    tonic, minor, share = metrics.best_key(melody((57, 59, 60, 62, 64, 65, 68)))  # A harmonic minor
    assert (tonic, minor, share) == (9, True, pytest.approx(1.0))


def test_range_and_top_voice_interval():
    notes = [*melody((60, 67, 62)), Note(0.0, 48, 1.0)]  # a bass note under the first melody note
    assert metrics.pitch_range(notes) == 19
    assert metrics.top_voice_interval(notes) == pytest.approx((7 + 5) / 2)
    assert math.isnan(metrics.top_voice_interval(melody((60,))))


def test_polyphony_and_chord_onsets():
    notes = [*triads(1), Note(0.5, 72, 0.25)]
    assert metrics.polyphony(notes) == pytest.approx((3 * 4 + 4) / 5)
    assert metrics.chord_onset_share(notes) == pytest.approx(4 / 5)


def test_grid_shares_accept_quarter_and_triplet_grids():
    notes = [Note(0.0, 60, 0.25), Note(1 / 3, 62, 1 / 3), Note(0.7, 64, 0.1)]
    assert metrics.onset_grid_share(notes) == pytest.approx(2 / 3)
    assert metrics.duration_grid_share(notes) == pytest.approx(2 / 3)


def test_note_length_histogram_classes():
    notes = [Note(0.0, 60, 1.0), Note(1.0, 60, 1.5), Note(2.5, 60, 1 / 3), Note(3.0, 60, 0.9)]
    hist = metrics.note_length_histogram(notes)
    expected = np.zeros(12)
    expected[[2, 6, 11]] = [0.5, 0.25, 0.25]  # two quarters (0.9 snaps to 1), a dotted quarter, a triplet 8th
    np.testing.assert_allclose(hist, expected)


def test_groove_consistency_is_one_for_repeated_bars_and_lower_otherwise():
    assert metrics.groove_consistency(triads(3)) == 1.0
    varied = [*triads(1), Note(4.5, 60, 0.5), Note(6.25, 60, 0.5)]
    assert metrics.groove_consistency(varied) == pytest.approx(1 - 6 / 48)
    assert math.isnan(metrics.groove_consistency(triads(1)))


def test_transitions_ignore_the_key():
    piece = tonal_piece(np.random.default_rng(0))
    up_a_tritone = [replace(n, pitch=n.pitch + 6) for n in piece]
    matrix = metrics.pitch_class_transitions(piece)
    assert matrix.shape == (12, 12) and matrix.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.pitch_class_transitions(up_a_tritone), matrix)


def test_framewise_consistency_and_variance():
    assert metrics.pitch_consistency(triads(4)) == pytest.approx(1.0)
    assert metrics.pitch_variance(triads(4)) == pytest.approx(0.0)
    rising = [replace(n, pitch=n.pitch + 12 * (n.onset >= 12)) for n in triads(4)]  # up an octave in bar 4
    overlaps = metrics.window_overlaps(rising, "pitch")  # one-bar windows: bars 1, 2, 3, 4
    assert len(overlaps) == 3 and overlaps[:2] == pytest.approx([1.0, 1.0]) and overlaps[2] < 0.1
    assert metrics.pitch_variance(rising) > 0.0
    assert len(metrics.window_overlaps(rising, "duration")) == 2  # two-bar windows: bars 1-2, 2-3, 3-4
    assert metrics.duration_consistency(rising) == pytest.approx(1.0)
    assert math.isnan(metrics.pitch_consistency(triads(1)))


def test_order_sensitivity_flags():
    sensitive = {m.name for m in metrics.METRICS if m.order_sensitive}
    assert sensitive == {"top_voice_interval", "pitch_consistency", "pitch_variance", "pitch_class_transitions"}
