"""bridge.codec: notes <-> features <-> scaled segments, and the statistics that travel as JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bridge.codec import (
    A4_HZ,
    FeatureStats,
    Note,
    features_to_notes,
    merge_unisons,
    notes_to_features,
    pitch_to_value,
    segment,
    sort_notes,
    time_to_value,
    value_to_pitch,
    value_to_time,
)
from bridge.errors import BridgeError

GRID = 480  # ticks per beat of the time grid the round trips are exact on

notes_on_grid = st.lists(
    st.builds(
        lambda onset, pitch, duration: Note(onset / GRID, pitch, duration / GRID),
        st.integers(0, 256 * GRID),
        st.integers(0, 127),
        st.integers(0, 16 * GRID),
    ),
    min_size=1,
    max_size=80,
)
chordal_notes = st.lists(  # few distinct onsets, so chords (zero deltas) and equal keys are common
    st.builds(
        lambda onset, pitch, duration: Note(onset / 4, pitch, duration / 4),
        st.integers(0, 8),
        st.integers(58, 64),
        st.integers(1, 8),
    ),
    min_size=1,
    max_size=30,
)


def on_grid(notes: list[Note]) -> list[tuple[int, int, int]]:
    """(onset, pitch, duration) in grid ticks, in codec order; fails loudly if a time is off the grid."""
    out = []
    for x in sort_notes(notes):
        onset, duration = x.onset * GRID, x.duration * GRID
        assert abs(onset - round(onset)) < 1e-6 and abs(duration - round(duration)) < 1e-9, x
        out.append((round(onset), x.pitch, round(duration)))
    return sorted(out)


@pytest.mark.parametrize("encoding", ["log", "linear"])
@settings(max_examples=150, deadline=None)
@given(notes=st.one_of(notes_on_grid, chordal_notes))
def test_notes_features_notes_round_trip(encoding: str, notes: list[Note]) -> None:
    features = notes_to_features(notes, encoding)
    assert features.shape == (len(notes), 3) and features.dtype == np.float64
    start = min(x.onset for x in notes)
    back = features_to_notes(features, encoding, start=start)
    assert on_grid(back) == on_grid(notes)
    assert all((x.velocity, x.channel, x.program) == (80, 0, 0) for x in back)


@settings(max_examples=100, deadline=None)
@given(notes=st.one_of(notes_on_grid, chordal_notes))
def test_feature_columns(notes: list[Note]) -> None:
    """pitch, duration, delta = onset minus the previous onset (0 in a chord, 0 first), in codec order."""
    features = notes_to_features(notes)
    ordered = sorted(notes, key=lambda x: (x.onset, x.pitch))
    np.testing.assert_array_equal(features[:, 0], [x.pitch for x in ordered])
    np.testing.assert_array_equal(np.sort(features[:, 1]), np.sort([x.duration for x in notes]))
    onsets = np.array([x.onset for x in ordered])
    assert features[0, 2] == 0.0
    np.testing.assert_allclose(features[1:, 2], onsets[1:] - onsets[:-1], atol=1e-12)
    assert (features[:, 2] >= 0).all()
    linear = notes_to_features(notes, "linear")
    np.testing.assert_allclose(linear[:, 0], A4_HZ * 2 ** ((features[:, 0] - 69) / 12))
    np.testing.assert_array_equal(linear[:, 1:], features[:, 1:])


def test_features_of_a_small_piece() -> None:
    notes = [Note(1.0, 67, 1.0), Note(0.0, 64, 0.5), Note(0.0, 60, 2.0), Note(2.5, 72, 0.25)]
    np.testing.assert_array_equal(
        notes_to_features(notes),
        [[60, 2.0, 0.0], [64, 0.5, 0.0], [67, 1.0, 1.0], [72, 0.25, 1.5]],
    )
    assert notes_to_features([]).shape == (0, 3)
    assert features_to_notes(np.zeros((0, 3))) == []


def test_merge_unisons_plays_each_pitch_once_at_a_time() -> None:
    doubled = [Note(0, 60, 1, channel=1), Note(0, 60, 2, velocity=90, channel=2), Note(0, 64, 1)]
    restruck = [Note(1, 67, 4), Note(2, 67, 1), Note(2.5, 67, 0.5)]  # struck again at 2 and 2.5 while sounding
    assert merge_unisons([*restruck, *doubled]) == [
        Note(0, 60, 2, velocity=90, channel=2),  # the longer of the unison stays whole
        Note(0, 64, 1),
        Note(1, 67, 1),  # ends where it is struck again
        Note(2, 67, 0.5),
        Note(2.5, 67, 0.5),
    ]
    apart = [Note(0, 60, 1), Note(1, 60, 1), Note(0, 72, 2)]  # touching, and an octave: all stay
    assert merge_unisons(apart) == sort_notes(apart) and merge_unisons([]) == []


@given(chordal_notes)
def test_merged_notes_never_sound_one_pitch_twice(notes: list[Note]) -> None:
    merged = merge_unisons(notes)
    assert merged == sort_notes(merged) and {(n.onset, n.pitch) for n in merged} == {(n.onset, n.pitch) for n in notes}
    assert len(merged) == len({(n.onset, n.pitch) for n in merged})
    for a in merged:
        later = [n.onset for n in merged if n.pitch == a.pitch and n.onset > a.onset]
        assert a.onset + a.duration <= min(later, default=math.inf)


def test_pitch_encodings() -> None:
    assert pitch_to_value(69, "linear") == pytest.approx(440.0)
    assert pitch_to_value(81, "linear") == pytest.approx(880.0)
    assert pitch_to_value(60, "linear") == pytest.approx(261.6255653, rel=1e-9)
    np.testing.assert_array_equal(value_to_pitch(pitch_to_value(np.arange(128), "linear"), "linear"), np.arange(128))
    np.testing.assert_array_equal(value_to_pitch(np.arange(128.0)), np.arange(128))
    assert value_to_pitch(np.array([-30.0, 200.0])).tolist() == [0, 127]  # clipped to MIDI
    assert value_to_pitch(np.array([0.0, -5.0, 1e6]), "linear").tolist() == [0, 0, 127]
    for bad in (lambda: pitch_to_value(60, "mel"), lambda: value_to_pitch(60, "mel")):
        with pytest.raises(BridgeError, match="'mel'"):
            bad()


@settings(max_examples=100, deadline=None)
@given(pitch=st.integers(0, 127), detune=st.floats(-0.49, 0.49))
def test_decoding_snaps_to_the_nearest_note(pitch: int, detune: float) -> None:
    """A value up to 49 cents off (in either encoding) decodes to the intended MIDI note."""
    assert value_to_pitch(pitch + detune, "log") == pitch
    assert value_to_pitch(pitch_to_value(pitch + detune, "linear"), "linear") == pitch


def test_features_to_notes_options() -> None:
    features = np.array([[60.0, 1.0, 3.0], [64.0, -0.5, 0.5], [67.0, 2.0, -1.0], [72.0, 0.25, 0.0]])
    notes = features_to_notes(features, start=8.0, velocity=[10, 20, 30, 40], channel=3, program=40)
    # the first note sits at start whatever its delta; negative deltas and durations clip to 0
    assert notes == [
        Note(8.0, 60, 1.0, 10, 3, 40),
        Note(8.5, 64, 0.0, 20, 3, 40),
        Note(8.5, 67, 2.0, 30, 3, 40),
        Note(8.5, 72, 0.25, 40, 3, 40),
    ]
    for bad in (np.zeros((4, 2)), np.zeros(3), np.zeros((2, 4, 3))):
        with pytest.raises(BridgeError, match="shape"):
            features_to_notes(bad)


def test_segment() -> None:
    f = np.arange(30, dtype=np.float64).reshape(10, 3)
    segs = segment(f, 4)
    assert segs.shape == (2, 4, 3)  # the 2-note tail is dropped
    np.testing.assert_array_equal(segs[1, 1:], f[5:8])
    assert (segs[:, 0, 2] == 0).all()  # each window starts its own time origin
    np.testing.assert_array_equal(segs[:, 0, :2], f[[0, 4], :2])
    assert f[4, 2] == 14  # the input is not changed
    overlapping = segment(f, 4, hop=2)
    assert overlapping.shape == (4, 4, 3)
    np.testing.assert_array_equal(overlapping[3, 1:], f[7:10])
    assert segment(f, 10).shape == (1, 10, 3)
    assert segment(f, 11).shape == (0, 11, 3)
    assert segment(f.astype(np.float32), 4).dtype == np.float32
    for length, hop in ((0, None), (4, -1), (-2, 2)):
        with pytest.raises(BridgeError, match="positive"):
            segment(f, length, hop)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 200), length=st.integers(1, 40), hop=st.integers(1, 40))
def test_segment_windows(n: int, length: int, hop: int) -> None:
    f = np.random.default_rng(n).random((n, 3))
    segs = segment(f, length, hop)
    count = max(0, (n - length) // hop + 1)
    assert segs.shape == (count, length, 3)
    for k in range(count):
        window = f[k * hop : k * hop + length].copy()
        window[0, 2] = 0.0
        np.testing.assert_array_equal(segs[k], window)


def test_fit_scale_unscale() -> None:
    f = np.array([[[40.0, 0.5, 0.0], [80.0, 4.0, 2.0]], [[60.0, 1.0, 1.0], [50.0, 2.0, 0.5]]])
    stats = FeatureStats.fit(f)
    assert stats.low == (40.0, 0.0, 0.0)  # time features start at 0, as in the seed
    assert stats.high == (80.0, 4.0, 2.0)
    scaled = stats.scale(f)
    assert scaled.dtype == np.float32 and scaled.shape == f.shape
    assert scaled.min() >= -1.0 and scaled.max() <= 1.0
    np.testing.assert_allclose(scaled[0, 0], [-1.0, -0.75, -1.0])
    np.testing.assert_allclose(scaled[0, 1], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(stats.unscale(scaled), f, atol=1e-5)
    # outside the training range: scale extrapolates, unscale clips to the range
    np.testing.assert_allclose(stats.unscale(np.array([[3.0, -7.0, 0.0]])), [[80.0, 0.0, 1.0]])
    constant = FeatureStats.fit(np.array([[60.0, 0.0, 0.0]] * 3))  # a constant feature still gets a range
    assert all(h > lo for lo, h in zip(constant.low, constant.high, strict=True))
    with pytest.raises(BridgeError, match="empty"):
        FeatureStats.fit(np.zeros((0, 3)))


finite = st.floats(-1e4, 1e4, allow_nan=False)
ranges = st.tuples(finite, st.floats(1e-3, 1e4)).map(lambda lw: (lw[0], lw[0] + lw[1]))
stats_strategy = st.builds(
    lambda r, enc, gain: FeatureStats(tuple(x[0] for x in r), tuple(x[1] for x in r), enc, pitch_gain=gain),  # type: ignore[arg-type]
    st.tuples(ranges, ranges, ranges),
    st.sampled_from(["log", "linear"]),
    st.sampled_from([1.0, 0.5, 3.0]),
)


@settings(max_examples=100, deadline=None)
@given(stats=stats_strategy, unit=hnp.arrays(np.float64, (5, 3), elements=st.floats(0.0, 1.0)))
def test_scale_unscale_round_trip(stats: FeatureStats, unit: np.ndarray) -> None:
    lo, hi = np.array(stats.low), np.array(stats.high)
    features = lo + unit * (hi - lo)  # anywhere in the range
    scaled = stats.scale(features)
    assert scaled.dtype == np.float32
    assert np.all(np.abs(scaled) <= stats.bounds + 1e-6)
    # float32 in between: the error is a few float32 ulps of the range width
    np.testing.assert_allclose(stats.unscale(scaled), features, rtol=0, atol=1e-6 * float(np.max(hi - lo + np.abs(lo))))


@settings(max_examples=100, deadline=None)
@given(stats=stats_strategy)
def test_stats_json_round_trip(stats: FeatureStats) -> None:
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["encoding"] == stats.encoding
    assert list(data["low"]) == ["pitch", "duration", "delta"]
    assert FeatureStats.from_dict(data) == stats


def test_pitch_gain_stretches_pitch_alone() -> None:
    """Gain g: the scaled pitch is g times the gain-1 one, times untouched, and decoding undoes it."""
    f = np.array([[40.0, 0.5, 0.0], [80.0, 4.0, 2.0], [61.0, 1.0, 0.25]])
    plain, stretched = FeatureStats.fit(f), FeatureStats.fit(f, pitch_gain=3.0)
    np.testing.assert_allclose(stretched.scale(f), plain.scale(f) * [3.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(stretched.unscale(stretched.scale(f)), f, atol=1e-5)
    np.testing.assert_allclose(stretched.scale_pitch(f[:, 0]), stretched.scale(f)[:, 0], atol=1e-6)
    np.testing.assert_allclose(stretched.unscale(np.array([[4.0, 0.0, 0.0]]))[0, 0], 80.0)  # clipped to the range
    assert "pitch_gain" not in plain.to_dict()  # files from before the gain read and rebuild unchanged
    assert FeatureStats.from_dict(stretched.to_dict()).pitch_gain == 3.0
    with pytest.raises(BridgeError, match=r"pitch_gain must lie in 0\.1 \.\. 10, got 0\.0"):
        FeatureStats.fit(f, pitch_gain=0.0)


def test_stats_errors_name_the_problem() -> None:
    good = FeatureStats((30.0, 0.0, 0.0), (90.0, 4.0, 2.0)).to_dict()
    with pytest.raises(BridgeError, match="'scale'"):
        FeatureStats.from_dict({**good, "scale": 2})
    with pytest.raises(BridgeError, match="'encoding'"):
        FeatureStats.from_dict({"low": good["low"], "high": good["high"]})
    with pytest.raises(BridgeError, match="'delta'"):
        FeatureStats.from_dict({**good, "high": {"pitch": 1.0, "duration": 1.0}})
    with pytest.raises(BridgeError, match="'mel'"):
        FeatureStats.from_dict({**good, "encoding": "mel"})
    with pytest.raises(BridgeError, match="high > low"):
        FeatureStats((30.0, 0.0, 0.0), (90.0, 0.0, 2.0))
    with pytest.raises(BridgeError, match="3 ranges"):
        FeatureStats((30.0, 0.0), (90.0, 4.0))  # type: ignore[arg-type]


def test_note_order_is_onset_then_pitch() -> None:
    notes = [Note(1.0, 50, 1.0), Note(0.0, 70, 1.0), Note(1.0, 40, 9.0), Note(0.0, 71, 0.1)]
    assert [(x.onset, x.pitch) for x in sort_notes(notes)] == [(0.0, 70), (0.0, 71), (1.0, 40), (1.0, 50)]


def test_time_quantile_keeps_common_note_lengths_apart() -> None:
    """A rare 16-beat fermata must not squeeze quarters and eighths together: the high is the quantile."""
    features = np.array([[60.0, 0.5, 0.5]] * 990 + [[62.0, 1.0, 1.0]] * 9 + [[64.0, 16.0, 8.0]])
    stats = FeatureStats.fit(features, "log", time_quantile=0.995)
    assert stats.high[1:] == (1.0, 1.0) and stats.high[0] == 64.0
    assert FeatureStats.fit(features, "log").high[1:] == (16.0, 8.0)
    np.testing.assert_allclose(stats.unscale(stats.scale(features[-1:])), [[64.0, 1.0, 1.0]])  # clips when decoded
    with pytest.raises(BridgeError, match="time_quantile"):
        FeatureStats.fit(features, "log", time_quantile=0.2)


def test_log_time_puts_note_values_evenly_apart() -> None:
    """Linear scaling puts an eighth 1/4 as far from a quarter as a half is from a whole; log time, about as far."""
    features = np.array([[60.0, d, g] for d, g in [(0.25, 0.0), (0.5, 0.25), (1.0, 0.5), (2.0, 1.0), (4.0, 2.0)]])
    gaps = {}
    for encoding in ("linear", "log"):
        stats = FeatureStats.fit(features, "log", time_encoding=encoding)
        gaps[encoding] = np.diff(stats.scale(features)[:, 1])
        np.testing.assert_allclose(stats.unscale(stats.scale(features)), features, atol=1e-5)
    np.testing.assert_allclose(gaps["linear"][-1] / gaps["linear"][0], 8.0)
    assert gaps["log"].max() / gaps["log"].min() < 1.2
    log = FeatureStats.fit(features, "log", time_encoding="log")
    assert log.low[1:] == (-4.0, -4.0)  # 0 beats (a chord's gap) is the bottom of the range
    assert log.scale(np.array([[60.0, 0.0, 0.0]]))[0, 1:].tolist() == [-1.0, -1.0]
    np.testing.assert_allclose(log.unscale(np.array([[0.0, -3.0, 9.0]]))[0, 1:], [0.0, 2.0])  # clipped to the range


@settings(max_examples=50, deadline=None)
@given(beats=hnp.arrays(np.float64, 8, elements=st.floats(0.0, 64.0)))
def test_time_values_round_trip(beats: np.ndarray) -> None:
    for encoding in ("linear", "log"):
        np.testing.assert_allclose(value_to_time(time_to_value(beats, encoding), encoding), beats, atol=1e-9)


def test_time_encoding_in_json() -> None:
    stats = FeatureStats.fit(np.array([[40.0, 1.0, 0.0], [80.0, 2.0, 1.0]]), "log", time_encoding="log")
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["time_encoding"] == "log" and FeatureStats.from_dict(data) == stats
    del data["time_encoding"]  # a card or dataset written before the option: linear times
    assert FeatureStats.from_dict(data).time_encoding == "linear"
    with pytest.raises(BridgeError, match="'cubic'"):
        FeatureStats.from_dict({**data, "time_encoding": "cubic"})
    with pytest.raises(BridgeError, match="'cubic'"):
        time_to_value(np.ones(2), "cubic")
