"""Noise-prediction error per timestep and feature of training runs, side by side on the same noise.

    python benchmarks/timestep_loss.py --data data/classical.npz runs/medium-gpu runs/medium-lattice

The held-out loss a run logs is one mean over all timesteps, dominated by the noisy ones. A change
meant for the last denoising steps (``train.low_noise_share``, a new input feature) shows only here:
the EMA weights of each run predict the noise of the same held-out segments at a few low and middle
timesteps, and the eps MSE is printed per feature (pitch / duration / gap). Needs TensorFlow (it
reads runs, not exports); a JAX run is read too.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from training.datafile import load_dataset
from training.pipeline import heldout_batches
from training.run import load_ema_network

TIMESTEPS = (1, 2, 5, 20, 50, 200)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (TensorFlow or JAX)")
    parser.add_argument("--data", required=True, help="a dataset .npz (its held-out segments are used)")
    parser.add_argument("--segments", type=int, default=64)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = load_dataset(args.data)
    batches = heldout_batches(data, args.segments, 1)  # scaled exactly as training scales its held-out loss
    if batches is None:
        parser.error(f"{args.data} has fewer than {args.segments} held-out segments; lower --segments")
    x0, style, _ = (b.numpy() for b in next(iter(batches)))
    print(f"eps MSE per feature (pitch/duration/gap) on {len(x0)} held-out segments")
    print(f"{'run':<28} {'step':>6}  " + "  ".join(f"{f't={t}':>17}" for t in TIMESTEPS))
    for run in args.runs:
        network, config, meta = load_ema_network(run)
        alpha_bars = config.diffusion.noise_schedule().alpha_bars
        styles = [style] if config.model.styles else []  # a styled run sees each segment's own style
        cells = "  ".join(_cell(network, x0, styles, alpha_bars[t], t) for t in TIMESTEPS)
        print(f"{run[-28:]:<28} {meta.get('checkpoint_step', meta.get('step', '?')):>6}  {cells}")


def _cell(network: Any, x0: np.ndarray, styles: list[np.ndarray], alpha_bar: float, t: int) -> str:
    """The eps MSE per feature at timestep ``t``, with noise drawn from a seed fixed per t; ``styles``: the
    style input ``(B,)`` of a styled network, else empty."""
    eps = np.random.default_rng(t).standard_normal(x0.shape).astype(np.float32)
    xt = (np.sqrt(alpha_bar) * x0 + np.sqrt(1.0 - alpha_bar) * eps).astype(np.float32)
    predicted = np.asarray(network([xt, np.full(len(x0), t, np.float32), *styles], training=False))
    mse = ((predicted - eps) ** 2).mean(axis=(0, 1, 2))
    return "/".join(f"{m:.3f}" for m in mse)


if __name__ == "__main__":
    main()
