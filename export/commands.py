"""``dmc export``: light to import; TensorFlow and tf2onnx load inside the handler."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export``."""
    parser = subparsers.add_parser("export", help="turn a training run into an ONNX model folder")
    parser.add_argument("run", help="the training run folder (runs/NAME)")
    parser.add_argument("--out", required=True, help="the model folder to write, e.g. weights/NAME")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--name", default=None, help="model name in the card (default: the folder's name)")
    parser.add_argument("--fp16", action="store_true", help="also write a half-precision variant for GPUs")
    parser.add_argument("--data", default=None,
                        help="the run's dataset .npz (for the corpus note lengths) if run.json's path is not here")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Export, then say what was written and how close the ONNX graph is to Keras."""
    from export.model_dir import export_run

    card = export_run(args.run, args.out, step=args.step, name=args.name, fp16=args.fp16, data=args.data)
    sys.stdout.write(
        f"{args.out}: {card.model_file} ({card.parameters} parameters, {card.training.get('steps')} steps), "
        f"parity max abs {card.parity['max_abs']:.2e}\n"
    )
    return 0
