"""Does ``--style`` reach the music? Pieces of each style scored against each style's held-out segments.

    python benchmarks/style_separation.py --reference data/classical-v2.npz [--model weights/default]
        [--styles bach beethoven] [--n 100] [--seed 0]

For every style named, ``--n`` pieces are written as ``dmc generate --style STYLE --seed SEED`` writes
them, then scored like ``dmc evaluate --reference-style`` against every named style's held-out
segments, all in this one run. If the conditioning works, each row scores best in its own column:
more passes, lower transitions KL and Fréchet distance.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from bridge.generate import GenerateOptions, generate
from evaluation.commands import DEFAULT_MAX_PIECES
from evaluation.compare import evaluate
from evaluation.sources import load_midi_folder, load_pieces

SHOWN = ("pitch_class_transitions_kl", "frechet_distance", "pitch_range", "chord_onset_share")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="a dataset .npz built with styles (its held-out split)")
    parser.add_argument("--model", default=None, help="a styled model folder (default: the shipped one)")
    parser.add_argument("--styles", nargs="+", default=["bach", "beethoven"])
    parser.add_argument("--n", type=int, default=100, help="pieces per style (100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    references = {style: load_pieces(args.reference, style=style) for style in args.styles}
    print(f"{'pieces':<20}{'reference':<12}{'pass':>6}" + "".join(f"{name[:14]:>16}" for name in SHOWN))
    for style in args.styles:
        with tempfile.TemporaryDirectory() as folder:
            options = GenerateOptions(n=args.n, model=args.model, seed=args.seed, style=style, device="cpu")
            generate(options, Path(folder) / "out")
            samples = load_midi_folder(Path(folder) / "out")
        for name, reference in references.items():
            rng = np.random.default_rng(args.seed)  # as dmc evaluate draws its pieces
            reference, pieces = reference.subsample(DEFAULT_MAX_PIECES, rng), samples.subsample(DEFAULT_MAX_PIECES, rng)
            report = evaluate(pieces.pieces, reference.pieces, args.seed, reference_groups=reference.groups)
            scores = {s.name: s.sample for s in report.scores}
            cells = "".join(f"{scores[metric]:>16.3f}" for metric in SHOWN)
            print(f"{'--style ' + style:<20}{name:<12}{report.summary()['passed']:>4}/{len(report.scores):<2}{cells}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
