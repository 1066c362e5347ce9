"""Comparing two sets of pieces, and :func:`evaluate`, which scores samples against real music.

Following Yang & Lerch 2020, a feature's values over a set form a distribution, estimated by a
Gaussian kernel density; two sets agree as much as their densities overlap (OA, 1 = identical).
For matrix features the distributions are of distances: intra-set (pairs within the reference)
against inter-set (sample to reference), compared by OA and KL. A Fréchet distance summarizes
all scalar features at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from statistics import NormalDist

import numpy as np

from bridge.codec import Note
from evaluation.baselines import independent_notes, shuffled_pitches
from evaluation.errors import EvaluationError
from evaluation.metrics import METRICS, Metric
from evaluation.report import EvaluationReport, MetricScore

log = logging.getLogger(__name__)

GRID_POINTS = 128
MIN_GRID_STEPS = 2.0  # a bandwidth spans at least this many grid steps, so every density is resolved
KL_EPSILON = 1e-10
SET_NAMES = ("sample", "heldout", "independent", "shuffled")
DEFAULT_SPLITS = 5


def _finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def _silverman(x: np.ndarray) -> float:
    """Silverman's robust rule of thumb: one outlying piece must not smear a whole set's density."""
    iqr = float(np.subtract(*np.percentile(x, [75, 25])))
    spread = min(float(np.std(x)), iqr / 1.34) or float(np.std(x))
    return 0.9 * spread * len(x) ** -0.2


def _densities(a: np.ndarray, b: np.ndarray, points: int = GRID_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Both sets' Gaussian KDEs as probability masses on one common grid, with one bandwidth.

    The bandwidth is the wider of the two sets' Silverman bandwidths: with one each, a set that
    happens to be more spread is also smoothed more, and the overlap measures the estimator
    (same-source sets of tens of pieces then scored anywhere from 0.46 to 0.9).
    """
    pooled = np.concatenate([a, b])
    bandwidth = max(_silverman(a), _silverman(b), 1e-6 * max(float(np.abs(pooled).max()), 1.0))
    step = (float(np.ptp(pooled)) + 8.0 * bandwidth) / (points - 1)
    bandwidth = max(bandwidth, MIN_GRID_STEPS * step)
    grid = np.linspace(pooled.min() - 4.0 * bandwidth, pooled.max() + 4.0 * bandwidth, points)
    masses = []
    for x in (a, b):
        density = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / bandwidth) ** 2).sum(axis=1)
        masses.append(density / density.sum())
    return masses[0], masses[1]


def overlap_and_kl(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(OA, KL(P_a || P_b) in nats) of the two samples' densities (Y&L report both); NaN when either
    set has fewer than two finite values."""
    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    p, q = _densities(a, b)
    return float(np.minimum(p, q).sum()), float(np.sum(p * np.log((p + KL_EPSILON) / (q + KL_EPSILON))))


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """OA of the two samples' densities (Y&L eq. 2): 1 for identical sets, 0 for disjoint ones."""
    return overlap_and_kl(a, b)[0]


def _pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(n, m)`` between rows of ``(n, d)`` and ``(m, d)``, without an (n, m, d) array."""
    squared = (x**2).sum(axis=1)[:, None] + (y**2).sum(axis=1)[None, :] - 2.0 * x @ y.T
    return np.sqrt(np.maximum(squared, 0.0))


def intra_set_distances(features: np.ndarray) -> np.ndarray:
    """Distances between all pairs of distinct pieces of one set, ``(n (n - 1) / 2,)``."""
    f = features.reshape(len(features), -1)
    return _pairwise(f, f)[np.triu_indices(len(f), k=1)]


def inter_set_distances(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Distances from every piece of one set to every piece of the reference, ``(n m,)``."""
    return _pairwise(features.reshape(len(features), -1), reference.reshape(len(reference), -1)).ravel()


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``(n, d)`` and ``(m, d)``; rows with NaN are dropped.

    tr sqrt(Sx Sy) comes from the eigenvalues of Sx^1/2 Sy Sx^1/2 (symmetric, same spectrum),
    which stays real and stable for the singular covariances of small sets.
    """
    x, y = (v[np.isfinite(v).all(axis=1)] for v in (x, y))
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    cx, cy = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    w, v = np.linalg.eigh(cx)
    root_x = (v * np.sqrt(np.maximum(w, 0.0))) @ v.T
    cross = np.sqrt(np.maximum(np.linalg.eigvalsh(root_x @ cy @ root_x), 0.0)).sum()
    mean_term = float(((x.mean(axis=0) - y.mean(axis=0)) ** 2).sum())
    return max(mean_term + float(np.trace(cx) + np.trace(cy) - 2.0 * cross), 0.0)


def split_halves(count: int, groups: Sequence[int] | None, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Indices of two halves of the reference; pieces of one source file stay on one side."""
    keys = np.asarray(groups if groups is not None else range(count))
    unique = rng.permutation(np.unique(keys))
    first = set(unique[: (len(unique) + 1) // 2].tolist())
    a = [i for i in range(count) if keys[i] in first]
    return a, [i for i in range(count) if keys[i] not in first]


def _metric_rows(metric: Metric, values: dict[str, list]) -> Iterator[MetricScore]:
    """The score rows of one metric: each set's per-piece ``values`` against the target half's."""

    def row(name: str, score: dict[str, float], lower_is_better: bool = False) -> MetricScore:
        return MetricScore(name, *(score[s] for s in SET_NAMES), metric.order_sensitive, lower_is_better)

    target = values["target"]
    if metric.kind == "scalar":
        yield row(metric.name, {s: overlap_area(np.array(values[s]), np.array(target)) for s in SET_NAMES})
    else:
        intra = intra_set_distances(np.array(target))
        compared = {
            s: overlap_and_kl(intra, inter_set_distances(np.array(values[s]), np.array(target))) for s in SET_NAMES
        }
        yield row(metric.name, {s: oa for s, (oa, _) in compared.items()})
        yield row(f"{metric.name}_kl", {s: kl for s, (_, kl) in compared.items()}, True)


def _normal_scores(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each column through the reference's empirical CDF (mid-ranks) and the normal quantile.

    Puts features of any unit on one scale and bounds outliers (|z| <= about 2.3 for 30 reference
    pieces), so one odd piece cannot dominate the Fréchet distance; NaN stays NaN.
    """
    inv_cdf = np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        ref = np.sort(_finite(reference[:, j]))
        col = values[:, j]
        ok = np.isfinite(col)
        below = np.searchsorted(ref, col[ok], side="left")
        ties = np.searchsorted(ref, col[ok], side="right") - below
        out[ok, j] = inv_cdf((below + 0.5 * ties + 0.5) / (len(ref) + 1))
    return out


def _frechet_row(values: dict[str, dict[str, list]]) -> MetricScore:
    """Fréchet distance of the scalar-feature vectors, in normal scores of the target half."""
    names = [m.name for m in METRICS if m.kind == "scalar"]
    vectors = {s: np.array([v[n] for n in names], dtype=np.float64).T for s, v in values.items()}
    z = {s: _normal_scores(v, vectors["target"]) for s, v in vectors.items()}
    distances = (frechet_distance(z[s], z["target"]) for s in SET_NAMES)
    return MetricScore("frechet_distance", *distances, order_sensitive=True, lower_is_better=True)


def _split_sets(values: dict[str, dict[str, list]], first: list[int], second: list[int]) -> dict[str, dict[str, list]]:
    """Per-piece values of the sets of one split: the target half, the held-out half, and the
    baselines of the held-out half's pieces."""

    def pick(name: str, indices: list[int]) -> dict[str, list]:
        return {metric: [v[i] for i in indices] for metric, v in values[name].items()}

    return {
        "target": pick("reference", first),
        "sample": values["sample"],
        "heldout": pick("reference", second),
        "independent": pick("independent", second),
        "shuffled": pick("shuffled", second),
    }


def _split_scores(values: dict[str, dict[str, list]]) -> list[MetricScore]:
    rows = [row for m in METRICS for row in _metric_rows(m, {s: v[m.name] for s, v in values.items()})]
    return [*rows, _frechet_row(values)]


def _mean_scores(runs: list[list[MetricScore]]) -> tuple[MetricScore, ...]:
    """Each score averaged over the splits; a split that left it undefined (NaN) is skipped."""
    out = []
    for rows in zip(*runs, strict=True):
        values = {s: _finite(np.array([getattr(r, s) for r in rows])) for s in SET_NAMES}
        out.append(replace(rows[0], **{s: float(v.mean()) if len(v) else float("nan") for s, v in values.items()}))
    return tuple(out)


def evaluate(
    samples: Sequence[Sequence[Note]],
    reference: Sequence[Sequence[Note]],
    seed: int = 0,
    *,
    reference_groups: Sequence[int] | None = None,
    splits: int = DEFAULT_SPLITS,
) -> EvaluationReport:
    """Score ``samples`` against held-out real music, with the noise floor and two baselines.

    The reference splits in two halves (by ``reference_groups``, e.g. source file, when given):
    every set is compared with the first, the *target*. The second half is the noise floor, and
    it stands in for training data: the baselines (independent-marginal notes, pitch-shuffled
    pieces) are its pieces remade, so they know as much about the music as a model could (the
    independent notes draw on the whole reference's marginals, which only helps them). Scores
    are means over ``splits`` random splits: one split of tens of pieces is too noisy to judge by.
    """
    if len(samples) < 2:
        raise EvaluationError(f"need at least 2 sample pieces to compare distributions, got {len(samples)}")
    rng = np.random.default_rng(seed)
    halves = [split_halves(len(reference), reference_groups, rng) for _ in range(max(splits, 1))]
    if min(len(h) for pair in halves for h in pair) < 2:
        raise EvaluationError(
            f"the reference ({len(reference)} pieces) must split into two halves of 2+ pieces; "
            "give more held-out pieces or source files"
        )
    pieces = {
        "sample": samples,
        "reference": reference,
        "independent": independent_notes(reference, rng),
        "shuffled": shuffled_pitches(reference, rng),
    }
    log.info("evaluating %d samples against %d reference pieces, %d splits", len(samples), len(reference), splits)
    values = {s: {m.name: [m.compute(p) for p in v] for m in METRICS} for s, v in pieces.items()}
    runs = [_split_scores(_split_sets(values, first, second)) for first, second in halves]
    return EvaluationReport(_mean_scores(runs), len(samples), len(reference), len(halves), seed)
