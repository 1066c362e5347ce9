"""``dmc generate``: the seed's ``generator.py save_folder --n 8``, on onnxruntime."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from fractions import Fraction

log = logging.getLogger("dmc.generate")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``generate``."""
    p = subparsers.add_parser("generate", help="compose .mid files offline")
    p.add_argument("out", help="folder for sample-1.mid ... and samples.json (refused if not empty, see --force)")
    p.add_argument("--n", type=int, default=8, help="how many pieces (default 8)")
    p.add_argument("--model", default=None, help="model folder or name under weights/ (default: the shipped one)")
    p.add_argument("--sampler", choices=("ddpm", "ddim", "dpm++"), default="dpm++",
                   help="dpm++ (default, 20 steps), ddim (50) or ddpm (all 1000 steps, the seed's)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the sampler's)")
    p.add_argument("--seed", type=int, default=None, help="seed of the first piece (piece i gets seed+i)")
    p.add_argument("--prompt", default=None, metavar="FILE.mid", help="continue this MIDI file")
    p.add_argument("--notes", type=int, default=None,
                   help="notes sampled per piece (default: the model's 128); a pitch doubled at one onset is "
                   "written once")
    p.add_argument("--bpm", type=float, default=120.0, help="tempo written into the files")
    p.add_argument("--key", default="auto", type=_none,
                   help='keep to a key: "C major", "F# minor", "D dorian", "0,2,4,7,9"; "auto" (default): each piece '
                   'keeps to the key it leans toward; "none": all 12 pitch classes')
    p.add_argument("--low", type=int, default=21, help="lowest MIDI pitch (default 21, A0)")
    p.add_argument("--high", type=int, default=108, help="highest MIDI pitch (default 108, C8)")
    p.add_argument("--grid", type=_grid, default=0.25,
                   help="keep durations and onsets on this grid, in beats (default 0.25; 1/3 for triplets; 0: free)")
    p.add_argument("--note-lengths", choices=("corpus", "grid"), default="corpus",
                   help="corpus (default): durations on the grid weighed by how often the model's training music "
                   "used each length; grid: the nearest grid length")
    p.add_argument("--chords", choices=("corpus", "model"), default="corpus",
                   help="corpus (default): each chord moves to the nearest chord the model's training music struck "
                   "(a note moves at most 2 semitones, never out of a named --key); model: the network's own chords")
    p.add_argument("--onsets", choices=("echo", "corpus", "grid"), default="echo",
                   help="echo (default): each onset gap on the grid weighed by how the model's training music moved "
                   "on from that point of the beat and by the gaps the phrase (or its prompt) took from there before, "
                   "so onsets keep to the beat and bars repeat their rhythm; corpus: the training music's alone; "
                   "grid: the nearest grid gap")
    p.add_argument("--transpose", type=int, default=0, help="semitones")
    p.add_argument("--velocity", type=int, default=80, help="note velocity 1..127")
    p.add_argument("--program", type=int, default=0, help="General MIDI program (0: piano)")
    p.add_argument("--channel", type=int, default=0, help="MIDI channel 0..15")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="onnxruntime device")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16"), default="auto",
                   help="auto: the model's fp16 graph on CUDA, fp32 on CPU")
    p.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="autoguidance weight when the model carries a guide (default: the card's; 0: off)")
    p.add_argument("--style", default="mix",
                   help="for a model trained on several source folders (the default: bach, beethoven, mozart, haydn): "
                   'one of them, "mix" (default: each piece draws one, as often as the training music had it) or '
                   '"none" (no style: the blend of all)')
    p.add_argument("--from", dest="record", default=None, metavar="samples.json",
                   help="make the pieces of an earlier samples.json again (other options are ignored)")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    p.add_argument("--audio", action="store_true", help="also render a .wav beside each .mid (needs fluidsynth)")
    p.set_defaults(handler=run_generate)  # fmt: skip


def _none(text: str) -> str | None:
    return None if text.strip().lower() == "none" else text


def _grid(text: str) -> float | None:
    value = float(Fraction(text))
    return value or None


def run_generate(args: argparse.Namespace) -> int:
    """Generate (or regenerate) and name what was written."""
    from bridge.audio import render_wav
    from bridge.generate import GenerateOptions, generate, read_record

    if args.record:
        options, identity = read_record(args.record)
    else:
        fields = [f.name for f in dataclasses.fields(GenerateOptions)]  # each option has its flag
        options, identity = GenerateOptions(**{f: getattr(args, f) for f in fields}), None
    paths = generate(options, args.out, force=args.force, expect=identity)
    for path in paths:
        sys.stdout.write(f"{path}\n")
        if args.audio:
            sys.stdout.write(f"{render_wav(path)}\n")
    return 0
