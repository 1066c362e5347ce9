"""Decoding: scaled samples -> playable notes, with every option's promise checked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_model import TINY_STATS

from bridge.chords import ChordVocabulary
from bridge.codec import FeatureStats, Note, notes_to_features
from bridge.decoding import DecodeOptions, decode, decode_one, fold_into_range
from bridge.errors import BridgeError

NOTES = [Note(0.0, 60, 1.0), Note(0.0, 64, 0.5), Note(0.5, 67, 0.25), Note(1.25, 72, 2.0)]


def scaled(features: np.ndarray, stats: FeatureStats = TINY_STATS) -> np.ndarray:
    return stats.scale(features)[None]


def test_round_trip_of_clean_features() -> None:
    (notes,) = decode(scaled(notes_to_features(NOTES)), TINY_STATS)
    assert [n.pitch for n in notes] == [60, 64, 67, 72]
    assert [n.onset for n in notes] == pytest.approx([0.0, 0.0, 0.5, 1.25], abs=1e-5)
    assert [n.duration for n in notes] == pytest.approx([1.0, 0.5, 0.25, 2.0], abs=1e-5)
    assert {n.velocity for n in notes} == {80}


def test_linear_encoding_round_trips() -> None:
    stats = FeatureStats((110.0, 0.0, 0.0), (1760.0, 4.0, 4.0), "linear")
    (notes,) = decode(scaled(notes_to_features(NOTES, "linear"), stats), stats)
    assert [n.pitch for n in notes] == [60, 64, 67, 72]


def test_values_beyond_the_range_are_clipped() -> None:
    x = np.array([[[5.0, 5.0, 5.0], [-5.0, -5.0, -5.0]]], np.float32)
    (notes,) = decode(x, TINY_STATS, DecodeOptions(min_duration=0.1))
    assert [n.pitch for n in notes] == [96, 36]
    assert [n.duration for n in notes] == pytest.approx([4.0, 0.1])
    assert [n.onset for n in notes] == pytest.approx([0.0, 0.0])  # a first delta is always 0; -1 clips to 0


def test_small_gaps_become_chords_or_the_minimum() -> None:
    features = np.array([[60, 1, 0], [62, 1, 0.01], [64, 1, 0.02], [65, 1, 0.5]], float)
    (notes,) = decode(scaled(features), TINY_STATS, DecodeOptions(min_delta=1 / 32))
    assert [n.onset for n in notes] == pytest.approx([0.0, 0.0, 1 / 32, 1 / 32 + 0.5], abs=1e-5)


@pytest.mark.parametrize("grid", [1 / 4, 1 / 12])
def test_grid_snaps_onsets_and_durations(grid: float) -> None:
    features = np.array([[60, 0.01, 0], [62, 0.3, 0.13], [64, 1.1, 0.4], [65, 0.7, 0.33]], float)
    (notes,) = decode(scaled(features), TINY_STATS, DecodeOptions(grid=grid))
    for n in notes:
        assert n.onset / grid == pytest.approx(round(n.onset / grid), abs=1e-6)
        assert n.duration / grid == pytest.approx(round(n.duration / grid), abs=1e-6)
        assert n.duration >= grid - 1e-9


def test_transpose_and_range() -> None:
    (notes,) = decode(scaled(notes_to_features(NOTES)), TINY_STATS, DecodeOptions(transpose=-2))
    assert [n.pitch for n in notes] == [58, 62, 65, 70]
    (notes,) = decode(scaled(notes_to_features(NOTES)), TINY_STATS, DecodeOptions(transpose=12, low=60, high=75))
    assert [n.pitch for n in notes] == [72, 64, 67, 72]


def test_chords_snap_in_the_samplers_classes_before_the_transposition() -> None:
    """The model wrote C-D-G in C major (its home key); snapped to G major's B-D-G, then moved up 2 to A."""
    run = [Note(1.0 + i, p, 1.0) for i, p in enumerate((60, 62, 64, 65, 67, 69, 71, 72))]
    notes = [Note(0.0, 60, 1.0), Note(0.0, 62, 1.0), Note(0.0, 67, 1.0), *run]
    chords = ChordVocabulary((0b10010001, 0b100010000100), (0.6, 0.4))  # C-E-G, G-B-D
    options = DecodeOptions(transpose=2, chords=chords, chord_classes=frozenset(range(12)))
    (decoded,) = decode(scaled(notes_to_features(notes)), TINY_STATS, options)
    assert [n.pitch for n in decoded[:3]] == [61, 64, 69]
    assert [n.pitch for n in decoded[3:]] == [n.pitch + 2 for n in run]
    (kept,) = decode(scaled(notes_to_features(notes)), TINY_STATS, DecodeOptions(transpose=2, chords=None))
    assert [n.pitch for n in kept[:3]] == [62, 64, 69]


@given(
    pitches=st.lists(st.integers(-30, 160), min_size=1, max_size=30),
    low=st.integers(0, 115),
    span=st.integers(0, 40),
)
def test_fold_into_range(pitches: list[int], low: int, span: int) -> None:
    high = min(low + span, 127)
    folded = fold_into_range(np.array(pitches), low, high)
    assert np.all((folded >= low) & (folded <= high))
    inside = (np.array(pitches) >= low) & (np.array(pitches) <= high)
    np.testing.assert_array_equal(folded[inside], np.array(pitches)[inside])
    if high - low >= 11:
        np.testing.assert_array_equal(folded % 12, np.array(pitches) % 12)


def test_velocity_fixed_or_humanized_and_seeded() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (3, 40, 3)).astype(np.float32)
    fixed = decode(x, TINY_STATS, DecodeOptions(velocity=100))
    assert {n.velocity for notes in fixed for n in notes} == {100}
    options = DecodeOptions(velocity=(60, 90))
    first, again, other = (decode(x, TINY_STATS, options, seed=s) for s in (1, 1, 2))
    velocities = [n.velocity for notes in first for n in notes]
    assert min(velocities) >= 60 and max(velocities) <= 90 and len(set(velocities)) > 10
    assert first == again and first != other


def test_channel_program_and_start() -> None:
    (notes,) = decode(scaled(notes_to_features(NOTES)), TINY_STATS, DecodeOptions(channel=9, program=5), start=4.0)
    assert notes[0].onset == pytest.approx(4.0) and {(n.channel, n.program) for n in notes} == {(9, 5)}


@given(
    data=st.lists(st.tuples(*[st.floats(-1.2, 1.2)] * 3), min_size=1, max_size=40),
    grid=st.sampled_from([None, 0.25, 1 / 12, 1 / 3]),
    min_duration=st.sampled_from([1 / 64, 1 / 16, 0.3]),
    low=st.integers(0, 100),
    transpose=st.integers(-24, 24),
)
def test_decoded_notes_keep_every_promise(
    data: list[tuple[float, float, float]], grid: float | None, min_duration: float, low: int, transpose: int
) -> None:
    options = DecodeOptions(min_duration=min_duration, grid=grid, low=low, high=low + 24, transpose=transpose)
    notes = decode_one(np.array(data, np.float32), TINY_STATS, options)
    onsets = [n.onset for n in notes]
    assert len(notes) == len(data) and onsets[0] == 0.0
    assert np.all(np.diff(onsets) >= -1e-9)
    assert all(n.duration >= min_duration - 1e-9 for n in notes)
    assert all(low <= n.pitch <= low + 24 for n in notes)
    if grid is not None:
        assert all(abs(n.onset / grid - round(n.onset / grid)) < 1e-6 for n in notes)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_duration": 0}, "min_duration must be positive"),
        ({"grid": 0}, "grid must be a positive number"),
        ({"low": 70, "high": 60}, "pitch range"),
        ({"velocity": 0}, "velocity must be"),
        ({"velocity": (90, 60)}, "velocity must be"),
        ({"channel": 16}, "channel must be"),
    ],
)
def test_option_refusals(options: dict, message: str) -> None:
    with pytest.raises(BridgeError, match=message):
        DecodeOptions(**options)


def test_decode_refuses_a_wrong_shape() -> None:
    with pytest.raises(BridgeError, match=r"shape \(n, L, 3\)"):
        decode(np.zeros((16, 3)), TINY_STATS)
