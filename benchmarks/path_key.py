"""Where on the sampling path does a model lose the key? Real music noised to t0, sampled back down.

    python benchmarks/path_key.py --data data/classical.npz [--model weights/default] [--segments 32]

Held-out segments are noised to timestep t0 and taken back to t = 0 by the model's own ancestral
sampler (DDPM, every timestep from t0, no key projection). Below some t0 the noised music still carries
its key and a model that knows keys keeps it; from pure noise (t0 = T - 1) the model must find one.
For each t0 it prints the share of notes in the original segment's key, and in the best-fitting
key of the result itself (scale consistency), beside the clean segments' share. The t0
where these fall toward 0.66 (the share of a random pitch set) is where the model stops holding a key.
"""

from __future__ import annotations

import numpy as np
from denoise_resolution import in_key_share, key_masks, model_and_heldout

from bridge.runtime import Denoiser
from bridge.samplers import make_sampler

START_TIMESTEPS = (5, 20, 50, 100, 200, 400, 999)


def main(argv: list[str] | None = None) -> None:
    denoiser, x0 = model_and_heldout(__doc__.splitlines()[0], argv, 32)
    stats = denoiser.card.stats
    keys = key_masks(x0[:, 0], stats)  # each clean segment's own best key
    print(f"clean segments: {in_key_share(x0[:, 0], keys, stats):.3f} of notes in their key")
    print(f"{'t0':>5}  in the segment's key  in the result's own best key")
    rng = np.random.default_rng(0)
    for t0 in START_TIMESTEPS:
        out = sample_down(denoiser, x0, t0, rng)
        own = in_key_share(out, key_masks(out, stats), stats)
        print(f"{t0:>5}  {in_key_share(out, keys, stats):>20.3f}  {own:>28.3f}")


def sample_down(denoiser: Denoiser, x0: np.ndarray, t0: int, rng: np.random.Generator) -> np.ndarray:
    """``x0`` ``(N, 1, L, 3)`` noised to ``t0``, then the DDPM sampler's steps from there to 0: ``(N, L, 3)``."""
    schedule = denoiser.card.schedule
    sampler = make_sampler("ddpm", denoiser.card)
    sampler.set_timesteps(schedule.steps)
    x = schedule.add_noise(x0, rng.standard_normal(x0.shape, dtype=np.float32), np.full(len(x0), t0))
    timestep = np.empty(len(x0), np.float32)
    for t in range(t0, -1, -1):
        timestep.fill(t)
        x = sampler.step(denoiser(x, timestep), t, x, rng).prev_sample
    return x[:, 0]


if __name__ == "__main__":
    main()
