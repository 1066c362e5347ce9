"""``dmc guide``: attach a guide model to a model folder for autoguidance, or remove it."""

from __future__ import annotations

import argparse
import sys

DEFAULT_WEIGHT = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``guide``."""
    p = subparsers.add_parser(
        "guide",
        help="attach a weaker model of the same data as a guide (autoguidance), or remove it",
        description="Copy the model folder GUIDE into MODEL/guide and record it in MODEL's card, so that "
        "generate and serve move each step away from the guide's prediction by WEIGHT. "
        "The guide must share the model's dataset scaling, length and noise schedule.",
    )
    p.add_argument("model", help="the model folder to guide, e.g. weights/default")
    p.add_argument("guide", nargs="?", default=None, help="the guide's model folder (from 'dmc export')")
    p.add_argument("--weight", type=float, default=DEFAULT_WEIGHT,
                   help=f"guidance weight stored in the card (default {DEFAULT_WEIGHT:g}; 0 keeps it but off)")
    p.add_argument("--remove", action="store_true", help="remove the model's guide")
    p.set_defaults(handler=run_guide)  # fmt: skip


def run_guide(args: argparse.Namespace) -> int:
    """Attach or remove, then say what the card now holds."""
    from bridge.errors import BridgeError
    from bridge.guidance import attach_guide, detach_guide

    if args.remove == (args.guide is not None):
        raise BridgeError("give either a GUIDE folder to attach or --remove")
    if args.remove:
        card = detach_guide(args.model)
        sys.stdout.write(f"{args.model}: no guide\n")
        return 0
    card = attach_guide(args.model, args.guide, args.weight)
    sys.stdout.write(f"{args.model}: guided by {args.guide} at weight {card.guide.weight:g}\n")  # type: ignore[union-attr]
    return 0
