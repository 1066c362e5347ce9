"""Training under ``KERAS_BACKEND=jax``, for GPU machines that have JAX but no TensorFlow.

The same network (``training.unet``, written with ``keras.ops``) and the same DDPM loss as
``training.diffusion``, in a jitted stateless JAX step with the whole dataset on the device.
It writes a run folder that ``dmc export`` reads: ``run.json`` and ``ema.weights.h5`` (Keras'
backend-neutral weights file), rewritten atomically every ``--save-every`` seconds, so a run
cut off by a time limit keeps its latest weights.

    KERAS_BACKEND=jax python -m training.jax_train --config small --data data.npz --run runs/gpu --seconds 480
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bridge.atomic import write_bytes
from training.config import TrainConfig, TrainSettings, load_config
from training.datafile import DatasetFile, dataset_summary, load_training_data, split_styles
from training.errors import TrainingError

log = logging.getLogger(__name__)
EMA_WEIGHTS = "ema.weights.h5"
RUN_FILE = "run.json"


def _scaled(data: DatasetFile, segments: np.ndarray) -> np.ndarray:
    """Scaled segments ``(N, 1, L, 3)``; durations and gaps past the statistics' high clip to it, as in
    ``training.pipeline``."""
    scaled = data.stats.scale(segments)
    np.minimum(scaled[..., 1:], 1.0, out=scaled[..., 1:])
    return scaled[:, None]


def network_inputs(config: TrainConfig, x_t: Any, t: Any, style: Any) -> list[Any]:
    """The network's inputs: ``[x_t, t]``, and the style indices where the network takes them."""
    import jax.numpy as jnp

    return [x_t, t.astype(jnp.float32), *([style] if config.model.styles else [])]


def make_heldout_loss(network: Any, config: TrainConfig, heldout: np.ndarray, styles: np.ndarray,
                      seed: int = 7919) -> Any:  # fmt: skip
    """``(ema, non_trainable) -> loss`` on the held-out segments (with their own styles) with fixed noise
    and timesteps."""
    import jax
    import jax.numpy as jnp

    alpha_bars = jnp.asarray(config.diffusion.noise_schedule().alpha_bars, jnp.float32)
    x0 = jnp.asarray(heldout)
    k_t, k_eps = jax.random.split(jax.random.PRNGKey(seed))
    t = jax.random.randint(k_t, (x0.shape[0],), 0, config.diffusion.steps)
    eps = jax.random.normal(k_eps, x0.shape)
    ab = alpha_bars[t][:, None, None, None]
    x_t = jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * eps
    target = eps if config.diffusion.prediction == "epsilon" else jnp.sqrt(ab) * eps - jnp.sqrt(1.0 - ab) * x0

    @jax.jit
    def loss(ema: list, non_trainable: list) -> Any:
        pred, _ = network.stateless_call(ema, non_trainable, network_inputs(config, x_t, t, styles), training=False)
        return jnp.mean(jnp.square(pred - target))

    return loss


def draw_timesteps(key: Any, settings: TrainSettings, steps: int) -> Any:
    """``(batch,)`` int timesteps: uniform over ``steps``, but ``low_noise_share`` of them from the lowest
    ``low_noise_steps`` (as :meth:`training.diffusion.DiffusionModel._draw`)."""
    import jax
    import jax.numpy as jnp

    shape = (settings.batch_size,)
    if not settings.low_noise_share:
        return jax.random.randint(key, shape, 0, steps)
    k_all, k_pick, k_low = jax.random.split(key, 3)
    t = jax.random.randint(k_all, shape, 0, steps)
    low = jax.random.randint(k_low, shape, 0, settings.low_noise_steps)
    return jnp.where(jax.random.uniform(k_pick, shape) < settings.low_noise_share, low, t)


def make_step(network: Any, optimizer: Any, config: TrainConfig, data: np.ndarray, styles: np.ndarray,
              semitone: float) -> Any:  # fmt: skip
    """The jitted update: ``(state, key) -> (state, loss)`` with a batch drawn on the device.

    ``styles`` ``(N,)``: each segment's style, replaced by "no style" for ``train.style_dropout`` of a batch.
    """
    import jax
    import jax.numpy as jnp

    settings = config.train
    alpha_bars = jnp.asarray(config.diffusion.noise_schedule().alpha_bars, jnp.float32)
    dataset, dataset_styles = jnp.asarray(data), jnp.asarray(styles, jnp.int32)
    steps_t = config.diffusion.steps

    def loss_fn(trainable: list, non_trainable: list, key: Any) -> tuple[Any, list]:
        k_idx, k_t, k_eps, k_tr, k_drop = jax.random.split(key, 5)
        index = jax.random.randint(k_idx, (settings.batch_size,), 0, dataset.shape[0])
        x0 = dataset[index]
        dropped = jax.random.uniform(k_drop, index.shape) < settings.style_dropout
        style = jnp.where(dropped, config.model.styles, dataset_styles[index])
        if settings.transpose and semitone:  # a random shift of whole segments in log-pitch
            shift = jax.random.randint(k_tr, (settings.batch_size, 1, 1), -settings.transpose, settings.transpose + 1)
            x0 = x0.at[..., 0].add(shift.astype(jnp.float32) * semitone)
        t = draw_timesteps(k_t, settings, steps_t)
        eps = jax.random.normal(k_eps, x0.shape)
        ab = alpha_bars[t][:, None, None, None]
        x_t = jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * eps
        target = eps if config.diffusion.prediction == "epsilon" else jnp.sqrt(ab) * eps - jnp.sqrt(1.0 - ab) * x0
        pred, non_trainable = network.stateless_call(trainable, non_trainable, network_inputs(config, x_t, t, style),
                                                     training=True)  # fmt: skip
        return jnp.mean(jnp.square(pred - target)), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @jax.jit
    def step(state: tuple, key: Any) -> tuple[tuple, Any]:
        trainable, non_trainable, opt_vars, ema = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, key)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        ema = [settings.ema_decay * e + (1.0 - settings.ema_decay) * w for e, w in zip(ema, trainable, strict=True)]
        return (trainable, non_trainable, opt_vars, ema), loss

    return step


def build(config: TrainConfig) -> tuple[Any, Any]:
    """Network and Adam with the preset's two-phase learning rate (as ``training.run``)."""
    import keras

    from training.unet import build_unet

    settings = config.train
    keras.utils.set_random_seed(settings.seed)  # the same initial weights every run, as training.run seeds them
    network = build_unet(config.model)
    lr = keras.optimizers.schedules.PiecewiseConstantDecay(
        [settings.final_phase_start], [settings.learning_rate, settings.final_learning_rate]
    )
    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(network.trainable_variables)
    return network, optimizer


def save_ema(network: Any, ema: list, run_dir: Path) -> None:
    """Write the EMA weights as ``ema.weights.h5`` atomically (Keras needs the .weights.h5 name)."""
    for variable, value in zip(network.trainable_variables, ema, strict=True):
        variable.assign(value)
    tmp = run_dir / f".tmp-{os.getpid()}.weights.h5"
    network.save_weights(tmp)
    os.replace(tmp, run_dir / EMA_WEIGHTS)


def warm_start(network: Any, config: TrainConfig, source: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a finished JAX run's EMA weights into ``network`` (the same model table only); Adam starts fresh.

    Lets a time-limited GPU lease continue a run it could not finish (the learning-rate schedule restarts
    with the new config's steps). Returns what ``run.json`` records under ``init_from``.
    """
    if not is_jax_run(source):
        raise TrainingError(f"{source} is not a run of this trainer (no run.json with backend 'jax')")
    meta = json.loads((Path(source) / RUN_FILE).read_text(encoding="utf-8"))
    if TrainConfig.from_dict(meta["config"]).model != config.model:
        raise TrainingError(f"{source} has another network; --init-from needs the same model table")
    network.load_weights(Path(source) / meta["weights"])
    return {"run": str(source), "steps": meta["steps"]}


def train_jax(config: TrainConfig, data_path: str, run_dir: str, *, seconds: float, save_every: float,
              init_from: str | None = None) -> int:  # fmt: skip
    """Train until ``config.train.steps`` or ``seconds`` pass; returns the steps done."""
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise TrainingError("set KERAS_BACKEND=jax before starting (this trainer runs the JAX backend)")
    data = load_training_data(data_path, config)
    network, optimizer = build(config)
    started_from = warm_start(network, config, init_from) if init_from else None
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    step = make_step(network, optimizer, config, _scaled(data, data.train), split_styles(data, heldout=False),
                     data.stats.semitone)  # fmt: skip
    heldout = _scaled(data, data.heldout_segments[:512])
    heldout_styles = split_styles(data, heldout=True)[:512]
    heldout_loss = make_heldout_loss(network, config, heldout, heldout_styles) if len(heldout) else None
    state = tuple([v.value for v in vs] for vs in (network.trainable_variables, network.non_trainable_variables,
                                                  optimizer.variables, network.trainable_variables))  # fmt: skip
    key = jax.random.PRNGKey(config.train.seed)
    started = last_save = time.monotonic()
    log.info("training %s on %s: %d parameters, %d segments", config.name, jax.devices()[0], network.count_params(),
             len(data.train))  # fmt: skip
    done, losses, curve = 0, [], []
    record = {
        "config": config.to_dict(),
        "backend": "jax",
        "device": str(jax.devices()[0]),
        "dataset": dataset_summary(data_path, data),
        "weights": EMA_WEIGHTS,
        "losses": {"train": losses, "heldout": curve},  # train: every 500 steps; heldout: [step, EMA loss]
        **({"init_from": started_from} if started_from else {}),
    }
    while done < config.train.steps and time.monotonic() - started < seconds:
        key, sub = jax.random.split(key)
        state, loss = step(state, sub)
        done += 1
        if done % 500 == 0:
            losses.append(float(loss))
            log.info("step %d loss %.4f (%.1f steps/s)", done, losses[-1], done / (time.monotonic() - started))
        if time.monotonic() - last_save > save_every:
            _record_heldout(heldout_loss, state, done, curve)
            _checkpoint(network, state, run, {**record, "steps": done, "seconds": time.monotonic() - started})
            last_save = time.monotonic()
    _record_heldout(heldout_loss, state, done, curve)
    _checkpoint(network, state, run, {**record, "steps": done, "seconds": time.monotonic() - started})
    return done


def _record_heldout(heldout_loss: Any, state: tuple, done: int, curve: list) -> None:
    if heldout_loss is not None:
        curve.append([done, float(heldout_loss(state[3], state[1]))])
        log.info("step %d held-out loss (EMA) %.4f", done, curve[-1][1])


def _checkpoint(network: Any, state: tuple, run: Path, record: dict[str, Any]) -> None:
    """Save the non-trainable state with the EMA weights, then the run record pointing at them."""
    for variable, value in zip(network.non_trainable_variables, state[1], strict=True):
        variable.assign(value)
    save_ema(network, state[3], run)
    write_bytes(run / RUN_FILE, (json.dumps(record, indent=2) + "\n").encode())


def load_jax_run(run_dir: str | os.PathLike[str]) -> tuple[Any, TrainConfig, dict[str, Any]]:
    """The EMA network of a JAX run, in whatever backend Keras runs now (TensorFlow for export)."""
    from training.unet import build_unet

    run = Path(run_dir)
    meta = json.loads((run / RUN_FILE).read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(meta["config"])
    network = build_unet(config.model, name="ema")
    network.load_weights(run / meta["weights"])
    return network, config, {**meta, "checkpoint_step": meta["steps"]}


def is_jax_run(run_dir: str | os.PathLike[str]) -> bool:
    """True for a run folder this module wrote (its run.json names a weights file)."""
    path = Path(run_dir) / RUN_FILE
    return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("backend") == "jax"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small")
    parser.add_argument("--data", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--steps", type=int, default=None, help="total steps (default: the config's)")
    parser.add_argument("--seconds", type=float, default=float("inf"), help="stop after this long")
    parser.add_argument("--save-every", type=float, default=60.0, help="seconds between weight saves")
    parser.add_argument("--init-from", metavar="RUN", help="start from this JAX run's EMA weights (same network)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = load_config(args.config)
    if args.steps:
        config = config.replace_train(steps=args.steps)
    try:
        done = train_jax(
            config, args.data, args.run, seconds=args.seconds, save_every=args.save_every, init_from=args.init_from
        )
    except TrainingError as e:
        parser.exit(2, f"error: {e}\n")
    log.info("done: %d steps, weights in %s", done, Path(args.run) / EMA_WEIGHTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
