"""``dmc evaluate``: score generated pieces against held-out real music (numpy only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_MAX_PIECES = 400


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the ``dmc`` parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="compare generated pieces with held-out music (Yang & Lerch, Mittal et al. metrics)",
        description="Score SAMPLES against the held-out reference, beside the noise floor (one half of the "
        "reference against the other) and two baselines that must fail (independent notes, shuffled pitches).",
    )
    parser.add_argument(
        "samples",
        type=Path,
        metavar="SAMPLES",
        help="folder of .mid files (e.g. from `dmc generate`), or a dataset .npz (its training split)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        required=True,
        metavar="HELDOUT",
        help="dataset .npz (its held-out split) or a folder of .mid files",
    )
    parser.add_argument(
        "--reference-style",
        metavar="STYLE",
        help="only the reference's segments of this style (a source folder of a dataset built with styles), "
        "to check how well `dmc generate --style STYLE` keeps to it",
    )
    parser.add_argument(
        "--merge-unisons",
        action="store_true",
        help="score both sets as one keyboard plays them: a pitch doubled at one onset once, a pitch struck "
        "again ending there (as `dmc generate` writes its pieces; a corpus of merged parts doubles voices)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the full report as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of the reference split and baselines (0)")
    parser.add_argument(
        "--length",
        type=int,
        default=0,
        help="cut longer .mid files into segments of this many notes "
        "(default: the reference dataset's segment length, else 128)",
    )
    parser.add_argument(
        "--splits", type=int, default=5, help="random halvings of the reference to average the scores over (5)"
    )
    parser.add_argument(
        "--max-pieces",
        type=int,
        default=DEFAULT_MAX_PIECES,
        help=f"use at most this many pieces of each set ({DEFAULT_MAX_PIECES})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load both sets, evaluate, print the table to stdout and optionally write the JSON."""
    import numpy as np

    from evaluation.compare import evaluate
    from evaluation.report import write_json, write_table
    from evaluation.sources import DEFAULT_LENGTH, load_pieces

    rng = np.random.default_rng(args.seed)
    reference = load_pieces(args.reference, split="heldout", length=args.length or DEFAULT_LENGTH,
                            style=args.reference_style, one_keyboard=args.merge_unisons)  # fmt: skip
    length = args.length or reference.length or DEFAULT_LENGTH
    samples = load_pieces(args.samples, split="train", length=length, one_keyboard=args.merge_unisons)
    reference, samples = (s.subsample(args.max_pieces, rng) for s in (reference, samples))
    report = evaluate(
        samples.pieces, reference.pieces, args.seed, reference_groups=reference.groups, splits=args.splits
    )
    write_table(report, sys.stdout)
    if args.json:
        write_json(report, args.json)
    return 0
