"""``dmc dataset build`` and ``dmc dataset info``: light to import (numpy work happens in the handler)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

log = logging.getLogger("dmc.dataset")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dataset`` with its ``build`` and ``info`` subcommands."""
    parser = subparsers.add_parser("dataset", help="build a training dataset from MIDI files")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="read MIDI folders (or music21's corpus) into one .npz")
    build.add_argument("sources", nargs="*", help="folders (searched recursively) or .mid/.midi files")
    build.add_argument("--out", required=True, help="the .npz to write (atomically)")
    build.add_argument("--music21", nargs="+", default=[], metavar="COMPOSER",
                       help="add music21's offline corpus: bach, palestrina, beethoven, mozart, haydn, ...")
    build.add_argument("--length", type=int, default=128, help="notes per segment, L (default 128)")
    build.add_argument("--hop", type=int, default=0, help="notes between segment starts (default: L, no overlap)")
    build.add_argument("--encoding", choices=("log", "linear"), default="log",
                       help="pitch as semitones (log, default) or Hz (linear, the seed's)")
    build.add_argument("--families", nargs="+", default=None,
                       help="GM instrument families to take (default piano; music21: all), or 'all'")
    build.add_argument("--programs", nargs="+", type=int, default=[], help="extra GM program numbers to take")
    build.add_argument("--mode", choices=("longest", "merge"), default=None,
                       help="longest matching part (default) or all matching parts merged (default for music21)")
    build.add_argument("--max-duration", type=float, default=16.0, help="beats; longer notes drop their segment")
    build.add_argument("--max-delta", type=float, default=16.0, help="beats; longer gaps drop their segment")
    build.add_argument("--heldout", type=float, default=0.1, help="share held out, as whole files (default 0.1)")
    build.add_argument("--heldout-by", choices=("segments", "files"), default="segments",
                       help="segments (default): that share of each source folder's segments, so long pieces are "
                       "held out as often as short ones; files: that share of the files, drawn at random (the "
                       "shipped model's dataset was built so)")
    build.add_argument("--time-quantile", type=float, default=0.995,
                       help="scale durations and gaps up to this quantile, not the maximum (1: the maximum)")
    build.add_argument("--time-encoding", choices=("linear", "log"), default="linear",
                       help="log: scale log2(beats + 1/16) of durations and gaps, so note values lie evenly apart")
    build.add_argument("--pitch-gain", type=float, default=1.0,
                       help="scale pitch to [-gain, gain] instead of [-1, 1]: the network sees pitch classes "
                       "through gain**2 times less noise at every timestep (an experiment; see docs/training.md)")
    build.add_argument("--home-key", action="store_true",
                       help="move every segment to C major or A minor (its best-fitting key's tonic to C or A): "
                       "the network learns one key's degrees, and the sampler moves its music to the key you ask")
    build.add_argument("--merge-unisons", action="store_true",
                       help="play each file as one keyboard would: a pitch doubled at one onset (a violin on the "
                       "soprano line) sounds once, and striking a sounding pitch again ends it; piano-like data")
    build.add_argument("--seed", type=int, default=0, help="seed of the held-out choice")
    build.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    build.set_defaults(handler=run_build)  # fmt: skip
    info = actions.add_parser("info", help="print a dataset's summary")
    info.add_argument("path")
    info.set_defaults(handler=run_info)


def run_build(args: argparse.Namespace) -> int:
    """Build the dataset the arguments describe and print its summary."""
    from training.corpus import convert_corpus
    from training.dataset import BuildConfig, build_dataset
    from training.errors import TrainingError

    if not args.sources and not args.music21:
        raise TrainingError("give MIDI folders or files, or --music21 COMPOSER...")
    corpus = bool(args.music21)
    config = BuildConfig(
        length=args.length, hop=args.hop, encoding=args.encoding,
        families=tuple(args.families or (("all",) if corpus else ("piano",))), programs=tuple(args.programs),
        mode=args.mode or ("merge" if corpus else "longest"), max_duration=args.max_duration,
        max_delta=args.max_delta, heldout=args.heldout, heldout_by=args.heldout_by, time_quantile=args.time_quantile,
        time_encoding=args.time_encoding, pitch_gain=args.pitch_gain, home_key=args.home_key,
        merge_unisons=args.merge_unisons, seed=args.seed,
        workers=args.workers,
    )  # fmt: skip
    sources = [*args.sources, *convert_corpus(args.music21, workers=args.workers)]
    extra = {"music21": args.music21} if corpus else {}
    meta = build_dataset(sources, args.out, config, extra_meta=extra)
    print_summary(args.out, meta)
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print the summary stored in a dataset file."""
    from training.datafile import load_dataset

    print_summary(args.path, load_dataset(args.path).meta)
    return 0


def print_summary(path: str, meta: dict[str, Any]) -> None:
    """A short human summary, then the counts and skips as JSON, then (log pitch) the semitone a network's
    ``[model] chroma_semitone`` must be set to, (linear time) its ``delta_high``, and the styles ``[model] styles``
    counts."""
    from bridge.codec import FeatureStats
    from training.datafile import gaps_in_beats

    counts, skipped = meta["counts"], meta["skipped"]
    stats = FeatureStats.from_dict(meta["stats"])
    semitone, beats = stats.semitone, gaps_in_beats(stats)
    sys.stdout.write(
        f"{path}: {counts['segments']} segments of {meta['length']} notes "
        f"({counts['segments_train']} train, {counts['segments_heldout']} held out) "
        f"from {counts['files_used']} of {counts['files_found']} files\n"
        f"skipped: {json.dumps(skipped)}\nstats: {json.dumps(meta['stats'])}\n"
        + (f"semitone: {semitone:.9g} (scaled pitch units)\n" if semitone else "")
        + (f"delta_high: {stats.high[2]:.9g} (beats)\n" if beats else "")
        + (f"styles: {len(meta['styles'])} ({', '.join(meta['styles'])})\n" if meta.get("styles") else "")
    )
