"""Where on the sampling path does a model lose the key? Real music noised to t0, sampled back down.

    python benchmarks/path_key.py --data data/classical.npz [--model weights/default] [--segments 32]

Held-out segments are noised to timestep t0 and taken back to t = 0 by the model's own ancestral
sampler (DDPM, every timestep, no key projection). Below some t0 the noised music still carries
its key and a model that knows keys keeps it; from pure noise (t0 = T - 1) the model must find one.
For each t0 it prints the share of notes in the original segment's key, and in the best-fitting
key of the result itself (scale consistency), beside the clean segments' own shares. The t0
where these fall toward 0.66 (the share of a random pitch set) is where the model stops holding a key.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from denoise_resolution import in_key_share, key_masks

from bridge.runtime import Denoiser, load_model
from training.datafile import load_dataset

START_TIMESTEPS = (5, 20, 50, 100, 200, 400, 999)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a dataset .npz (its held-out segments are used)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--segments", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    denoiser = load_model(args.model, "cpu")
    stats = denoiser.card.stats
    x0 = stats.scale(load_dataset(args.data).heldout_segments[: args.segments])[:, None]
    np.minimum(x0[..., 1:], 1.0, out=x0[..., 1:])
    keys = key_masks(x0[:, 0], stats)
    print(f"clean segments: {in_key_share(x0[:, 0], keys, stats):.3f} in their key, "
          f"{in_key_share(x0[:, 0], key_masks(x0[:, 0], stats), stats):.3f} in their own best key")  # fmt: skip
    print(f"{'t0':>5}  in the segment's key  in the result's own best key")
    rng = np.random.default_rng(0)
    for t0 in START_TIMESTEPS:
        out = sample_down(denoiser, x0, t0, rng)
        own = in_key_share(out, key_masks(out, stats), stats)
        print(f"{t0:>5}  {in_key_share(out, keys, stats):>20.3f}  {own:>28.3f}")


def sample_down(denoiser: Denoiser, x0: np.ndarray, t0: int, rng: np.random.Generator) -> np.ndarray:
    """``x0`` ``(N, 1, L, 3)`` noised to ``t0``, then DDPM ancestral steps to 0; returns ``(N, L, 3)``."""
    schedule = denoiser.card.schedule
    betas, alphas, alpha_bars = schedule.betas, schedule.alphas, schedule.alpha_bars
    x = np.sqrt(alpha_bars[t0]) * x0 + np.sqrt(1.0 - alpha_bars[t0]) * rng.standard_normal(x0.shape)
    for t in range(t0, -1, -1):
        eps = denoiser(x.astype(np.float32), np.full(len(x), t, np.float32))
        x = (x - betas[t] / np.sqrt(1.0 - alpha_bars[t]) * eps) / np.sqrt(alphas[t])
        if t:
            variance = betas[t] * (1.0 - alpha_bars[t - 1]) / (1.0 - alpha_bars[t])
            x += np.sqrt(variance) * rng.standard_normal(x.shape)
    return x[:, 0]


if __name__ == "__main__":
    main()
