"""``dmc train``: train or resume a run; TensorFlow is imported only when the command runs."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dmc train``."""
    p = subparsers.add_parser(
        "train",
        help="train the diffusion model (the same command resumes an interrupted run)",
        description="Train the causal U-Net on a dataset file. Re-running the same command resumes "
        "from the run's last checkpoint with the same data order and learning-rate schedule.",
    )
    p.add_argument("--config", default="small", help="a preset (seed, small, tiny, ...) or a .toml file")
    p.add_argument("--data", required=True, help="dataset .npz written by `dmc dataset build`")
    p.add_argument("--run", required=True, help="run directory (created, or resumed if it exists)")
    p.add_argument("--steps", type=int, help="total training steps (overrides the config's train.steps)")
    p.add_argument("--until", type=int, help="stop at this step, resumable later (e.g. for time-limited jobs)")
    p.add_argument("--init-from", metavar="RUN",
                   help="start a new run from this run's EMA weights (fine-tuning; same network config)")  # fmt: skip
    p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"),
                   help="mirrored: all local GPUs (else CPUs); multiworker: the cluster in TF_CONFIG")  # fmt: skip
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``dmc train``."""
    from training.config import load_config

    config = load_config(args.config)
    if args.steps is not None:
        config = config.replace_train(steps=args.steps)

    from training.run import train  # TensorFlow starts here

    logging.getLogger("absl").setLevel(logging.WARNING)  # TF's per-checkpoint chatter

    meta = train(config, args.data, args.run, strategy=args.strategy, until=args.until, init_from=args.init_from)
    log.info("run %s at step %d of %d", args.run, meta["steps"], config.train.steps)
    return 0
