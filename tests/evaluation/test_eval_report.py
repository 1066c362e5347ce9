"""The pass rule, the table and the JSON of a report."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from evaluation import EvaluationReport, MetricScore, format_table, write_json, write_table

NAN = math.nan


@pytest.mark.parametrize(
    ("score", "passes"),
    [
        (MetricScore("oa", 0.80, heldout=0.90, independent=0.30, shuffled=0.90), True),
        (MetricScore("oa", 0.65, heldout=0.90, independent=0.10, shuffled=0.90), False),  # under 0.7
        (MetricScore("oa", 0.84, heldout=0.90, independent=0.80, shuffled=0.90), False),  # not halfway
        (MetricScore("oa", 0.86, heldout=0.90, independent=0.80, shuffled=0.90), True),
        (MetricScore("oa", 1.00, heldout=1.00, independent=1.00, shuffled=1.00), True),  # nothing to tell apart
        (MetricScore("seq", 0.84, heldout=0.90, independent=0.20, shuffled=0.80, order_sensitive=True), False),
        (MetricScore("seq", 0.86, heldout=0.90, independent=0.20, shuffled=0.80, order_sensitive=True), True),
        (MetricScore("fd", 15.0, heldout=1.0, independent=40.0, shuffled=9.0, lower_is_better=True), True),
        (MetricScore("fd", 25.0, heldout=1.0, independent=40.0, shuffled=9.0, lower_is_better=True), False),
        (MetricScore("fd", 6.0, 1.0, 40.0, 9.0, order_sensitive=True, lower_is_better=True), False),
        (MetricScore("oa", NAN, heldout=0.90, independent=0.30, shuffled=0.90), False),
    ],
)
def test_pass_rule(score: MetricScore, passes: bool):
    assert score.passes() is passes


def test_pass_rule_judges_other_values():
    score = MetricScore("oa", 0.9, heldout=0.9, independent=0.3, shuffled=0.9)
    assert score.passes() and not score.passes(score.independent)


def report() -> EvaluationReport:
    scores = (
        MetricScore("pitch_range", 0.85, 0.9, 0.1, 0.9),
        MetricScore("pitch_class_transitions", 0.5, 0.9, 0.2, 0.6, order_sensitive=True),
        MetricScore("frechet_distance", NAN, 1.5, 40.0, 9.0, order_sensitive=True, lower_is_better=True),
    )
    return EvaluationReport(scores, samples=8, reference=12, splits=5, seed=3)


def test_summary_names_the_failures():
    summary = report().summary()
    assert (summary["passed"], summary["total"]) == (1, 3)
    assert summary["failed"] == ["pitch_class_transitions", "frechet_distance"]


def test_table_shows_every_set_and_the_verdict():
    stream = io.StringIO()
    write_table(report(), stream)
    lines = stream.getvalue().splitlines()
    assert lines[0].split() == ["metric", "sample", "held-out", "indep.", "shuffled", "pass"]
    assert lines[1].split() == ["pitch_range", "0.850", "0.900", "0.100", "0.900", "yes"]
    assert lines[2].split()[:2] == ["pitch_class_transitions", "*"] and lines[2].endswith("NO")
    assert "n/a" in lines[3] and "(lower)" in lines[3]
    assert "passed 1 of 3" in stream.getvalue() and stream.getvalue() == format_table(report())


def test_json_is_strict_and_complete(tmp_path: Path):
    path = tmp_path / "eval.json"
    write_json(report(), path)
    data = json.loads(path.read_text())
    json.dumps(data, allow_nan=False)  # NaN became null
    assert data["pieces"] == {"sample": 8, "reference": 12} and data["splits"] == 5 and data["seed"] == 3
    assert data["scores"][2]["sample"] is None and data["scores"][0]["passes"] is True
    assert data["summary"]["failed"] == ["pitch_class_transitions", "frechet_distance"]


@pytest.mark.parametrize(
    ("score", "flagged"),
    [
        (MetricScore("oa", 0.8, heldout=0.85, independent=0.30, shuffled=0.85), False),
        (MetricScore("oa", 0.8, heldout=0.85, independent=0.89, shuffled=0.85), True),  # noise scores as music
        (MetricScore("seq", 0.8, heldout=0.85, independent=0.3, shuffled=0.85, order_sensitive=True), True),
        (MetricScore("seq", 0.8, heldout=0.85, independent=0.3, shuffled=0.80, order_sensitive=True), False),
        (MetricScore("oa", 0.8, heldout=0.85, independent=0.3, shuffled=0.90), False),  # order-free: shuffled is real
    ],
)
def test_a_metric_a_baseline_passes_is_flagged(score: MetricScore, flagged: bool):
    assert score.baseline_passes() is flagged


def test_flagged_metrics_are_marked_in_table_and_summary():
    flagged = MetricScore("pitch_variance", 0.8, 0.85, 0.30, 0.86, order_sensitive=True)
    scores = (*report().scores, flagged)
    text = format_table(EvaluationReport(scores, samples=8, reference=12, splits=5, seed=3))
    assert text.splitlines()[4].endswith("NO !") and "cannot tell music from noise" in text
    assert report().summary()["baseline_passes"] == [] and "cannot tell" not in format_table(report())
    summary = EvaluationReport(scores, samples=8, reference=12, splits=5, seed=3).summary()
    assert summary["baseline_passes"] == ["pitch_variance"]
