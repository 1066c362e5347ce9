"""Does a model's note order carry information, and are its pitch classes tonal? Four checks on samples.

    python benchmarks/order_information.py out/ --reference data/classical.npz [--shuffles 3]

The evaluation table compares samples with real music, so a failed order-sensitive metric does not say
*why*. This splits it in two:

1. **Order.** Every order-sensitive metric of the samples, beside the same samples with their own
   pitches shuffled within each piece (rhythm and per-piece pitch histogram kept, as the shuffled
   baseline keeps them for real music). The difference is what the samples' order is worth. Real
   music's worth is the held-out floor minus the shuffled baseline, printed beside it. A model that
   scores the same shuffled has learned a per-piece pitch histogram and no voice leading.
2. **Tonal hierarchy.** The mean pitch-class histogram with each piece rotated to its best key's tonic
   (so 0 is the tonic, 7 the dominant), per mode, for the reference and the samples, and the total
   variation distance between them, the mean share of notes in the best key's scale, and the
   pitch-class entropy's mean and spread over pieces (how alike the pieces are). Shuffling
   keeps this histogram, so a model that loses to the shuffled baseline with no order information
   loses here. Run on samples made with ``--key none`` it shows what the network itself knows of
   keys, with no projection to help it.
3. **Variety.** How far apart the pieces' pitch-class transition matrices lie within each set
   (the mean distance between two pieces of the set): samples, the held-out floor's half of the
   reference and shuffled pitches, against the target half. The transitions' KL compares the spread
   of the target's own distances with that of the distances from a set to it, so a set whose
   pieces are too alike scores a high KL however typical each piece is.
4. **Voicing.** The intervals between adjacent notes of each chord (read upwards) and between
   successive notes of the top voice, as shares, for the reference and the samples, and the total
   variation distance between them. Real chords are thirds, fourths, fifths and octaves (and
   unisons, where merged parts double a voice), with hardly a minor second, and a real top voice
   moves by steps more than by any other interval.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bridge.codec import Note
from evaluation.baselines import shuffled_pitches
from evaluation.compare import evaluate, intra_set_distances, split_halves
from evaluation.metrics import (
    best_key,
    onset_groups,
    pitch_class_entropy,
    pitch_class_histogram,
    pitch_class_transitions,
    scale_consistency,
)
from evaluation.report import MetricScore
from evaluation.sources import PieceSet, load_pieces

DEGREES = ("1", "b2", "2", "b3", "3", "4", "#4", "5", "b6", "6", "b7", "7")
WIDEST = 13  # interval bins: 0..12 semitones, and 13 for anything wider than an octave


def _order_sensitive(scores: Sequence[MetricScore]) -> dict[str, MetricScore]:
    return {s.name: s for s in scores if s.order_sensitive}


def tonal_profiles(pieces: Sequence[Sequence[Note]]) -> dict[str, tuple[np.ndarray, int]]:
    """Mean pitch-class histogram ``(12,)`` rotated to each piece's tonic, and the piece count, per mode."""
    rotated: dict[str, list[np.ndarray]] = {"major": [], "minor": []}
    for piece in pieces:
        if piece:
            tonic, minor, _ = best_key(piece)
            rotated["minor" if minor else "major"].append(np.roll(pitch_class_histogram(piece), -tonic))
    return {mode: (np.mean(h, axis=0) if h else np.zeros(12), len(h)) for mode, h in rotated.items()}


def _print_order(samples: list[list[Note]], reference: PieceSet, seed: int, shuffles: int) -> None:
    args = {"reference_groups": reference.groups, "seed": seed}
    plain = _order_sensitive(evaluate(samples, reference.pieces, **args).scores)
    rng = np.random.default_rng(seed)
    shuffled = [_order_sensitive(evaluate(shuffled_pitches(samples, rng), reference.pieces, **args).scores)
                for _ in range(shuffles)]
    print(f"{'order-sensitive metric':<36} {'sample':>7} {'own shuf.':>9} {'worth':>7}   "
          f"{'floor':>7} {'shuffled':>8} {'worth':>7}")
    for name, s in plain.items():
        own = float(np.mean([run[name].sample for run in shuffled]))
        label = name + (" (lower)" if s.lower_is_better else "")
        print(f"{label:<36} {s.sample:7.3f} {own:9.3f} {s.sample - own:+7.3f}   "
              f"{s.heldout:7.3f} {s.shuffled:8.3f} {s.heldout - s.shuffled:+7.3f}")


def _print_profiles(samples: list[list[Note]], reference: PieceSet) -> None:
    real, model = tonal_profiles(reference.pieces), tonal_profiles(samples)
    print("\nmean pitch-class share by scale degree (each piece rotated to its best key's tonic)")
    print(f"{'':<18}" + "".join(f"{d:>6}" for d in DEGREES) + "  total variation")
    for mode in ("major", "minor"):
        for label, (profile, count) in (("reference", real[mode]), ("sample", model[mode])):
            tv = 0.5 * float(np.abs(profile - real[mode][0]).sum())
            print(f"{mode} {label:<9}{count:>4} " + "".join(f"{v:6.3f}" for v in profile) + f"  {tv:.3f}")
    in_key = [np.mean([scale_consistency(p) for p in pieces if p]) for pieces in (reference.pieces, samples)]
    print(f"share of notes in the best key's scale: reference {in_key[0]:.3f}, sample {in_key[1]:.3f}")
    entropy = [np.array([pitch_class_entropy(p) for p in pieces if p]) for pieces in (reference.pieces, samples)]
    spread = [f"{e.mean():.2f} ± {e.std():.2f}" for e in entropy]
    print(f"pitch-class entropy (bits), mean ± sd over pieces: reference {spread[0]}, sample {spread[1]}")


def _print_variety(samples: list[list[Note]], reference: PieceSet, seed: int) -> None:
    rng = np.random.default_rng(seed)
    halves = split_halves(len(reference.pieces), reference.groups, rng)
    target, floor = ([reference.pieces[i] for i in half] for half in halves)
    sets = {
        "target half": target,
        "floor half": floor,
        "shuffled floor": shuffled_pitches(floor, rng),
        "sample": samples,
    }
    print("\nvariety: mean distance between two pieces' pitch-class transition matrices, within each set")
    for label, pieces in sets.items():
        distances = intra_set_distances(np.array([pitch_class_transitions(p) for p in pieces]))
        print(f"{label:<16}{len(pieces):>5} pieces  {distances.mean():.3f} ± {distances.std():.3f}")


def interval_profiles(pieces: Sequence[Sequence[Note]]) -> tuple[np.ndarray, np.ndarray]:
    """Shares ``(14,)`` of the intervals within chords (adjacent notes, upwards) and of the top voice's steps."""
    chord, top = np.zeros(WIDEST + 1), np.zeros(WIDEST + 1)
    for piece in pieces:
        chords = [sorted(n.pitch for n in group) for group in onset_groups(piece).values()]
        for pitches in chords:
            np.add.at(chord, np.minimum(np.diff(pitches), WIDEST), 1.0)
        np.add.at(top, np.minimum(np.abs(np.diff([c[-1] for c in chords])), WIDEST), 1.0)
    return chord / max(chord.sum(), 1.0), top / max(top.sum(), 1.0)


def _print_voicing(samples: list[list[Note]], reference: PieceSet) -> None:
    real, model = interval_profiles(reference.pieces), interval_profiles(samples)
    print("\nvoicing: share of each interval (semitones) within chords and between top-voice notes")
    print(f"{'':<20}" + "".join(f"{i:>6}" for i in range(WIDEST)) + f"{'>12':>6}  total variation")
    for k, where in enumerate(("chords", "top voice")):
        for label, profiles in (("reference", real), ("sample", model)):
            tv = 0.5 * float(np.abs(profiles[k] - real[k]).sum())
            print(f"{where:<10}{label:<10}" + "".join(f"{v:6.3f}" for v in profiles[k]) + f"  {tv:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, help="a folder of generated .mid files (or a dataset .npz)")
    parser.add_argument("--reference", type=Path, required=True, help="dataset .npz (held-out split) or .mid folder")
    parser.add_argument("--shuffles", type=int, default=3, help="independent shuffles of the samples' pitches (3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    reference = load_pieces(args.reference, split="heldout")
    samples = [list(p) for p in load_pieces(args.samples).pieces]
    print(f"{len(samples)} samples; {len(reference.pieces)} reference pieces from {len(set(reference.groups))} files\n")
    _print_order(samples, reference, args.seed, args.shuffles)
    _print_profiles(samples, reference)
    _print_variety(samples, reference, args.seed)
    _print_voicing(samples, reference)


if __name__ == "__main__":
    main()
