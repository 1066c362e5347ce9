"""The corpus prior on onset gaps by beat phase: counting, the weighing along a phrase, the card's JSON."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.codec import FeatureStats
from bridge.constraints import PitchConstraint
from bridge.errors import BridgeError
from bridge.onset_gaps import CELLS_PER_BEAT, MAX_GAP_CELL, OnsetGaps

# Bars of the corpus's kind: eighths on the beat and its half, and sixteenths only in pairs that return to it.
BAR = [0.5, 0.5, 0.25, 0.25, 0.5, 1.0, 0.5, 0.25, 0.25]


def segments(gaps: list[float], count: int = 4) -> np.ndarray:
    """``count`` segments ``(count, len + 1, 3)`` whose notes start a chord (gap 0), then take ``gaps``."""
    row = np.array([0.0, *gaps])
    return np.stack([np.full_like(row, 60.0), np.full_like(row, 0.5), row], axis=-1)[None].repeat(count, axis=0)


def test_fit_counts_each_gap_from_the_phase_it_leaves() -> None:
    prior = OnsetGaps.fit(segments([0.0, *BAR]))
    shares = np.asarray(prior.shares)
    assert shares.shape == (CELLS_PER_BEAT, MAX_GAP_CELL + 1) and shares.sum() == pytest.approx(1.0)
    # 9 gaps. From the beat: 0.5 twice, 0.25 and 1.0 once; from its half: 0.5 twice, 0.25 once; from either
    # sixteenth off it: the 0.25 back.
    np.testing.assert_allclose(shares[0, [6, 3, 12]] * 9, [2, 1, 1], atol=1e-5)
    np.testing.assert_allclose(shares[6, [6, 3]] * 9, [2, 1], atol=1e-5)
    np.testing.assert_allclose(shares[[3, 9], 3] * 9, [1, 1], atol=1e-5)
    assert shares[:, 0].sum() == 0  # chord notes move nowhere and are not counted
    with pytest.raises(BridgeError, match="all start together"):
        OnsetGaps.fit(segments([0.0, 0.0]))


def test_weighing_returns_to_the_beat_where_the_plain_grid_drifts_off_it() -> None:
    """Blurred sixteenth-or-eighth estimates: the plain grid strands the phrase a sixteenth off the beat; the
    prior pairs each sixteenth with the one that comes back, and keeps gaps the estimate is sure of."""
    prior = OnsetGaps.fit(segments([0.0, *BAR * 4]))
    estimates = np.array([0.0, 0.30, 0.45, 0.5, 0.98, 0.5, 0.1])
    weighed = prior.weigh(estimates, 0.25, 2.0)
    plain = np.rint(estimates / 0.25) * 0.25
    np.testing.assert_allclose(weighed, [0.0, 0.25, 0.25, 0.5, 1.0, 0.5, 0.0])
    assert np.cumsum(plain)[-1] % 0.5 == 0.25 and np.cumsum(weighed)[-1] % 0.5 == 0.0
    batch = prior.weigh(np.stack([estimates, plain]).reshape(2, 1, -1), 0.25, 2.0)
    np.testing.assert_allclose(batch[0, 0], weighed)  # pieces of a batch are weighed each on its own
    np.testing.assert_allclose(prior.weigh(np.full(5, 0.5), 0.25, 2.0)[1:], 0.5)  # what the corpus does: kept
    np.testing.assert_allclose(prior.weigh(np.full(5, 0.75), 0.25, 2.0)[1:], 0.5)  # what it never does: pulled


def test_the_beat_is_counted_from_where_the_phrase_starts() -> None:
    """A phrase that starts a sixteenth off the beat (a continuation) returns to it: the same estimate that
    is an eighth from the beat is the sixteenth back from there, and each piece of a batch has its own start."""
    prior = OnsetGaps.fit(segments([0.0, *BAR * 4]))
    estimates = np.array([0.0, 0.45])
    np.testing.assert_allclose(prior.weigh(estimates, 0.25, 2.0), [0.0, 0.5])
    np.testing.assert_allclose(prior.weigh(estimates, 0.25, 2.0, start=0.25), [0.0, 0.25])
    batch = prior.weigh(np.tile(estimates, (2, 1, 1)), 0.25, 2.0, start=np.array([[0.0], [0.75]]))
    np.testing.assert_allclose(batch[:, 0, 1], [0.5, 0.25])


def test_echo_keeps_the_rhythm_the_phrase_set_out_with() -> None:
    """A gap between a sixteenth and an eighth: the corpus alone makes it the eighth it favours from the
    beat; a phrase that has moved on from the beat by sixteenths so far keeps to them with the echo."""
    prior = OnsetGaps.fit(segments([0.0, *BAR * 4]))
    estimates = np.array([0.0, *[0.25] * 8, 0.37])  # two beats of sixteenths, then the doubt from the beat
    assert prior.weigh(estimates, 0.25, 2.0)[-1] == 0.5
    np.testing.assert_allclose(prior.weigh(estimates, 0.25, 2.0, echo=True), [0.0, *[0.25] * 9])
    eighths = np.array([0.0, *[0.5] * 8, 0.37])  # a phrase of eighths keeps them too
    assert prior.weigh(eighths, 0.25, 2.0, echo=True)[-1] == 0.5
    batch = prior.weigh(np.stack([estimates, eighths]), 0.25, 2.0, echo=True)  # each phrase its own echo
    assert batch[:, -1].tolist() == [0.25, 0.5]


def test_a_prompts_gaps_are_kept_and_the_beat_runs_on_through_them() -> None:
    """A prompt's dotted eighth, which the corpus never takes, is kept, so the next note returns to the
    beat from where the prompt left it; off the grid (a triplet) too; and with the echo the phrase goes on
    in the prompt's rhythm."""
    prior = OnsetGaps.fit(segments([0.0, *BAR * 4]))
    estimates = np.array([0.0, 0.75, 0.45])
    np.testing.assert_allclose(prior.weigh(estimates, 0.25, 2.0), [0.0, 0.5, 0.5])
    np.testing.assert_allclose(prior.weigh(estimates, 0.25, 2.0, held=2), [0.0, 0.75, 0.25])
    triplets = np.array([0.0, 1 / 3, 1 / 3, 1 / 3, 0.45])
    np.testing.assert_allclose(prior.weigh(triplets, 0.25, 2.0, held=4), [0.0, 1 / 3, 1 / 3, 1 / 3, 0.5])
    dotted = np.array([0.0, 0.75, 0.75, 0.75, 0.75, 0.7])
    assert prior.weigh(dotted, 0.25, 2.0, held=5)[-1] == 0.5
    assert prior.weigh(dotted, 0.25, 2.0, held=5, echo=True)[-1] == 0.75


def test_card_json_round_trip_and_refusals() -> None:
    prior = OnsetGaps.fit(segments(BAR))
    assert OnsetGaps.from_dict(prior.to_dict()) == prior
    with pytest.raises(BridgeError, match="cells_per_beat"):
        OnsetGaps.from_dict({"cells_per_beat": 4, "shares": prior.to_dict()["shares"]})
    with pytest.raises(BridgeError, match="summing to 1"):
        OnsetGaps(tuple(tuple(0.0 for _ in row) for row in prior.shares))


def test_the_constraint_weighs_onsets_late_in_the_sampling_loop_unless_told_not_to() -> None:
    stats = FeatureStats.fit(np.array([[36.0, 0.25, 0.0], [96.0, 4.0, 2.0]]), "log")
    prior = OnsetGaps.fit(segments([0.0, *BAR * 4]))
    x = np.zeros((1, 7, 3), np.float32)
    x[0, :, 2] = np.array([0.0, 0.30, 0.45, 0.5, 0.98, 0.5, 0.1]) - 1.0  # gaps of 0..2 beats scaled to -1..1
    weighed = PitchConstraint(grid=0.25, onsets="corpus").projection(stats, onset_gaps=prior)(x.copy())
    plain = PitchConstraint(grid=0.25, onsets="grid").projection(stats, onset_gaps=prior)(x.copy())
    np.testing.assert_allclose(stats.unscale(weighed)[0, :, 2], [0.0, 0.25, 0.25, 0.5, 1.0, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(stats.unscale(plain)[0, 2, 2], 0.5, atol=1e-6)
    loop = PitchConstraint(grid=0.25).projection(stats, steps=8, onset_gaps=prior)  # weighs from call 7 on
    gaps = [stats.unscale(loop(x.copy()))[0, 2, 2] for _ in range(8)]
    assert gaps == [0.5] * 6 + [0.25] * 2 and stats.unscale(loop.finish(x.copy()))[0, 2, 2] == 0.25
    with pytest.raises(BridgeError, match="onsets must be one of echo, corpus, grid"):
        PitchConstraint(grid=0.25, onsets="swing")
