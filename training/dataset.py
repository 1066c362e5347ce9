"""The dataset builder: folders of MIDI files -> one .npz of segments (numpy, mido; no TensorFlow).

The seed's filters, made explicit: notes whose duration or delta exceed a threshold make the
segment that holds them unusable; segments are L notes every ``hop`` notes, a short tail is
dropped; a file yielding no segment is skipped with a counted reason. A bad file never stops
a build. The held-out split is by source file, so no held-out segment shares a piece with
training.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bridge.codec import (
    PITCH_ENCODINGS,
    PITCH_GAIN_RANGE,
    TIME_ENCODINGS,
    FeatureStats,
    merge_unisons,
    notes_to_features,
    segment,
    transpose_values,
    value_to_pitch,
)
from bridge.errors import BridgeError
from bridge.home_key import home_shift
from bridge.midifile import TRACK_MODES, read_midi
from bridge.progress import progress
from bridge.styles import REQUESTS as STYLE_REQUESTS
from training.datafile import DatasetFile, save_dataset
from training.errors import TrainingError

log = logging.getLogger(__name__)
MIDI_SUFFIXES = (".mid", ".midi")
SKIP_REASONS = ("unreadable", "no_matching_track", "too_short", "threshold")
HELDOUT_BY = ("segments", "files")  # how --heldout counts its share (see choose_heldout_segments)


@dataclass(frozen=True)
class BuildConfig:
    """How files become segments; stored in the dataset's meta so a build can be repeated."""

    length: int = 128
    hop: int = 0  # 0: no overlap (hop = length)
    encoding: str = "log"
    families: tuple[str, ...] = ("piano",)
    programs: tuple[int, ...] = ()
    mode: str = "longest"
    max_duration: float = 16.0  # beats
    max_delta: float = 16.0  # beats
    heldout: float = 0.1  # share held out, as whole source files
    heldout_by: str = "segments"  # segments: that share of each source folder's segments; files: of the files
    time_quantile: float = 0.995  # duration/delta scaling high (see FeatureStats.fit); 1.0: the maximum
    time_encoding: str = "linear"  # "log": scale log2(beats + 1/16) of durations and gaps (FeatureStats)
    pitch_gain: float = 1.0  # scaled pitch spans [-gain, gain]: gain**2 times the pitch SNR (FeatureStats)
    home_key: bool = False  # move each segment to C major / A minor (FeatureStats.home_key)
    merge_unisons: bool = False  # each file's notes as one keyboard plays them (bridge.codec.merge_unisons)
    seed: int = 0
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)

    def __post_init__(self) -> None:
        checks = {
            "length": self.length >= 2,
            "hop": self.hop >= 0,
            "encoding": self.encoding in PITCH_ENCODINGS,
            "mode": self.mode in TRACK_MODES,
            "max_duration": self.max_duration > 0,
            "max_delta": self.max_delta > 0,
            "heldout": 0.0 <= self.heldout < 1.0,
            "heldout_by": self.heldout_by in HELDOUT_BY,
            "time_quantile": 0.5 <= self.time_quantile <= 1.0,
            "time_encoding": self.time_encoding in TIME_ENCODINGS,
            "pitch_gain": PITCH_GAIN_RANGE[0] <= self.pitch_gain <= PITCH_GAIN_RANGE[1],
            "workers": self.workers >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise TrainingError(f"invalid dataset setting {bad[0]}={getattr(self, bad[0])!r}")

    @property
    def step(self) -> int:
        """Notes between segment starts."""
        return self.hop or self.length


@dataclass(frozen=True)
class FileResult:
    """What one worker made of one file: segments ``(k, L, 3)`` or the reason it was skipped."""

    path: str
    segments: np.ndarray | None = None
    skip: str | None = None


def find_midi_files(sources: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every .mid/.midi under the given folders (recursively) or given as files, sorted."""
    found: set[Path] = set()
    for source in map(Path, sources):
        if source.is_dir():
            found.update(p for p in source.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
        elif source.is_file():
            found.add(source)
        else:
            raise TrainingError(f"dataset source {source} does not exist")
    return sorted(found)


def read_file(path: Path, config: BuildConfig) -> FileResult:
    """Worker: one file -> its usable segments. Never raises for a bad file."""
    try:
        notes = read_midi(path, families=config.families, programs=config.programs, mode=config.mode).notes
    except BridgeError:
        return FileResult(str(path), skip="unreadable")
    if config.merge_unisons:
        notes = merge_unisons(notes)
    if not notes:
        return FileResult(str(path), skip="no_matching_track")
    if len(notes) < config.length:
        return FileResult(str(path), skip="too_short")
    segs = segment(notes_to_features(notes, config.encoding), config.length, config.step)
    ok = (segs[..., 1].max(axis=1) <= config.max_duration) & (segs[..., 2].max(axis=1) <= config.max_delta)
    if not ok.any():
        return FileResult(str(path), skip="threshold")
    segs = segs[ok]
    if config.home_key:
        segs = to_home_key(segs, config.encoding)
    return FileResult(str(path), segments=segs.astype(np.float32))


def to_home_key(segments: np.ndarray, encoding: str) -> np.ndarray:
    """Segments ``(k, L, 3)`` each moved by its own :func:`home_shift` (per segment, so a
    modulating piece lands in C major / A minor section by section); returns a new array."""
    out = np.array(segments, dtype=np.float64)
    for seg in out:
        seg[:, 0] = transpose_values(seg[:, 0], home_shift(value_to_pitch(seg[:, 0], encoding)), encoding)
    return out


def read_all(paths: Sequence[Path], config: BuildConfig, *, show_progress: bool = True) -> list[FileResult]:
    """Read files in worker processes (in-process for one worker), in the order given."""
    work = partial(read_file, config=config)
    results: list[FileResult] = []
    with progress(len(paths), "reading MIDI", enabled=show_progress) as advance:
        if config.workers == 1 or len(paths) < 2:
            for path in paths:
                results.append(work(path))
                advance()
            return results
        with ProcessPoolExecutor(max_workers=config.workers) as pool:
            for result in pool.map(work, paths, chunksize=max(1, len(paths) // (config.workers * 16))):
                results.append(result)
                advance()
    return results


def choose_heldout(n_files: int, share: float, seed: int) -> np.ndarray:
    """A seeded choice of held-out files ``(n_files,)`` bool; at least one when share > 0 and n > 1."""
    mask = np.zeros(n_files, dtype=bool)
    if share > 0 and n_files > 1:
        count = max(1, round(share * n_files))
        mask[np.random.default_rng(seed).choice(n_files, size=count, replace=False)] = True
    return mask


def choose_heldout_segments(counts: Sequence[int], groups: Sequence[str], share: float, seed: int) -> np.ndarray:
    """Held-out files ``(n,)`` bool: whole files, about ``share`` of each group's segments.

    Why: files differ a hundredfold in length (a chorale gives a few segments, a quartet movement
    dozens), so a share of *files* drawn at random is mostly short ones and the held-out music is
    not what the model learns from (music21's classical set: 6% quartet segments held out, 36% in
    training). Files are taken in a seeded order while each brings its group closer to its share.
    """
    sizes = np.asarray(counts, dtype=np.float64)
    mask = np.zeros(len(sizes), dtype=bool)
    if share <= 0 or len(sizes) < 2:
        return mask
    rng = np.random.default_rng(seed)
    labels = np.asarray(groups)
    for group in sorted(set(groups)):
        members = rng.permutation(np.flatnonzero(labels == group))
        target, held = share * sizes[members].sum(), 0.0
        for i in members:
            if held + sizes[i] / 2 <= target:
                mask[i], held = True, held + sizes[i]
    if not mask.any():
        mask[rng.integers(len(sizes))] = True
    return mask


def assemble(results: Sequence[FileResult], config: BuildConfig, root_of: dict[str, str],
             sources: Sequence[str]) -> DatasetFile:  # fmt: skip
    """Join worker results into a dataset with its split, statistics, styles and skip summary."""
    kept = [r for r in results if r.segments is not None]
    if not kept:
        raise TrainingError(f"no usable segments of {config.length} notes in {len(results)} files: {_skips(results)}")
    held = _heldout_files(kept, config, root_of)
    segments = np.concatenate([r.segments for r in kept])  # type: ignore[misc]
    file_id = np.concatenate([np.full(len(r.segments), i, np.int32) for i, r in enumerate(kept)])  # type: ignore[arg-type]
    heldout = held[file_id]
    if heldout.all():
        raise TrainingError("every segment fell in the held-out split; add files or lower --heldout")
    stats = FeatureStats.fit(
        segments[~heldout], config.encoding, config.time_quantile, config.time_encoding, config.pitch_gain,
        config.home_key,
    )  # fmt: skip
    files = np.array([_relative(r.path, root_of) for r in kept])
    meta = _meta(results, config, stats, segments, heldout, held)
    names, file_style = _styles([r.path for r in kept], root_of, sources)
    meta["styles"] = names
    return DatasetFile(segments, file_id, heldout, files, meta, file_style)


def _styles(paths: Sequence[str], root_of: dict[str, str], sources: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Style names, in the order of ``sources``, and each file's style: the source folder it was found in
    (a file given by name: its own folder), named by the folder's name, or its whole path where two clash
    or the name is a word ``--style`` reserves (mix, none)."""
    rank = {source: i for i, source in enumerate(sources)}
    keys = [root_of.get(path) or str(Path(path).parent) for path in paths]
    first: dict[str, int] = {}
    for key, path in zip(keys, paths, strict=True):
        first[key] = min(first.get(key, len(rank)), rank.get(root_of.get(path, path), len(rank)))
    unique = sorted(first, key=first.__getitem__)
    names = [Path(key).name or key for key in unique]
    clashes = {name for name in names if names.count(name) > 1 or name in STYLE_REQUESTS}
    index = {key: i for i, key in enumerate(unique)}
    return [key if name in clashes else name for key, name in zip(unique, names, strict=True)], np.array(
        [index[key] for key in keys], np.int32
    )


def _heldout_files(kept: Sequence[FileResult], config: BuildConfig, root_of: dict[str, str]) -> np.ndarray:
    if config.heldout_by == "files":
        return choose_heldout(len(kept), config.heldout, config.seed)
    counts = [len(r.segments) for r in kept]  # type: ignore[arg-type]
    return choose_heldout_segments(counts, [_collection(r.path, root_of) for r in kept], config.heldout, config.seed)


def _collection(path: str, root_of: dict[str, str]) -> str:
    """The group a file is held out within: its source folder and, inside it, its first sub-folder
    (a file given by name: its own folder)."""
    root = root_of.get(path)
    if root is None:
        return str(Path(path).parent)
    parts = Path(os.path.relpath(path, root)).parts
    return os.path.join(root, parts[0]) if len(parts) > 1 else root


def _skips(results: Sequence[FileResult]) -> dict[str, int]:
    counts = Counter(r.skip for r in results if r.skip)
    return {reason: counts.get(reason, 0) for reason in SKIP_REASONS}


def _relative(path: str, root_of: dict[str, str]) -> str:
    root = root_of.get(path)
    return os.path.relpath(path, root) if root else path


def _meta(
    results: Sequence[FileResult],
    config: BuildConfig,
    stats: FeatureStats,
    segments: np.ndarray,
    heldout: np.ndarray,
    held: np.ndarray,
) -> dict[str, Any]:
    """The summary stored in the file and printed: settings, statistics, skips by reason, counts."""
    return {
        "length": config.length,
        "hop": config.step,
        "encoding": config.encoding,
        "stats": stats.to_dict(),
        "build": {k: v for k, v in asdict(config).items() if k != "workers"},
        "skipped": _skips(results),
        "counts": {
            "files_found": len(results),
            "files_used": len(held),
            "files_heldout": int(held.sum()),
            "segments": len(segments),
            "segments_train": int((~heldout).sum()),
            "segments_heldout": int(heldout.sum()),
            "notes": int(segments.shape[0] * segments.shape[1]),
        },
    }


def build_dataset(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: BuildConfig,
    *,
    show_progress: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build and atomically write a dataset; returns its meta (counts, skips, statistics)."""
    paths = find_midi_files(sources)
    if not paths:
        raise TrainingError(f"no .mid or .midi files under {', '.join(map(str, sources))}")
    root_of = {str(p): str(s) for s in map(Path, sources) if s.is_dir() for p in paths if s in p.parents}
    data = assemble(read_all(paths, config, show_progress=show_progress), config, root_of, [str(s) for s in sources])
    data.meta.update(extra_meta or {})
    data.meta["sources"] = [str(s) for s in sources]
    save_dataset(out, data)
    return data.meta
