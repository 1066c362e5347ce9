"""Key/scale and range constraints: parsing, the projection's properties, and notes sampled under them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.codec import FeatureStats, value_to_pitch
from bridge.constraints import PitchConstraint, parse_scale
from bridge.decoding import decode
from bridge.errors import BridgeError
from bridge.runtime import Denoiser
from bridge.samplers import make_sampler, sample

C_MAJOR = {0, 2, 4, 5, 7, 9, 11}


@pytest.mark.parametrize(
    ("text", "classes"),
    [
        ("C major", C_MAJOR),
        ("  c   Major ", C_MAJOR),
        ("G", {7, 9, 11, 0, 2, 4, 6}),
        ("F# minor", {6, 8, 9, 11, 1, 2, 4}),
        ("Bb dorian", {10, 0, 1, 3, 5, 7, 8}),
        ("E♭ major", {3, 5, 7, 8, 10, 0, 2}),
        ("Cb major", {11, 1, 3, 4, 6, 8, 10}),
        ("b minor", {11, 1, 2, 4, 6, 7, 9}),
        ("A harmonic minor", {9, 11, 0, 2, 4, 5, 8}),
        ("D minor pentatonic", {2, 5, 7, 9, 0}),
        ("0,2,4,5,7,9,11", C_MAJOR),
        ("0, 3, 7", {0, 3, 7}),
    ],
)
def test_parse_scale(text: str, classes: set[int]) -> None:
    assert parse_scale(text) == frozenset(classes)


@pytest.mark.parametrize("text", ["H major", "C foo", "0,12", "", "C# #minor"])
def test_parse_scale_refuses_with_examples(text: str) -> None:
    with pytest.raises(BridgeError, match=r"C major|0\.\.11"):
        parse_scale(text)


def test_constraint_refusals() -> None:
    with pytest.raises(BridgeError, match="0 <= low <= high <= 127"):
        PitchConstraint(low=80, high=60)
    with pytest.raises(BridgeError, match=r"pitch classes in 0\.\.11"):
        PitchConstraint(frozenset())
    stats = FeatureStats((40.0, 0.0, 0.0), (80.0, 4.0, 4.0))
    with pytest.raises(BridgeError, match=r"no allowed pitch .* lies in the model's pitch range"):
        PitchConstraint.parse("C major", 90, 100).projection(stats)


def test_allowed_pitches() -> None:
    allowed = PitchConstraint.parse("C major", 59, 65).allowed()
    np.testing.assert_array_equal(allowed, [59, 60, 62, 64, 65])


stats_strategy = st.builds(
    lambda lo, span, encoding, gain: FeatureStats(
        (float(lo) if encoding == "log" else 440.0 * 2 ** ((lo - 69) / 12), 0.0, 0.0),
        (float(lo + span) if encoding == "log" else 440.0 * 2 ** ((lo + span - 69) / 12), 4.0, 4.0),
        encoding,
        pitch_gain=gain,
    ),
    st.integers(0, 90),
    st.integers(12, 37),
    st.sampled_from(["log", "linear"]),
    st.sampled_from([1.0, 3.0]),
)


@given(
    stats=stats_strategy,
    classes=st.frozensets(st.integers(0, 11), min_size=1),
    values=st.lists(st.floats(-4.0, 4.0, width=32), min_size=1, max_size=50),
)
def test_projection_lands_on_the_nearest_allowed_pitch(
    stats: FeatureStats, classes: frozenset[int], values: list[float]
) -> None:
    projection = PitchConstraint(classes).pitch_projection(stats)
    x = np.zeros((len(values), 3), np.float32)
    x[:, 0] = values
    projected = projection(x.copy())
    pitches = value_to_pitch(stats.unscale(projected)[:, 0], stats.encoding)
    assert set((pitches % 12).tolist()) <= classes
    np.testing.assert_array_equal(projection(projected.copy()), projected)  # idempotent
    distance = np.abs(projected[:, :1] - x[:, :1])
    assert np.all(distance <= np.abs(projection.values[None, :] - x[:, :1]).min(axis=1, keepdims=True) + 1e-6)


@pytest.mark.parametrize("project_during", [True, False])
@pytest.mark.parametrize("name", ["ddpm", "dpm++"])
def test_every_sampled_note_obeys_the_constraint(tiny_denoiser: Denoiser, name: str, project_during: bool) -> None:
    constraint = PitchConstraint.parse("D dorian", 50, 70)
    sampler = make_sampler(name, tiny_denoiser.card)
    out = sample(tiny_denoiser, sampler, 8, None, seed=4, constraint=constraint, project_during=project_during)
    pitches = [n.pitch for notes in decode(out, tiny_denoiser.card.stats) for n in notes]
    assert len(pitches) == 8 * 16
    assert set(pitches) <= set(constraint.allowed().tolist())


def test_projecting_during_sampling_changes_the_composition(tiny_denoiser: Denoiser) -> None:
    constraint = PitchConstraint.parse("C major pentatonic", 48, 84)
    runs = [
        sample(tiny_denoiser, make_sampler("ddpm", tiny_denoiser.card), 4, None, seed=5,
               constraint=constraint, project_during=during)
        for during in (True, False)
    ]
    assert not np.array_equal(runs[0], runs[1])
    # Pitch is projected; with no grid the times are only held in the training range, so (the tiny model
    # treats the features independently) they differ only where a path reached past it.
    times = [run[..., 1:] for run in runs]
    assert all(np.abs(t).max() <= 1.0 for t in times)
    assert 0.9 < np.isclose(times[0], times[1], atol=1e-5).mean() < 1.0


@pytest.mark.parametrize("time_encoding", ["linear", "log"])
def test_time_grid_keeps_durations_and_gaps_on_the_grid(time_encoding: str) -> None:
    stats = FeatureStats.fit(np.array([[36.0, 0.25, 0.0], [96.0, 16.0, 8.0]]), "log", time_encoding=time_encoding)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 32, 3)).astype(np.float32)
    PitchConstraint(grid=0.25).projection(stats)(x)
    beats = stats.unscale(x)[..., 1:]
    np.testing.assert_allclose(beats / 0.25, np.rint(beats / 0.25), atol=1e-3)
    assert beats[..., 0].min() >= 0.25 - 1e-4  # no note shorter than one grid step


def test_auto_key_fits_each_piece_then_keeps_to_it() -> None:
    """After the settle steps each piece keeps to the key its x0 leaned toward: here E minor and B-flat major."""
    stats = FeatureStats((36.0, 0.0, 0.0), (96.0, 16.0, 8.0))
    leaning = {0: [64, 66, 67, 69, 71, 72, 75, 76], 1: [70, 72, 74, 75, 77, 79, 81, 82]}
    x = np.zeros((2, 1, 48, 3), np.float32)
    for piece, pitches in leaning.items():
        x[piece, 0, :, 0] = stats.scale(np.array([[p, 0, 0] for p in pitches * 6], float))[:, 0]
    projection = PitchConstraint.parse("auto").projection(stats, steps=8)  # settles after 2 calls
    projection(x.copy())
    projection(x.copy())
    assert projection.chosen_keys() == []
    noise = np.random.default_rng(0).uniform(-1, 1, x.shape).astype(np.float32)
    projection(x)
    assert projection.chosen_keys() == [(4, "minor"), (10, "major")]
    projection(noise)
    pcs = value_to_pitch(stats.unscale(noise[..., 0:1].repeat(3, -1))[..., 0], "log") % 12
    assert set(pcs[0].ravel()) <= {4, 6, 7, 9, 11, 0, 2, 3} and set(pcs[1].ravel()) <= {10, 0, 2, 3, 5, 7, 9}
