"""The dataset file (.npz): segments, their source files, the held-out split and the statistics.

Written atomically by the builder, read by training and evaluation; numpy only, never pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.atomic import atomic_write
from bridge.codec import FeatureStats
from training.config import TrainConfig
from training.errors import TrainingError

FORMAT = 1
ARRAYS = ("segments", "file_id", "heldout", "files", "meta")
OPTIONAL_ARRAYS = ("file_style",)  # absent in files built before styles; they train unconditioned only


@dataclass(frozen=True)
class DatasetFile:
    """A loaded dataset: unscaled ``(N, L, 3)`` segments split by source file."""

    segments: np.ndarray
    file_id: np.ndarray
    heldout: np.ndarray
    files: np.ndarray
    meta: dict[str, Any]
    file_style: np.ndarray | None = None  # per file: its index in ``styles``

    @property
    def styles(self) -> list[str]:
        """Style names (the source folders), in index order; empty for a dataset built without them."""
        return list(self.meta.get("styles", [])) if self.file_style is not None else []

    @property
    def segment_styles(self) -> np.ndarray:
        """The style index of every segment ``(N,)`` int32 (needs :attr:`styles`)."""
        if self.file_style is None:
            raise TrainingError("this dataset records no styles; rebuild it with `dmc dataset build`")
        return self.file_style[self.file_id].astype(np.int32)

    @property
    def train_styles(self) -> np.ndarray:
        """The style index of each training segment ``(n_train,)`` int32 (needs :attr:`styles`)."""
        return self.segment_styles[~self.heldout]

    @property
    def heldout_styles(self) -> np.ndarray:
        """The style index of each held-out segment ``(n_heldout,)`` int32 (needs :attr:`styles`)."""
        return self.segment_styles[self.heldout]

    @property
    def train(self) -> np.ndarray:
        """Training segments ``(n_train, L, 3)``, unscaled float32."""
        return self.segments[~self.heldout]

    @property
    def heldout_segments(self) -> np.ndarray:
        """Held-out segments ``(n_heldout, L, 3)``, from files never seen in training."""
        return self.segments[self.heldout]

    @property
    def stats(self) -> FeatureStats:
        """Scaling statistics of the training split."""
        return FeatureStats.from_dict(self.meta["stats"])

    @property
    def length(self) -> int:
        """Notes per segment (L)."""
        return int(self.segments.shape[1])


def save_dataset(path: str | os.PathLike[str], data: DatasetFile) -> None:
    """Write compressed, atomically: an interrupted write leaves no partial file behind."""
    with atomic_write(path) as handle:
        np.savez_compressed(
                handle,
            segments=data.segments.astype(np.float32),
            file_id=data.file_id.astype(np.int32),
            heldout=data.heldout.astype(bool),
            files=np.asarray(data.files, dtype=str),
            meta=np.asarray(json.dumps({"format": FORMAT, **data.meta})),
            **({} if data.file_style is None else {"file_style": data.file_style.astype(np.int32)}),
        )


def load_dataset(path: str | os.PathLike[str]) -> DatasetFile:
    """Read a dataset file; a missing, foreign or newer file is a clear TrainingError."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ARRAYS if k not in npz.files]
            if missing:
                raise TrainingError(f"{path} is not a dmc dataset: it lacks {missing}")
            arrays = {k: npz[k] for k in ARRAYS + OPTIONAL_ARRAYS if k in npz.files}
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot read dataset {path}: {exc}; build one with `dmc dataset build`") from exc
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != FORMAT:
        raise TrainingError(f"{path} has dataset format {meta.get('format')}, this version reads {FORMAT}")
    return DatasetFile(meta=meta, **arrays)


def load_training_data(path: str | os.PathLike[str], config: TrainConfig) -> DatasetFile:
    """The dataset at ``path``, refused with what to change when ``config``'s network cannot read it."""
    data = load_dataset(path)
    model = config.model
    if data.length != model.length:
        raise TrainingError(
            f"{path} has segments of {data.length} notes but config {config.name} expects "
            f"model.length = {model.length}; rebuild the dataset or use another config"
        )
    if model.chroma_semitone and not data.stats.semitone:
        raise TrainingError(f"model.chroma_semitone needs log pitch, but {path} stores Hz; use --encoding log")
    if model.chroma_semitone and abs(model.chroma_semitone - data.stats.semitone) > 1e-6 * data.stats.semitone:
        raise TrainingError(
            f"config {config.name} has model.chroma_semitone = {model.chroma_semitone:g} but one semitone of "
            f"{path} is {data.stats.semitone:.9g} scaled units; set it to that (0: no pitch-class input)"
        )
    if model.beat_periods:
        _check_delta_high(path, config, data.stats)
    if model.styles and len(data.styles) != model.styles:
        found = f"{len(data.styles)} styles ({', '.join(data.styles)})" if data.styles else "no styles"
        raise TrainingError(
            f"config {config.name} has model.styles = {model.styles} but {path} records {found}; set model.styles "
            f"= {len(data.styles)} (0: no style input)" + ("" if data.styles else " or rebuild the dataset")
        )
    if data.stats.home_key and config.train.transpose:
        raise TrainingError(
            f"{path} holds every segment in C major / A minor (built with --home-key), and config {config.name}'s "
            f"train.transpose = {config.train.transpose} would move them out of it; set train.transpose = 0"
        )
    return data


def gaps_in_beats(stats: FeatureStats) -> bool:
    """True where the scaled gaps are beats from 0 to ``stats.high``, linearly: what ``model.beat_periods`` reads."""
    return stats.time_encoding == "linear" and stats.low[2] == 0.0


def _check_delta_high(path: str | os.PathLike[str], config: TrainConfig, stats: FeatureStats) -> None:
    """``model.beat_periods`` reads gaps as beats: the dataset must scale them linearly from 0 to ``delta_high``."""
    low, high = stats.low[2], stats.high[2]
    if not gaps_in_beats(stats):
        raise TrainingError(
            f"model.beat_periods needs gaps scaled linearly from 0 beats, but {path} has time encoding "
            f"{stats.time_encoding} from {low:g}; rebuild it with --time-encoding linear, or drop beat_periods"
        )
    if abs(config.model.delta_high - high) > 1e-9 * high:
        raise TrainingError(
            f"config {config.name} has model.delta_high = {config.model.delta_high:g} but the longest gap of "
            f"{path} is {high:.9g} beats; set it to that"
        )


def dataset_summary(path: str | os.PathLike[str], data: DatasetFile) -> dict[str, Any]:
    """What a run record (and later the model card) says about its training data."""
    return {
        "path": str(Path(path).resolve()),
        "segments": len(data.segments),
        "train": len(data.train),
        "heldout": len(data.heldout_segments),
        "length": data.length,
        "encoding": data.stats.encoding,
        "stats": data.stats.to_dict(),
        "counts": data.meta.get("counts", {}),
        "music21": data.meta.get("music21", []),
        "styles": data.styles,
        "style_shares": style_shares(data),
    }


def split_styles(data: DatasetFile, heldout: bool) -> np.ndarray:
    """Style index per training (or held-out) segment ``(n,)`` int32, in the order of ``data.train``
    (``data.heldout_segments``); zeros for a dataset without styles, where only unconditioned
    networks train (:func:`load_training_data`) and ignore them. What both trainers feed."""
    if data.styles:
        return data.heldout_styles if heldout else data.train_styles
    return np.zeros(int(np.count_nonzero(data.heldout == heldout)), np.int32)


def style_shares(data: DatasetFile) -> list[float]:
    """Each style's share of the training segments, the odds a sampler draws it with (empty: no styles)."""
    if not data.styles:
        return []
    counts = np.bincount(data.train_styles, minlength=len(data.styles))
    return [round(float(c), 6) for c in counts / counts.sum()]
