"""Evaluation of generated music against held-out real music (``dmc evaluate``), numpy only.

Yang & Lerch 2020 and Mittal et al. 2021 metrics, each shown beside the held-out noise floor and
two baselines that must fail. The re-exports load on first use, so registering the ``evaluate``
command keeps ``dmc`` start-up free of numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluation.baselines import independent_notes, shuffled_pitches
    from evaluation.compare import evaluate, frechet_distance, overlap_area
    from evaluation.errors import EvaluationError
    from evaluation.metrics import METRICS, Metric
    from evaluation.report import CRITERION, EvaluationReport, MetricScore, format_table, write_json, write_table
    from evaluation.sources import PieceSet, load_pieces

__all__ = [
    "CRITERION",
    "METRICS",
    "EvaluationError",
    "EvaluationReport",
    "Metric",
    "MetricScore",
    "PieceSet",
    "evaluate",
    "format_table",
    "frechet_distance",
    "independent_notes",
    "load_pieces",
    "overlap_area",
    "shuffled_pitches",
    "write_json",
    "write_table",
]
_MODULES = ("baselines", "compare", "errors", "metrics", "report", "sources")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for module in (importlib.import_module(f"evaluation.{m}") for m in _MODULES):
            if name in vars(module):
                return vars(module)[name]
    raise AttributeError(f"module 'evaluation' has no attribute {name!r}")
