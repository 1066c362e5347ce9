"""The corpus prior on note lengths: counting, the grid's lattice, the weighing, the card's JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bridge.card import ModelCard
from bridge.codec import FeatureStats
from bridge.constraints import PitchConstraint
from bridge.errors import BridgeError
from bridge.note_lengths import MAX_CELL, NoteLengths, weigh
from bridge.schedule import NoiseSchedule

# Like the shipped corpus: eighths and quarters common, dotted quarters and halves rare, dotted eighths rarer.
CORPUS = {0.25: 140, 0.5: 380, 0.75: 8, 1.0: 360, 1.5: 20, 2.0: 50, 3.0: 12, 4.0: 30}


def corpus_lengths() -> NoteLengths:
    durations = np.repeat(list(CORPUS), list(CORPUS.values()))
    return NoteLengths.fit(np.stack([np.full_like(durations, 60.0), durations, np.zeros_like(durations)], axis=-1))


def test_fit_counts_shares_per_cell() -> None:
    shares = np.asarray(corpus_lengths().shares)
    assert len(shares) == MAX_CELL + 1 and shares.sum() == pytest.approx(1.0)
    assert shares[6] == pytest.approx(380 / 1000) and shares[9] == pytest.approx(8 / 1000)  # 1/2 and 3/4 beat
    long = NoteLengths.fit(np.array([[60.0, 40.0, 0.0], [60.0, 1.0, 0.0]]))
    assert long.shares[MAX_CELL] == 0.5  # 8 beats or more share the last cell
    with pytest.raises(BridgeError, match="empty"):
        NoteLengths.fit(np.zeros((0, 3)))


def test_lattice_gives_each_grid_length_the_share_of_its_cells() -> None:
    lengths, log_prior = corpus_lengths().lattice(0.25, 4.0)
    np.testing.assert_allclose(lengths, np.arange(1, 17) * 0.25)
    prior = dict(zip(lengths.tolist(), np.exp(log_prior).tolist(), strict=True))
    assert prior[0.5] == pytest.approx(0.38) and prior[0.75] == pytest.approx(0.008)
    assert prior[1.25] == pytest.approx(1e-4)  # never used: the floor, so still possible
    halves, half_prior = corpus_lengths().lattice(0.5, 2.0)
    np.testing.assert_allclose(halves, [0.5, 1.0, 1.5, 2.0])
    assert np.exp(half_prior)[0] == pytest.approx((140 + 380 + 8) / 1000)  # 1/4 and 3/4 go to their nearest, 1/2


def test_weigh_takes_the_common_length_between_two_and_keeps_a_clear_one() -> None:
    lengths, log_prior = corpus_lengths().lattice(0.25, 4.0)
    blurred = np.array([0.62, 0.7, 0.75, 0.8])  # the model's blur of an eighth and a quarter
    assert weigh(blurred, lengths, log_prior).tolist() == [0.5, 0.5, 1.0, 1.0]  # the nearer in octaves
    clear = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])  # lengths the corpus uses, hit exactly
    np.testing.assert_array_equal(weigh(clear, lengths, log_prior), clear)
    nearest = np.maximum(np.rint(blurred / 0.25), 1) * 0.25
    assert nearest.tolist() == [0.5, 0.75, 0.75, 0.75]  # what the plain grid does instead


def test_time_grid_weighs_durations_only_and_can_be_turned_off() -> None:
    stats = FeatureStats.fit(np.array([[36.0, 0.25, 0.0], [96.0, 4.0, 2.0]]), "log", time_encoding="log")
    x = stats.scale(np.array([[[60.0, 0.74, 0.74], [62.0, 1.5, 0.26]]]))
    weighed = PitchConstraint(grid=0.25).projection(stats, note_lengths=corpus_lengths())(x.copy())
    plain = PitchConstraint(grid=0.25, corpus_lengths=False).projection(stats, note_lengths=corpus_lengths())(x.copy())
    np.testing.assert_allclose(stats.unscale(weighed)[0, :, 1:], [[1.0, 0.75], [1.5, 0.25]], atol=1e-5)
    np.testing.assert_allclose(stats.unscale(plain)[0, :, 1:], [[0.75, 0.75], [1.5, 0.25]], atol=1e-5)


def test_json_round_trip_and_refusals() -> None:
    lengths = corpus_lengths()
    assert NoteLengths.from_dict(json.loads(json.dumps(lengths.to_dict()))) == lengths
    with pytest.raises(BridgeError, match="cells_per_beat"):
        NoteLengths.from_dict({"cells_per_beat": 4, "shares": [1.0]})
    with pytest.raises(BridgeError, match="summing to 1"):
        NoteLengths((0.5,) * (MAX_CELL + 1))


def test_the_card_carries_them_and_may_lack_them() -> None:
    stats = FeatureStats((36.0, 0.0, 0.0), (96.0, 4.0, 2.0))
    card = ModelCard(name="m", sha256="0" * 64, length=16, stats=stats, schedule=NoiseSchedule(),
                     note_lengths=corpus_lengths())  # fmt: skip
    data = json.loads(json.dumps(card.to_dict()))
    assert data["note_lengths"]["cells_per_beat"] == 12
    assert ModelCard.from_dict(data) == card
    del data["note_lengths"]
    assert ModelCard.from_dict(data).note_lengths is None
    with pytest.raises(BridgeError, match="note_lengths"):
        ModelCard.from_dict({**data, "note_lengths": {"shares": []}})
