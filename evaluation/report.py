"""The evaluation report: scores beside their noise floor and baselines, the pass rule, table and JSON."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

MIN_OVERLAP = 0.7  # an overlap-type score must reach this ...
HALFWAY = 0.5  # ... and this share of the way from a baseline to the noise floor
TOLERANCE = 1e-6  # float noise: a score equal to its floor and baseline (e.g. all 1.0) still passes
CRITERION = (
    f"overlap-type scores: >= {MIN_OVERLAP}; every score: at least {HALFWAY:.0%} of the way from the "
    "independent-notes baseline to the held-out noise floor; order-sensitive ones: also from the "
    "shuffled-pitch baseline to the floor"
)


@dataclass(frozen=True)
class MetricScore:
    """One metric's score for the samples and, computed the same way, for the reference sets.

    Each value compares a set with the target half of the reference: ``heldout`` (the other half:
    the noise floor, what real music scores), ``independent`` and ``shuffled`` (the baselines).
    Scores are overlaps in [0, 1] unless ``lower_is_better`` (KL divergence, Fréchet distance).
    """

    name: str
    sample: float
    heldout: float
    independent: float
    shuffled: float
    order_sensitive: bool = False
    lower_is_better: bool = False

    def _progress(self, value: float, baseline: float) -> bool:
        """Whether ``value`` lies at least halfway from ``baseline`` to the noise floor.

        "Beating" the shuffled baseline uses the same rule, so a tie within noise is no win.
        """
        sign = -1.0 if self.lower_is_better else 1.0
        return sign * value >= sign * (baseline + HALFWAY * (self.heldout - baseline)) - TOLERANCE

    def passes(self, value: float | None = None) -> bool:
        """The pass rule (:data:`CRITERION`) for the samples' score, or for another ``value``."""
        value = self.sample if value is None else value
        if not all(math.isfinite(v) for v in (value, self.heldout, self.independent, self.shuffled)):
            return False
        ok = self._progress(value, self.independent)
        if not self.lower_is_better:
            ok = ok and value >= MIN_OVERLAP - TOLERANCE
        if self.order_sensitive:
            ok = ok and self._progress(value, self.shuffled)
        return ok

    def baseline_passes(self) -> bool:
        """Whether a baseline passes by the same rule (the shuffled one only where order counts):
        then this metric cannot tell music from noise on this reference, whatever the samples score."""
        return self.passes(self.independent) or (self.order_sensitive and self.passes(self.shuffled))


@dataclass(frozen=True)
class EvaluationReport:
    """All scores of one run, each the mean over ``splits`` random halvings of the reference."""

    scores: tuple[MetricScore, ...]
    samples: int
    reference: int
    splits: int
    seed: int

    def passes(self) -> dict[str, bool]:
        """Metric name -> whether the samples pass it."""
        return {s.name: s.passes() for s in self.scores}

    def summary(self) -> dict[str, Any]:
        """The short form for the model card: how many metrics pass, which fail, under which rule."""
        failed = [name for name, ok in self.passes().items() if not ok]
        passed = len(self.scores) - len(failed)
        unreliable = [s.name for s in self.scores if s.baseline_passes()]
        return {
            "passed": passed, "total": len(self.scores), "failed": failed, "criterion": CRITERION,
            "baseline_passes": unreliable,
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: sizes, seed, every score with its pass flag, and the summary (NaN -> null)."""

        def clean(value: Any) -> Any:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        return {
            "seed": self.seed,
            "pieces": {"sample": self.samples, "reference": self.reference},
            "splits": self.splits,
            "scores": [{k: clean(v) for k, v in asdict(s).items()} | {"passes": s.passes()} for s in self.scores],
            "summary": self.summary(),
        }


def _cell(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def format_table(report: EvaluationReport) -> str:
    """A fixed-width table: one row per metric, the samples beside floor and baselines."""
    header = ("metric", "sample", "held-out", "indep.", "shuffled", "pass")
    rows = [
        (
            s.name + (" *" if s.order_sensitive else "") + (" (lower)" if s.lower_is_better else ""),
            *(_cell(v) for v in (s.sample, s.heldout, s.independent, s.shuffled)),
            ("yes" if s.passes() else "NO") + (" !" if s.baseline_passes() else ""),
        )
        for s in report.scores
    ]
    width = max(len(r[0]) for r in [header, *rows])
    lines = [f"{r[0]:<{width}}  " + "  ".join(f"{c:>8}" for c in r[1:]) for r in [header, *rows]]
    summary = report.summary()
    lines += [
        "",
        f"pieces: {report.samples} samples, {report.reference} reference; scores are means over "
        f"{report.splits} random halvings of the reference (seed {report.seed}); * order-sensitive",
        f"passed {summary['passed']} of {summary['total']}; rule: {CRITERION}",
    ]
    if summary["baseline_passes"]:
        lines.append(
            "! a baseline passes this metric on this reference: here it cannot tell music from noise, so its "
            "pass or failure is no evidence (benchmarks/metric_separation.py shows this over seeds)"
        )
    return "\n".join(lines) + "\n"


def write_table(report: EvaluationReport, stream: TextIO) -> None:
    """Write :func:`format_table` to a stream (the command passes stdout)."""
    stream.write(format_table(report))


def write_json(report: EvaluationReport, path: str | os.PathLike[str]) -> None:
    """Write :meth:`EvaluationReport.to_dict` as indented JSON."""
    Path(path).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
