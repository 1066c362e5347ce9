"""Sampling speed: ms per step and time to a phrase for each sampler, with the reference in the same run.

    python benchmarks/sampling.py --model weights/default [--device cpu] [--run runs/NAME]

The reference is DDPM over all T steps on the same ONNX model; with ``--run`` (TensorFlow and
a training run), also the Keras network in the same DDPM loop, the seed's way of sampling.
A model that carries a guide (autoguidance) is timed without it, and with it in extra rows,
the last of them a whole default phrase (auto key, 1/4-beat grid) under each onset rule.
Keras' full loop is timed over ``--reference-steps`` steps and scaled to T (the table says so).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridge.card import ModelCard
from bridge.constraints import PitchConstraint
from bridge.decoding import DecodeOptions, decode
from bridge.onset_gaps import ONSET_CHOICES
from bridge.runtime import DEVICES, load_model
from bridge.samplers import DenoiserLike, make_sampler, sample

PHRASES = (("ddpm", None), ("ddim", 50), ("dpm++", 20), ("dpm++", 10))
BATCHES = (1, 8)
BEAT_S = 0.5  # one beat at 120 bpm


@dataclass
class KerasDenoiser:
    """The training run's EMA network behind the same call as the ONNX Denoiser."""

    card: ModelCard
    predict: Callable

    def __call__(self, sample: np.ndarray, timestep: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict(sample, timestep))


def keras_denoiser(run: str, card: ModelCard) -> KerasDenoiser:
    """Load ``run``'s EMA network (imports TensorFlow, so only when asked)."""
    import tensorflow as tf

    from training.run import load_ema_network

    network, _, _ = load_ema_network(run)
    predict = tf.function(lambda x, t: network([x, t], training=False), reduce_retracing=True)
    return KerasDenoiser(card, predict)


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """Seconds of the fastest of ``repeats`` runs, after one warm-up run."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def ms_per_step(denoiser: DenoiserLike, batch: int, steps: int, repeats: int) -> float:
    """One network run plus one sampler step, at ``batch`` variations (DDIM over ``steps``)."""
    sampler = make_sampler("ddim", denoiser.card)
    return 1000 * best_of(repeats, lambda: sample(denoiser, sampler, batch, steps, seed=0)) / steps


def phrase_seconds(
    denoiser: DenoiserLike, name: str, steps: int | None, repeats: int, constraint: PitchConstraint | None = None
) -> float:
    """Noise to decoded notes, one phrase, its chords snapped to the card's as `dmc generate` does
    (with ``constraint``: projected at each step, as `dmc generate` does too)."""
    sampler = make_sampler(name, denoiser.card)
    options = DecodeOptions(chords=denoiser.card.chords)
    return best_of(repeats, lambda: decode(sample(denoiser, sampler, 1, steps, seed=0, constraint=constraint),
                                           denoiser.card.stats, options))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or shipped name (default: the default model)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--run", help="training run folder: also time its Keras network (needs TensorFlow)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-steps", type=int, default=50, help="Keras DDPM steps timed, scaled to T")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    denoiser = load_model(args.model, args.device, guidance=0)
    guided = load_model(args.model, args.device) if denoiser.card.guide is not None else None
    steps_total = denoiser.card.schedule.steps
    print(f"\nmodel {denoiser.card.name!r}, L = {denoiser.length}, T = {steps_total}, device {denoiser.device}")
    print(f"\n{'ms per step':<24}" + "".join(f"{f'batch {b}':>12}" for b in BATCHES))
    onnx_step = {b: ms_per_step(denoiser, b, 50, args.repeats) for b in BATCHES}
    print(f"{'onnxruntime':<24}" + "".join(f"{onnx_step[b]:>12.3f}" for b in BATCHES))
    if guided is not None:
        guided_step = {b: ms_per_step(guided, b, 50, args.repeats) for b in BATCHES}
        print(f"{'onnxruntime + guide':<24}" + "".join(f"{guided_step[b]:>12.3f}" for b in BATCHES))
    keras = keras_denoiser(args.run, denoiser.card) if args.run else None
    if keras is not None:
        keras_step = {b: ms_per_step(keras, b, args.reference_steps, 1) for b in BATCHES}
        print(f"{'keras (reference)':<24}" + "".join(f"{keras_step[b]:>12.3f}" for b in BATCHES))

    print(f"\n{'time to a phrase':<24}{'seconds':>12}{'beats@120':>12}{'speed-up':>12}")
    rows = []
    if keras is not None:
        keras_ddpm = keras_step[1] * steps_total / 1000
        rows.append((f"keras ddpm-{steps_total}*", keras_ddpm))
    for name, steps in PHRASES:
        label = f"{name}-{steps or steps_total}"
        rows.append((label, phrase_seconds(denoiser, name, steps, 1 if name == "ddpm" else args.repeats)))
    if guided is not None:
        rows.append(("dpm++-20 + guide", phrase_seconds(guided, "dpm++", 20, args.repeats)))
        for onsets in ONSET_CHOICES:  # the whole of a default phrase: auto key, grid, each rule for the onsets
            constraint = PitchConstraint.parse("auto", grid=0.25, onsets=onsets)
            rows.append((f" + key, onsets {onsets}", phrase_seconds(guided, "dpm++", 20, args.repeats, constraint)))
    reference = rows[0][1]
    for label, seconds in rows:
        print(f"{label:<24}{seconds:>12.4f}{seconds / BEAT_S:>12.3f}{reference / seconds:>11.1f}x")
    print("speed-up: relative to the first row" + (f"; * scaled from {args.reference_steps} steps" if keras else ""))


if __name__ == "__main__":
    main()
