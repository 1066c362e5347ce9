"""Shared sets for the evaluation tests: held-out "real music" and samples from the same generator."""

from __future__ import annotations

import pytest
from tonal_music import tonal_set

from bridge.codec import Note
from evaluation import EvaluationReport, evaluate


@pytest.fixture(scope="session")
def reference() -> list[list[Note]]:
    """The held-out real music: 60 pieces, so each half (target, noise floor) has 30."""
    return tonal_set(1, 60)


@pytest.fixture(scope="session")
def training() -> list[list[Note]]:
    """Another draw of the generator, the stand-in for a model's training data."""
    return tonal_set(3, 40)


@pytest.fixture(scope="session")
def heldout_report(reference: list[list[Note]]) -> EvaluationReport:
    """Samples that are more real music of the same kind: they must pass."""
    return evaluate(tonal_set(2, 40), reference, seed=0)
