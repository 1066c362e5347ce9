"""Shared fixtures: small dataset files that follow docs/CONTRACTS.md, built from note-like noise."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bridge.codec import FeatureStats
from training.datafile import DatasetFile, save_dataset

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def note_like_segments(rng: np.random.Generator, count: int, length: int) -> np.ndarray:
    """Unscaled ``(count, length, 3)``: a pitch random walk (semitones), durations and deltas on a grid."""
    start = rng.integers(48, 72, size=(count, 1))
    steps = rng.choice([-2, -1, 0, 1, 2, 3, -3], size=(count, length))
    pitch = np.clip(start + np.cumsum(steps, axis=1), 21, 108)
    duration = rng.choice([0.25, 0.5, 1.0], size=(count, length))
    delta = rng.choice([0.0, 0.25, 0.5], size=(count, length))
    delta[:, 0] = 0.0
    return np.stack([pitch, duration, delta], axis=-1).astype(np.float32)


def write_dataset(path: Path, *, count: int = 96, length: int = 16, heldout: int = 16, seed: int = 0,
                  time_encoding: str = "linear", pitch_gain: float = 1.0, styles: int = 0) -> Path:  # fmt: skip
    """A dataset file with ``count`` segments, the last ``heldout`` held out (as from other files);
    ``styles`` > 0: files take styles in turn (``style0``, ``style1``, ...)."""
    rng = np.random.default_rng(seed)
    segments = note_like_segments(rng, count, length)
    held = np.arange(count) >= count - heldout
    stats = FeatureStats.fit(segments[~held], "log", time_encoding=time_encoding, pitch_gain=pitch_gain)
    meta = {"length": length, "hop": length, "encoding": "log", "stats": stats.to_dict(), "filters": {},
            "skipped": {}, "counts": {"segments": count}, "sources": []}  # fmt: skip
    files = np.array([f"file{i}.mid" for i in range((count + 7) // 8)])
    file_id = (np.arange(count) // 8).astype(np.int32)
    file_style = (np.arange(len(files)) % styles).astype(np.int32) if styles else None
    if styles:
        meta["styles"] = [f"style{i}" for i in range(styles)]
    save_dataset(path, DatasetFile(segments, file_id, held, files, meta, file_style))
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of L=16 segments for the ``tiny`` preset."""
    return write_dataset(tmp_path_factory.mktemp("data") / "tiny.npz")
