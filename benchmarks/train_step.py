"""Training-step speed of the ``seed`` and ``small`` presets at batch 64 on this machine.

For each preset: a plain eager step (the reference), the step as a ``tf.function`` graph, and
the same with XLA (``jit_compile``); the table gives steps/s and the ratio to eager, all
measured in this one run. Usage: ``python benchmarks/train_step.py [--steps 5] [--batch 64]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from training.config import load_config
from training.run import build_model

ROW = "{:8} {:>11} {:>8} {:>8} {:>8} {:>12} {:>10}"


def steps_per_second(step: Callable[[tuple[tf.Tensor, tf.Tensor]], dict], batch: tuple[tf.Tensor, tf.Tensor],
                     steps: int) -> float:  # fmt: skip
    """Two warm-up steps (tracing, compilation), then the mean rate of ``steps`` timed steps."""
    for _ in range(2):
        step(batch)["loss"].numpy()
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)["loss"].numpy()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--presets", nargs="+", default=["seed", "small"])
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, GPUs: {tf.config.list_physical_devices('GPU')}")
    print(ROW.format("preset", "params", "eager/s", "graph/s", "xla/s", "graph/eager", "xla/eager"))
    for name in args.presets:
        config = load_config(name)
        model, _ = build_model(config)
        shape = (args.batch, config.model.tracks, config.model.length, config.model.features)
        x0 = tf.constant(np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32))
        batch = (x0, tf.zeros(args.batch, tf.int32))  # (segments, styles), as training.pipeline yields them
        eager = steps_per_second(model.train_step, batch, args.steps)
        graph = steps_per_second(tf.function(model.train_step, autograph=False), batch, args.steps)
        xla = steps_per_second(tf.function(model.train_step, autograph=False, jit_compile=True), batch, args.steps)
        params = model.network.count_params()
        rates = (f"{eager:.2f}", f"{graph:.2f}", f"{xla:.2f}", f"{graph / eager:.2f}x", f"{xla / eager:.2f}x")
        print(ROW.format(name, f"{params:,}", *rates), flush=True)


if __name__ == "__main__":
    main()
