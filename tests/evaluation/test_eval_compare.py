"""Set comparisons, and the proof that the metrics work: real music passes, the baselines fail."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bridge.codec import Note
from evaluation import EvaluationError, EvaluationReport, evaluate, independent_notes, shuffled_pitches
from evaluation.compare import (
    frechet_distance,
    inter_set_distances,
    intra_set_distances,
    overlap_and_kl,
    overlap_area,
    split_halves,
)

finite = st.floats(-100, 100, allow_nan=False)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.integers(2, 30), elements=finite), arrays(np.float64, st.integers(2, 30), elements=finite))
def test_overlap_is_a_symmetric_share(a, b):
    oa = overlap_area(a, b)
    assert 0.0 <= oa <= 1.0 + 1e-9
    assert oa == pytest.approx(overlap_area(b, a))
    assert overlap_area(a, a) == pytest.approx(1.0)


def test_identical_sets_overlap_fully_and_far_sets_not_at_all():
    x = np.random.default_rng(0).normal(size=50)
    assert overlap_area(x, x.copy()) == pytest.approx(1.0)
    assert overlap_and_kl(x, x.copy())[1] == pytest.approx(0.0, abs=1e-12)
    assert overlap_area(x, x + 100.0) < 1e-6
    assert overlap_area(np.ones(10), np.ones(7)) == pytest.approx(1.0)  # constant features, e.g. all on the grid


def test_overlap_of_too_few_values_is_undefined():
    assert np.isnan(overlap_area(np.array([1.0, np.nan]), np.arange(5.0)))


@settings(max_examples=20, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 20), st.integers(1, 6)), elements=finite))
def test_frechet_of_identical_sets_is_zero(x):
    assert frechet_distance(x, x.copy()) == pytest.approx(0.0, abs=1e-6 * (1.0 + np.abs(x).max() ** 2))


def test_frechet_grows_with_the_shift():
    x = np.random.default_rng(1).normal(size=(40, 3))
    near, far = frechet_distance(x, x + 0.5), frechet_distance(x, x + 2.0)
    assert near == pytest.approx(3 * 0.25) and far == pytest.approx(3 * 4.0)


def test_intra_and_inter_set_distances():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    np.testing.assert_allclose(np.sort(intra_set_distances(x)), [1.0, np.sqrt(18.0), 5.0])
    assert inter_set_distances(x[:1], x).tolist() == pytest.approx([0.0, 5.0, 1.0])


def test_heldout_music_passes_every_metric(heldout_report: EvaluationReport):
    assert heldout_report.summary()["failed"] == []
    assert (heldout_report.samples, heldout_report.reference, heldout_report.splits) == (40, 60, 5)


def test_each_metric_separates_its_baselines_from_the_floor(heldout_report: EvaluationReport):
    """The report's own baseline columns fail where they must: a metric that lets them pass is broken."""
    scores = {s.name: s for s in heldout_report.scores}
    independent_passes = [name for name, s in scores.items() if s.passes(s.independent)]
    # On this quantized generator every duration sits on the grid, whatever the model does.
    assert independent_passes == ["duration_grid_share"]
    assert not [name for name, s in scores.items() if s.order_sensitive and s.passes(s.shuffled)]


def test_independent_notes_fail_as_samples(reference: list[list[Note]], training: list[list[Note]]):
    samples = independent_notes(training, np.random.default_rng(7))
    report = evaluate(samples, reference, seed=0, splits=2)
    passed = [name for name, ok in report.passes().items() if ok]
    assert len(passed) <= len(report.scores) // 4, passed
    assert not [s.name for s in report.scores if s.order_sensitive and s.passes()]


def test_shuffled_pitches_fail_every_order_sensitive_metric(reference: list[list[Note]], training: list[list[Note]]):
    report = evaluate(shuffled_pitches(training, np.random.default_rng(7)), reference, seed=0, splits=2)
    sensitive = {s.name: s.passes() for s in report.scores if s.order_sensitive}
    assert len(sensitive) == 6 and not any(sensitive.values()), sensitive
    assert report.passes()["scale_consistency"]  # the order-free statistics are still those of real music


def test_baselines_keep_what_they_should(training: list[list[Note]]):
    rng = np.random.default_rng(0)
    piece = training[0]
    shuffled = shuffled_pitches([piece], rng)[0]
    assert sorted(n.pitch for n in shuffled) == sorted(n.pitch for n in piece)
    assert sorted((n.onset, n.duration) for n in shuffled) == sorted((n.onset, n.duration) for n in piece)
    independent = independent_notes([piece], rng)[0]
    assert len(independent) == len(piece) and independent[0].onset == piece[0].onset
    assert {n.pitch for n in independent} <= {n.pitch for n in piece}


def test_reference_halves_keep_source_files_whole():
    groups = [i // 6 for i in range(60)]  # ten "files" of six segments
    first, second = split_halves(60, groups, np.random.default_rng(3))
    assert sorted(first + second) == list(range(60))
    assert {groups[i] for i in first}.isdisjoint({groups[i] for i in second})
    assert len(first) == len(second) == 30


def test_evaluation_is_seeded(reference: list[list[Note]]):
    groups = [i // 6 for i in range(len(reference))]
    report = evaluate(reference[:4], reference[:24], seed=3, reference_groups=groups[:24], splits=2)
    assert evaluate(reference[:4], reference[:24], seed=3, reference_groups=groups[:24], splits=2) == report


def test_too_few_pieces_is_a_clear_error(reference: list[list[Note]]):
    with pytest.raises(EvaluationError, match="two halves"):
        evaluate(reference[:5], reference[:3])
    with pytest.raises(EvaluationError, match="at least 2 sample"):
        evaluate(reference[:1], reference)
