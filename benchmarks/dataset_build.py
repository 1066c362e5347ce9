"""Benchmark: `dmc dataset build` throughput, one worker (the reference) against all workers, in one run.

Writes a seeded folder of piano MIDI files (a few hundred notes each: a wandering melody over
block chords, on a sixteenth-note grid, at 480 or 960 ticks per beat), builds the dataset with
one worker and with every worker, checks that both give the same arrays, and prints one table.

    python benchmarks/dataset_build.py                 # 500 files, 1 worker vs os.cpu_count()
    python benchmarks/dataset_build.py --files 2000 --workers 8 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bridge.codec import Note
from bridge.midifile import write_midi
from training.datafile import load_dataset
from training.dataset import BuildConfig, build_dataset


def piano_piece(rng: np.random.Generator, count: int) -> list[Note]:
    """``count`` notes: a melody moving by small steps, a chord every beat or two in the left hand."""
    notes: list[Note] = []
    beat, pitch = 0.0, int(rng.integers(60, 76))
    while len(notes) < count:
        if rng.random() < 0.4:  # left-hand chord
            root = int(rng.integers(36, 52))
            length = float(rng.choice([1.0, 2.0]))
            notes += [Note(beat, root + i, length, int(rng.integers(50, 80))) for i in (0, 4, 7)]
        for _ in range(int(rng.integers(2, 5))):  # right-hand melody
            pitch = int(np.clip(pitch + rng.choice([-4, -2, -1, 1, 2, 3, 5]), 55, 90))
            step = float(rng.choice([0.25, 0.5, 0.5, 1.0]))
            notes.append(Note(beat, pitch, step * float(rng.choice([0.5, 0.9, 1.0])), int(rng.integers(60, 110))))
            beat += step
    return notes[:count]


def write_corpus(folder: Path, files: int, notes: tuple[int, int], seed: int) -> int:
    """The benchmark's input folder; returns the number of notes written."""
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(files):
        piece = piano_piece(rng, int(rng.integers(notes[0], notes[1] + 1)))
        write_midi(folder / f"{i // 100:02d}" / f"piece{i:05d}.mid", piece, bpm=float(rng.integers(70, 160)),
                   ticks_per_beat=int(rng.choice([480, 960])))  # fmt: skip
        total += len(piece)
    return total


def time_build(folder: Path, out: Path, config: BuildConfig, repeats: int) -> tuple[float, dict]:
    """Best wall time of ``repeats`` builds, and the meta of the last."""
    best, meta = float("inf"), {}
    for _ in range(repeats):
        start = time.perf_counter()
        meta = build_dataset([folder], out, config, show_progress=False)
        best = min(best, time.perf_counter() - start)
    return best, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500, help="MIDI files to generate (default 500)")
    parser.add_argument("--notes", type=int, nargs=2, default=(200, 400), help="notes per file, min max")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the parallel run (default: all)")
    parser.add_argument("--length", type=int, default=128, help="segment length L")
    parser.add_argument("--repeats", type=int, default=1, help="builds per setting; the best time counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dmc-bench-") as tmp:
        folder = Path(tmp) / "midi"
        start = time.perf_counter()
        total_notes = write_corpus(folder, args.files, tuple(args.notes), args.seed)
        size_mb = sum(p.stat().st_size for p in folder.rglob("*.mid")) / 1e6
        print(f"corpus: {args.files} files, {total_notes} notes, {size_mb:.1f} MB "
              f"(written in {time.perf_counter() - start:.1f} s); L={args.length}; "
              f"cpu_count={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}")  # fmt: skip

        rows, arrays = [], []
        for workers in (1, args.workers):
            config = BuildConfig(length=args.length, workers=workers)
            out = Path(tmp) / f"w{workers}.npz"
            seconds, meta = time_build(folder, out, config, args.repeats)
            data = load_dataset(out)
            arrays.append((data.segments, data.file_id, data.heldout))
            rows.append((workers, seconds, meta["counts"]["files_found"], meta["counts"]["segments"]))
        same = all(np.array_equal(a, b) for a, b in zip(arrays[0], arrays[1], strict=True))

    reference = rows[0][1]
    print(f"\n{'workers':>7} {'seconds':>8} {'files/s':>8} {'notes/s':>9} {'segments':>8} {'speed-up':>8}")
    for workers, seconds, files, segments in rows:
        print(f"{workers:>7} {seconds:>8.2f} {files / seconds:>8.1f} {total_notes / seconds:>9.0f} {segments:>8} "
              f"{reference / seconds:>7.2f}x")  # fmt: skip
    print(f"\nidentical arrays with 1 and {args.workers} workers: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
