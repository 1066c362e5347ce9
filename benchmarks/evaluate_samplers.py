"""Music quality of a model per sampler, and of key projection during denoising vs snapping after.

    python benchmarks/evaluate_samplers.py --reference data/classical.npz [--model weights/default] [--n 96]

For each sampler it generates ``--n`` pieces the way ``dmc generate`` does by default (auto key
and the 1/4-beat grid kept during denoising, chords snapped to the card's after), in batches, and
scores them with ``dmc evaluate``'s metrics against the dataset's held-out split, with the noise
floor and the baselines computed in the same run. A second table compares, on DPM-Solver++-20
with the same seeds: no constraint (the raw model, its own chords), the constraint applied only
as a final snap, the constraint kept at every step with the nearest grid length, and (the
default) with the corpus's note lengths weighed in.
``--json`` writes every report; ``--card`` stores the default sampler's summary in the card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bridge.card import read_card, write_card
from bridge.codec import Note, merge_unisons, value_to_pitch
from bridge.constraints import PitchConstraint, key_of
from bridge.decoding import DecodeOptions, decode
from bridge.runtime import Denoiser, load_model
from bridge.samplers import make_sampler, sample
from bridge.styles import MIX, pick_style
from evaluation.compare import evaluate
from evaluation.report import EvaluationReport
from evaluation.sources import load_pieces

SAMPLERS = (("dpm++", 20), ("dpm++", 10), ("ddim", 50), ("ddpm", None))
DEFAULT = ("dpm++", 20)
GRID = 0.25
BATCH = 32
SHOWN = ("scale_consistency", "pitch_class_transitions", "onset_grid_share", "note_length_histogram",
         "groove_consistency", "frechet_distance")  # fmt: skip


def generate(denoiser: Denoiser, name: str, steps: int | None, n: int, constraint: PitchConstraint | None,
             project_during: bool = True) -> tuple[np.ndarray, float]:  # fmt: skip
    """Scaled ``(n, L, 3)`` pieces in batches (seed = batch index) and seconds per piece; a styled model
    writes piece ``i`` in the style ``dmc generate --style mix --seed 0`` would give it."""
    started, parts = time.perf_counter(), []
    for seed, start in enumerate(range(0, n, BATCH)):
        sampler, count = make_sampler(name, denoiser.card), min(BATCH, n - start)
        styles = denoiser.card.styles
        if styles is not None:
            denoiser.set_style(np.array([pick_style(styles, MIX, i) for i in range(start, start + count)]))
        parts.append(sample(denoiser, sampler, count, steps, seed, constraint=constraint,
                            project_during=project_during))  # fmt: skip
    return np.concatenate(parts), (time.perf_counter() - started) / n


def to_notes(denoiser: Denoiser, scaled: np.ndarray, grid: float | None, chords: bool = True) -> list[list[Note]]:
    """The notes ``dmc generate`` would write: decoded (``chords``: snapped to the card's), then as one keyboard
    plays them."""
    options = DecodeOptions(grid=grid, low=21, high=108, chords=denoiser.card.chords if chords else None)
    decoded = decode(scaled, denoiser.card.stats, options, seed=0)
    return [merge_unisons(notes) for notes in decoded]


def in_key_share(denoiser: Denoiser, scaled: np.ndarray) -> float:
    """Share of notes inside the best-fitting major/minor key of their own piece (before any snap)."""
    pitches = value_to_pitch(denoiser.card.stats.unscale(scaled)[..., 0], denoiser.card.stats.encoding)
    shares = [key_of(p)[2] for p in pitches]
    return float(np.mean(shares))


def row(label: str, report: EvaluationReport, extra: str) -> str:
    scores = {s.name: s.sample for s in report.scores}
    cells = "".join(f"{scores[name]:>10.3f}" for name in SHOWN)
    return f"{label:<26}{report.summary()['passed']:>4}/{len(report.scores):<3}{cells}  {extra}"


def header(first: str) -> str:
    return f"{first:<26}{'pass':>8}" + "".join(f"{name[:9]:>10}" for name in SHOWN)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="the dataset .npz whose held-out split is the reference")
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=96, help="pieces per sampler")
    parser.add_argument("--json", default=None, help="write every report here")
    parser.add_argument("--guidance", type=float, default=None, help="autoguidance weight (default: the card's)")
    parser.add_argument("--card", action="store_true", help="store the default sampler's summary in the model card")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    denoiser = load_model(args.model, "cpu", guidance=args.guidance)
    reference = load_pieces(args.reference, split="heldout", length=denoiser.length).pieces
    constraint = PitchConstraint.parse("auto", 21, 108, grid=GRID)
    reports: dict[str, dict] = {}

    def score(label: str, scaled: np.ndarray, grid: float | None, extra: str, chords: bool = True) -> EvaluationReport:
        report = evaluate(to_notes(denoiser, scaled, grid, chords), reference, 0)
        reports[label] = report.to_dict()
        print(row(label, report, extra), flush=True)
        return report

    guided = f", guided at {denoiser.guidance:g}" if denoiser.guidance else ""
    print(f"model {denoiser.card.name!r}{guided}: {args.n} pieces per row against {len(reference)} held-out segments\n")
    print(header("sampler (auto key, grid)") + "  s/piece")
    for name, steps in SAMPLERS:
        scaled, seconds = generate(denoiser, name, steps, args.n, constraint)
        report = score(f"{name}-{steps or denoiser.card.schedule.steps}", scaled, GRID, f"{seconds:.3f}")
        if (name, steps) == DEFAULT:
            default_summary = {"sampler": f"{name}-{steps}", "guidance": denoiser.guidance, "pieces": args.n,
                               "constraint": "auto key, 1/4-beat grid, corpus lengths, echo onsets, corpus chords",
                               **report.summary()}  # fmt: skip

    print("\n" + header("dpm++-20: constraint") + "  in-key before snap")
    raw, _ = generate(denoiser, "dpm++", 20, args.n, None)
    score("none (raw model)", raw, None, f"{in_key_share(denoiser, raw):.3f}", chords=False)
    snapped, _ = generate(denoiser, "dpm++", 20, args.n, constraint, project_during=False)
    score("snap after sampling", snapped, GRID, f"{in_key_share(denoiser, raw):.3f} (same trajectory as raw)")
    plain, _ = generate(denoiser, "dpm++", 20, args.n, dataclasses.replace(constraint, corpus_lengths=False))
    score("kept, nearest lengths", plain, GRID, f"{in_key_share(denoiser, plain):.3f}")
    kept, _ = generate(denoiser, "dpm++", 20, args.n, constraint)
    score("kept, corpus lengths", kept, GRID, f"{in_key_share(denoiser, kept):.3f}")
    print("\nnoise floor and baselines per metric: run `dmc evaluate` on any row's pieces; the pass rule is the same.")

    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    if args.card:
        card = read_card(denoiser.model_dir)
        evaluation = {**(card.evaluation or {}), "benchmark": {"command": " ".join(["python", *sys.argv]),
                                                              **default_summary}}  # fmt: skip
        write_card(denoiser.model_dir, dataclasses.replace(card, evaluation=evaluation))
        print(f"stored the summary in {denoiser.model_dir / 'model.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
