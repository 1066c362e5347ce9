"""Evaluation of generated music against held-out real music (``dmc evaluate``), numpy only.

Yang & Lerch 2020 and Mittal et al. 2021 metrics, each shown beside the held-out noise floor and
two baselines that must fail.
"""

from evaluation.baselines import independent_notes, shuffled_pitches
from evaluation.compare import evaluate, frechet_distance, overlap_area
from evaluation.errors import EvaluationError
from evaluation.metrics import METRICS, Metric
from evaluation.report import CRITERION, EvaluationReport, MetricScore, format_table, write_json, write_table

__all__ = [
    "CRITERION",
    "METRICS",
    "EvaluationError",
    "EvaluationReport",
    "Metric",
    "MetricScore",
    "evaluate",
    "format_table",
    "frechet_distance",
    "independent_notes",
    "overlap_area",
    "shuffled_pitches",
    "write_json",
    "write_table",
]
