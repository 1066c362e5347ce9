"""Does the model resolve semitones and note lengths? Its clean-sample error on real segments at low noise.

    python benchmarks/denoise_resolution.py --data data/classical.npz [--model weights/default]

Held-out segments are noised to timestep t and denoised in one network call. For each feature it
prints the error of the model's x0 estimate next to the error of the noisy sample itself (no
denoising), in scaled units, and the lattice step the model would have to resolve: a semitone, and
the gap between an eighth and a quarter note. Where the model's error is no smaller than the noise's
at a noise level below that step, the model does not know the lattice and the sampler's projection
has to supply it.

The pitch column also shows the best error possible from the lattice alone: the posterior mean
over all semitones of the model's range (a uniform prior, no context) given the noisy pitch. Where
that equals the noise's, the noise is too large for the lattice to tell anything, and only context
(the other notes) can do better: the model's gain over that column is what it knows of harmony.

The last column counts keys directly: the share of notes that, rounded to the nearest semitone, lie
in the scale of their clean segment's key, for the model's x0 estimate, for the noisy sample, and
for the posterior mean over the key's semitones alone (a denoiser told the key, with no other
context: what knowing the key is worth at that noise). A network that knows keys pulls notes into
them; one that does not leaves the share where the noise put it.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from bridge.codec import FeatureStats, value_to_pitch
from bridge.constraints import KEY_FIT_SCALES, key_of
from bridge.runtime import Denoiser, load_model
from training.datafile import load_dataset

TIMESTEPS = (1, 2, 5, 20, 50, 100, 200, 400)


def model_and_heldout(description: str, argv: list[str] | None, segments: int) -> tuple[Denoiser, np.ndarray]:
    """The benchmarks' common arguments (--data, --model, --segments) -> the model on CPU and the
    first held-out segments scaled for it, ``(N, 1, L, 3)`` (times clipped at the scaled high)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="a dataset .npz (its held-out segments are used)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--segments", type=int, default=segments)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    denoiser = load_model(args.model, "cpu")
    x0 = denoiser.card.stats.scale(load_dataset(args.data).heldout_segments[: args.segments])[:, None]
    np.minimum(x0[..., 1:], 1.0, out=x0[..., 1:])
    return denoiser, x0


def main(argv: list[str] | None = None) -> None:
    denoiser, x0 = model_and_heldout(__doc__.splitlines()[0], argv, 64)
    stats, alpha_bars = denoiser.card.stats, denoiser.card.schedule.alpha_bars
    notes = np.array([[60.0, 0.5, 0.5], [61.0, 1.0, 1.0]])
    step = np.abs(np.diff(stats.scale(notes), axis=0))[0]
    print(f"lattice step (scaled): semitone {step[0]:.4f}, eighth-to-quarter duration {step[1]:.4f}, gap {step[2]:.4f}")
    semitones = np.arange(np.ceil(stats.low[0]), np.floor(stats.high[0]) + 1)
    lattice = stats.scale_pitch(semitones)
    keys = key_masks(x0[:, 0], stats)
    in_key = np.take_along_axis(keys, (semitones.astype(np.int64) % 12)[None].repeat(len(keys), 0), axis=1)
    print(f"notes in their segment's key: {in_key_share(x0[:, 0], keys, stats):.3f} of the clean segments")
    print(f"{'t':>4} {'noise':>7}   error of x0: model / noisy sample [/ lattice alone]: pitch, duration, gap;"
          " in key: model / noisy / key's lattice")
    rng = np.random.default_rng(0)
    for t in TIMESTEPS:
        eps = rng.standard_normal(x0.shape).astype(np.float32)
        xt = (np.sqrt(alpha_bars[t]) * x0 + np.sqrt(1.0 - alpha_bars[t]) * eps).astype(np.float32)
        eps_hat = denoiser(xt, np.full(len(x0), t, np.float32))
        estimate = (xt - np.sqrt(1.0 - alpha_bars[t]) * eps_hat) / np.sqrt(alpha_bars[t])
        noise = float(np.sqrt((1 - alpha_bars[t]) / alpha_bars[t]))
        model = np.sqrt(((estimate - x0) ** 2).mean(axis=(0, 1, 2)))
        noisy = np.sqrt(((xt / np.sqrt(alpha_bars[t]) - x0) ** 2).mean(axis=(0, 1, 2)))
        unnoised = xt[:, 0] / np.sqrt(alpha_bars[t])  # (N, L, 3)
        alone = lattice_mean(unnoised[..., 0], lattice, noise)
        told = unnoised.copy()
        told[..., 0] = lattice_mean(unnoised[..., 0], lattice, noise, in_key)
        cells = [f"{m:.4f}/{n:.4f}" for m, n in zip(model, noisy, strict=True)]
        cells[0] += f"/{np.sqrt(((alone - x0[:, 0, :, 0]) ** 2).mean()):.4f}"
        shares = [in_key_share(x, keys, stats) for x in (estimate[:, 0], unnoised, told)]
        cells.append("/".join(f"{s:.3f}" for s in shares))
        print(f"{t:>4} {noise:>7.4f}   " + "  ".join(cells))


def _pitch_classes(scaled: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """Scaled segments ``(N, L, 3)`` -> pitch classes ``(N, L)`` of the nearest MIDI pitches."""
    return value_to_pitch(stats.unscale(scaled)[..., 0], stats.encoding) % 12


def key_masks(clean: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """``(N, 12)`` bool: the pitch classes of each clean segment's best key (as the auto key fits it)."""
    masks = np.zeros((len(clean), 12), dtype=bool)
    for mask, classes in zip(masks, _pitch_classes(clean, stats), strict=True):
        tonic, mode, _ = key_of(classes)
        mask[[(tonic + step) % 12 for step in KEY_FIT_SCALES[mode]]] = True
    return masks


def in_key_share(scaled: np.ndarray, keys: np.ndarray, stats: FeatureStats) -> float:
    """Share of the notes of ``scaled`` ``(N, L, 3)`` whose rounded pitch is in its segment's key."""
    classes = _pitch_classes(scaled, stats)
    return float(np.take_along_axis(keys, classes, axis=1).mean())


def lattice_mean(noisy: np.ndarray, lattice: np.ndarray, noise: float, allowed: np.ndarray | None = None) -> np.ndarray:
    """Posterior mean of each clean value of ``noisy`` ``(N, L)`` on ``lattice`` ``(m,)`` (uniform prior),
    or on the points ``allowed`` ``(N, m)`` bool marks for each row."""
    logits = -0.5 * ((noisy[..., None] - lattice) / noise) ** 2  # (N, L, m)
    if allowed is not None:
        logits = np.where(allowed[:, None, :], logits, -np.inf)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (weights * lattice).sum(axis=-1) / weights.sum(axis=-1)


if __name__ == "__main__":
    main()
