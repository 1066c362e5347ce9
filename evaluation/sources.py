"""Sets of pieces to evaluate: a folder of .mid files, or a dataset .npz (docs/CONTRACTS.md).

Pieces are compared at the length the model works at: a dataset's segments as they are, a long
MIDI file cut into segments of ``length`` notes exactly as the dataset builder cuts them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.codec import Note, features_to_notes, merge_unisons, notes_to_features, segment
from bridge.errors import BridgeError
from bridge.midifile import read_midi
from evaluation.errors import EvaluationError
from training.datafile import DatasetFile, load_dataset
from training.dataset import MIDI_SUFFIXES

log = logging.getLogger(__name__)
SPLITS = ("heldout", "train", "all")
DEFAULT_LENGTH = 128


@dataclass(frozen=True)
class PieceSet:
    """Pieces (notes in beats) with the source file of each, so a split can keep files whole."""

    pieces: tuple[tuple[Note, ...], ...]
    groups: tuple[int, ...]
    length: int | None = None  # notes per segment, when the source fixes it (a dataset)

    def subsample(self, count: int, rng: np.random.Generator) -> PieceSet:
        """At most ``count`` pieces, drawn without replacement, to bound the run time."""
        if len(self.pieces) <= count:
            return self
        keep = np.sort(rng.choice(len(self.pieces), size=count, replace=False))
        return PieceSet(tuple(self.pieces[i] for i in keep), tuple(self.groups[i] for i in keep), self.length)


def _cut(notes: list[Note], length: int) -> list[list[Note]]:
    """A file of at most ``length`` notes stays whole (a generated sample); a longer one becomes
    the dataset builder's segments (codec order, a short tail dropped, each starting at 0)."""
    if len(notes) <= length:
        return [notes] if notes else []
    return [features_to_notes(s) for s in segment(notes_to_features(notes), length)]


def load_midi_folder(path: Path, length: int = DEFAULT_LENGTH, one_keyboard: bool = False) -> PieceSet:
    """Every .mid/.midi file under ``path`` (all piano parts merged; ``one_keyboard``: as one keyboard
    plays them, before cutting), cut to ``length`` notes."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise EvaluationError(f"no .mid files in {path}; give a folder of MIDI files or a dataset .npz")
    pieces: list[tuple[Note, ...]] = []
    groups: list[int] = []
    for index, file in enumerate(files):
        try:
            notes = read_midi(file, mode="merge").notes
            cut = _cut(merge_unisons(notes) if one_keyboard else notes, length)
        except BridgeError as exc:  # one bad file should not stop an evaluation; say which
            log.warning("skipped: %s", exc)
            continue
        pieces += [tuple(p) for p in cut]
        groups += [index] * len(cut)
    log.info("%s: %d pieces from %d files", path, len(pieces), len(files))
    return PieceSet(tuple(pieces), tuple(groups))


def load_dataset_split(
    path: Path, split: str = "heldout", style: str | None = None, one_keyboard: bool = False
) -> PieceSet:
    """The segments of one split of a dataset .npz (of one ``style`` only, when named), decoded with its own
    pitch encoding (``one_keyboard``: each segment as one keyboard plays it)."""
    if split not in SPLITS:
        raise EvaluationError(f"split {split!r} is unknown; use one of {SPLITS}")
    data = load_dataset(path)
    mask = {"heldout": data.heldout, "train": ~data.heldout, "all": np.ones_like(data.heldout)}[split]
    if style is not None:
        mask = mask & _style_mask(data, path, style)
    encoding = data.stats.encoding
    decoded = (features_to_notes(s, encoding) for s in data.segments[mask])
    pieces = tuple(tuple(merge_unisons(notes) if one_keyboard else notes) for notes in decoded)
    log.info("%s: %d %s segments%s", path, len(pieces), split, f" of style {style}" if style else "")
    return PieceSet(pieces, tuple(int(i) for i in data.file_id[mask]), data.length)


def _style_mask(data: DatasetFile, path: Path, style: str) -> np.ndarray:
    """The segments of one style; a clear error for a name the dataset does not record."""
    if style not in data.styles:
        known = ", ".join(data.styles) or "none (rebuild it with `dmc dataset build`)"
        raise EvaluationError(f"{path} has no style {style!r}; its styles: {known}")
    return data.segment_styles == data.styles.index(style)


def load_pieces(path: str | os.PathLike[str], *, split: str = "heldout", length: int = DEFAULT_LENGTH,
                style: str | None = None, one_keyboard: bool = False) -> PieceSet:  # fmt: skip
    """A folder of MIDI files (cut to ``length`` notes) or a dataset .npz (its ``split``, of one ``style``).

    ``one_keyboard``: every piece as one keyboard plays it (:func:`bridge.codec.merge_unisons`), as
    ``dmc generate`` writes them; a corpus of merged parts doubles voices that one channel cannot.
    """
    source = Path(path)
    if source.is_dir() and style is None:
        return load_midi_folder(source, length, one_keyboard)
    if source.suffix == ".npz" and source.is_file():
        return load_dataset_split(source, split, style, one_keyboard)
    if source.is_dir():
        raise EvaluationError(f"{source} is a folder of .mid files, which records no styles; give a dataset .npz")
    raise EvaluationError(f"{source} is neither a folder of .mid files nor a dataset .npz")
