"""The ``dmc`` command line: parse, then call a library function a test can call too.

Each subcommand lives in a small module with ``register(subparsers)``; heavy imports
(TensorFlow, onnxruntime) happen inside the handler, so ``dmc --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bridge.errors import ComposerError

# Modules that each add their subcommands; imported at start-up, so they must be light.
COMMAND_MODULES = (
    "training.dataset_commands",
    "training.train_commands",
    "export.commands",
    "bridge.generate_commands",
    "bridge.serve_commands",
    "bridge.guide_commands",
    "evaluation.commands",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="dmc", description="Diffusion Music Composer")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dmc``; any package error (:class:`ComposerError`) exits 2 with its message."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.verbose else "%(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except ComposerError as exc:
        logging.getLogger("dmc").error("error: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
