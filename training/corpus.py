"""The offline training corpus that ships inside the music21 package (extra ``corpus``).

music21's scores (MusicXML, Humdrum, ABC) are converted once to MIDI files in a cache folder,
then read like any user's folder, so one code path builds every dataset.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bridge.progress import progress
from training.errors import TrainingError

log = logging.getLogger(__name__)
OPUS_MARK = ".opus"  # "tune.opus3.mid": the fourth score of an opus file
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")  # not .rntxt: analyses, not scores
FAILED_SUFFIX = ".failed"  # "name.failed": music21 could not convert that score; not tried again


def cache_root() -> Path:
    """Where converted corpus files live (``$DMC_CACHE`` or the XDG cache folder)."""
    base = os.environ.get("DMC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "diffusion-composer"
    )
    return Path(base) / "music21"


def corpus_paths(composer: str) -> list[Path]:
    """The score files music21 ships for one composer or collection name."""
    try:
        from music21 import corpus
    except ImportError as exc:
        raise TrainingError("the music21 corpus needs the extra: pip install 'diffusion-composer[corpus]'") from exc
    paths = [Path(p) for p in corpus.getComposer(composer) if Path(p).suffix.lower() in SCORE_SUFFIXES]
    if not paths:
        raise TrainingError(f"music21 ships no scores for {composer!r} (try bach, palestrina, beethoven, mozart)")
    return paths


def score_names(paths: Sequence[Path]) -> dict[str, Path]:
    """A unique MIDI name (no suffix) for each piece: its path below the composer's folder, ``/`` -> ``-``.

    music21 names many scores ``movement1.mxl`` in different folders (``haydn/opus1no1/``,
    ``haydn/opus74no1/``), so the file's stem alone is not unique; some pieces ship in two formats
    (``beethoven/opus18no1/movement1.krn`` and ``.mxl``): the first in sorted order is kept, so one
    piece never lands in both the training and the held-out split.
    """
    root = Path(os.path.commonpath([p.parent for p in paths]))
    names: dict[str, Path] = {}
    for path in sorted(paths):
        names.setdefault("-".join(path.relative_to(root).with_suffix("").parts), path)
    return names


def convert_score(source: Path, target_dir: Path, name: str | None = None) -> int:
    """Worker: one score (or every score of an opus) -> .mid files named ``name`` (default: the score's stem).

    Returns how many files were written.
    """
    from music21 import converter, stream

    stem = name or source.stem
    try:
        parsed = converter.parse(source)
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        for i, score in enumerate(scores):
            file_name = f"{stem}{OPUS_MARK}{i}.mid" if len(scores) > 1 else f"{stem}.mid"
            tmp = target_dir / f".{file_name}.tmp"
            score.write("midi", fp=tmp)
            tmp.replace(target_dir / file_name)
        return len(scores)
    except Exception as exc:  # music21 raises many kinds for scores it cannot translate
        log.debug("cannot convert %s: %s", source, exc)
        (target_dir / f"{stem}{FAILED_SUFFIX}").write_text(f"{source}: {type(exc).__name__}: {exc}\n")
        return 0


def convert_corpus(composers: Sequence[str], *, workers: int, show_progress: bool = True) -> list[Path]:
    """Convert what is not cached yet; returns one MIDI folder per composer."""
    folders, todo = [], []
    for composer in composers:
        folder = cache_root() / composer
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder)
        done = {p.stem.split(OPUS_MARK)[0] for p in folder.glob("*.mid")}
        done |= {p.stem for p in folder.glob(f"*{FAILED_SUFFIX}")}
        todo += [(p, folder, name) for name, p in score_names(corpus_paths(composer)).items() if name not in done]
    if todo:
        log.info("converting %d music21 scores to MIDI (once; cached in %s)", len(todo), cache_root())
        with progress(len(todo), "converting scores", enabled=show_progress) as advance, ProcessPoolExecutor(
            max_workers=workers
        ) as pool:
            failed = 0
            for written in pool.map(convert_score, *zip(*todo, strict=True), chunksize=4):
                failed += written == 0
                advance()
        if failed:
            log.warning("music21 could not convert %d of %d scores; they are left out (why: %s/*/*%s)",
                        failed, len(todo), cache_root(), FAILED_SUFFIX)  # fmt: skip
    return folders
