"""Where onsets fall in the beat, which gaps lead there, and how alike the bars are, per set of pieces.

    python benchmarks/onset_phase.py out/ [more/ ...] --reference data/classical-v2.npz

For each set (a folder of .mid, or a dataset's held-out split): the share of onsets (measured from
each piece's first note) on the beat, a sixteenth after it, its half and three sixteenths after;
the shares of the commonest gaps between onsets; the median groove consistency per piece
(``dmc evaluate``'s metric); and, per piece, the share of its gaps that are sixteenths (median and
90th percentile: most pieces have few, some run in them). This is what ``--onsets corpus`` and
``--onsets echo`` were judged by (docs/evaluation.md, "Corpus onsets" and "Echo onsets").
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from bridge.note_lengths import CELLS_PER_BEAT as CELLS
from evaluation.metrics import groove_consistency, onset_groups
from evaluation.sources import load_pieces

SIXTEENTHS = (0, 3, 6, 9)  # the beat, a sixteenth after, the half-beat, three sixteenths after (cells)


def describe(pieces: list) -> str:
    """One line: phase shares, top gaps (in beats), the median groove consistency, the pieces' sixteenths."""
    phases, gaps, sixteenths = Counter(), Counter(), []
    for piece in pieces:
        onsets = np.array(sorted(onset_groups(piece)))
        cells = np.rint(np.diff(onsets) * CELLS).astype(int)
        phases.update((np.rint(onsets * CELLS).astype(int) % CELLS).tolist())
        gaps.update(cells.tolist())
        sixteenths.append(np.mean(cells == CELLS // 4) if len(cells) else np.nan)
    n_on, n_gap = max(sum(phases.values()), 1), max(sum(gaps.values()), 1)
    phase = " ".join(f"{cell / CELLS:.2f}:{phases[cell] / n_on:.3f}" for cell in SIXTEENTHS)
    top = " ".join(f"{cell / CELLS:.2f}:{count / n_gap:.3f}" for cell, count in gaps.most_common(6))
    groove = np.nanmedian([groove_consistency(p) for p in pieces])
    runs = np.nanquantile(sixteenths, [0.5, 0.9])
    return f"phase in beat {phase} | gaps {top} | groove median {groove:.3f} | sixteenths {runs[0]:.2f} / {runs[1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", help="folders of .mid (or .npz datasets: their held-out split)")
    parser.add_argument("--reference", help="a dataset .npz: its held-out split is printed first")
    args = parser.parse_args()
    for path in ([args.reference] if args.reference else []) + args.sets:
        print(f"{path}: {describe(load_pieces(path).pieces)}")


if __name__ == "__main__":
    main()
