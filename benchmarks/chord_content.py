"""What the pitch-class transitions score hears: chord content, voicing, or chord order?

    python benchmarks/chord_content.py --reference data/classical-v2.npz [SAMPLES ...] [--seeds 0 1]

The reference's files are split in two halves. One half (A) is the reference `dmc evaluate` scores
against; the other (B) is remade four ways, each scored against A like a model's samples:
- as it is (real music: what passing looks like);
- its pitches shuffled within each piece (the evaluation's shuffled baseline);
- revoiced: each chord keeps its pitch classes and its registers, but which class sits in which
  register is drawn at random (the chord's content kept, its voicing destroyed);
- chords shuffled: each chord's pitches go to another onset of the same size in the piece (content
  and voicing kept, the progression destroyed).
Sample folders given are scored against A too. The table shows the transitions' OA and KL (lower is
better) beside A's own floor and shuffled baseline, so a set's KL can be read against the pass mark.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bridge.codec import Note
from evaluation.baselines import shuffled_pitches
from evaluation.compare import evaluate, split_halves
from evaluation.metrics import onset_groups
from evaluation.sources import load_pieces

Remake = Callable[[Sequence[Note], np.random.Generator], list[Note]]


def revoiced(piece: Sequence[Note], rng: np.random.Generator) -> list[Note]:
    """Each chord's pitch classes dealt at random over its notes' octaves."""
    out = []
    for group in onset_groups(piece).values():
        notes = sorted(group, key=lambda n: n.pitch)
        classes = rng.permutation([n.pitch % 12 for n in notes])
        out += [Note(n.onset, n.pitch - n.pitch % 12 + int(c), n.duration, n.velocity)
                for n, c in zip(notes, classes, strict=True)]  # fmt: skip
    return out


def chords_shuffled(piece: Sequence[Note], rng: np.random.Generator) -> list[Note]:
    """Each chord's pitches moved to another onset holding as many notes (rhythm and voicings kept)."""
    groups = [sorted(g, key=lambda n: n.pitch) for g in onset_groups(piece).values()]
    by_size: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        by_size.setdefault(len(group), []).append(index)
    source = list(range(len(groups)))
    for indices in by_size.values():
        for target, origin in zip(indices, rng.permutation(indices), strict=True):
            source[target] = int(origin)
    pairs = (pair for target, origin in enumerate(source) for pair in zip(groups[target], groups[origin], strict=True))
    return [Note(n.onset, m.pitch, n.duration, n.velocity) for n, m in pairs]


def remade(pieces: Sequence[Sequence[Note]], remake: Remake, rng: np.random.Generator) -> list[list[Note]]:
    return [remake(p, rng) for p in pieces]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, nargs="*", help="folders of generated .mid files to score beside")
    parser.add_argument("--reference", type=Path, required=True, help="dataset .npz (held-out split)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="file splits A/B (0 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    reference = load_pieces(args.reference, split="heldout")
    samples = {str(folder): list(load_pieces(folder).pieces) for folder in args.samples}
    print(f"{'set':<28} {'seed':>4} {'OA':>7} {'KL':>7} {'floor KL':>9} {'shuffled KL':>12}")
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        a, b = split_halves(len(reference.pieces), reference.groups, rng)
        half_a = [reference.pieces[i] for i in a]
        half_b = [reference.pieces[i] for i in b]
        sets = {
            "B as it is": half_b,
            "B pitches shuffled": shuffled_pitches(half_b, rng),
            "B revoiced": remade(half_b, revoiced, rng),
            "B chords shuffled": remade(half_b, chords_shuffled, rng),
            **samples,
        }
        for name, pieces in sets.items():
            report = evaluate(pieces, half_a, seed, reference_groups=[reference.groups[i] for i in a])
            scores = {s.name: s for s in report.scores}
            oa, kl = scores["pitch_class_transitions"], scores["pitch_class_transitions_kl"]
            print(f"{name[-28:]:<28} {seed:>4} {oa.sample:7.3f} {kl.sample:7.3f} {kl.heldout:9.3f} {kl.shuffled:12.3f}")
        print()


if __name__ == "__main__":
    main()
