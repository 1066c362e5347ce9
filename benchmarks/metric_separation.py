"""Which evaluation metrics can tell real music from the baselines on a given reference set?

    python benchmarks/metric_separation.py --reference data/classical.npz [--seeds 0 1 2 3] [--splits 20]

For each seed, the reference is split in halves as `dmc evaluate` does, and each metric's noise floor
(one half against the other) is printed beside the independent-notes and shuffled-pitch baselines.
A metric whose baseline reaches the floor under some seeds cannot judge a model on this reference:
its pass or failure there is noise. No model is involved; the samples' column is not computed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from evaluation.compare import evaluate
from evaluation.sources import load_pieces


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="dataset .npz (held-out split) or .mid folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--splits", type=int, default=20, help="random halvings per seed (20)")
    parser.add_argument("--merge-unisons", action="store_true", help="the reference as one keyboard plays it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    reference = load_pieces(args.reference, split="heldout", one_keyboard=args.merge_unisons)
    print(f"{len(reference.pieces)} reference pieces from {len(set(reference.groups))} files\n")
    print(f"{'metric':<36} {'seed':>4} {'floor':>7} {'indep.':>7} {'shuffled':>8}  baseline passes")
    pieces = list(reference.pieces)
    for seed in args.seeds:
        # The samples' column is unused: the first two reference pieces stand in for it.
        report = evaluate(pieces[:2], pieces, seed, reference_groups=reference.groups, splits=args.splits)
        for s in report.scores:
            flag = "YES" if s.baseline_passes() else ""
            name = s.name + (" *" if s.order_sensitive else "")
            print(f"{name:<36} {seed:>4} {s.heldout:7.3f} {s.independent:7.3f} {s.shuffled:8.3f}  {flag}")
        print()


if __name__ == "__main__":
    main()
