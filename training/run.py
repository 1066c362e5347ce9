"""A training run that survives: checkpoints, resume, TensorBoard, run.json, samples.

A run directory holds ``run.json`` (config, dataset summary, steps, git revision),
``checkpoints/`` (``tf.train.CheckpointManager``: network, EMA weights, Adam state and step),
``logs/`` (TensorBoard) and ``samples/`` (.mid files). The data order and noise are functions of
the step (see :mod:`training.pipeline` and :mod:`training.diffusion`), so restoring the
checkpoint is all a resume needs: the same command continues where the last checkpoint stopped.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from bridge.atomic import write_bytes
from bridge.codec import FeatureStats, features_to_notes
from bridge.midifile import write_midi
from bridge.progress import progress
from bridge.schedule import NoiseSchedule
from training.config import TrainConfig
from training.datafile import DatasetFile, dataset_summary, load_training_data
from training.diffusion import DiffusionModel
from training.errors import TrainingError
from training.pipeline import heldout_batches, train_batches
from training.unet import build_unet

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multiworker")
RUN_FILE = "run.json"
# What tensorboard's scalar summary writes, so logs need no tensorboard package at training time.
SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``default`` (one device), ``mirrored`` (all local GPUs, else all logical CPUs) or ``multiworker`` (TF_CONFIG).

    Call before any other TensorFlow work: the multi-worker strategy must set up the runtime.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise TrainingError("--strategy multiworker needs TF_CONFIG (cluster and task); see docs/training.md")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"unknown strategy {name!r}; use one of {STRATEGIES}")


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def git_revision() -> str | None:
    """The source tree's commit (with ``+dirty`` for uncommitted changes), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=here, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def read_run(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``run.json``; a missing one is a TrainingError."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise TrainingError(f"{run_dir} is not a training run: it has no {RUN_FILE}")
    return json.loads(path.read_text(encoding="utf-8"))


def _check_same_config(run_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The existing run.json, after checking that resuming uses the settings the run started with."""
    if not (run_dir / RUN_FILE).is_file():
        return None
    meta = read_run(run_dir)
    old, new = meta["config"], config.to_dict()
    changed = [f"{t}.{k}" for t in ("model", "diffusion", "train") for k in new[t] if old[t].get(k) != new[t][k]]
    if changed:
        raise TrainingError(
            f"{run_dir} was started with other settings ({', '.join(changed)} differ); "
            "resume it with the same config and --steps, or start a new --run"
        )
    return meta


def build_model(config: TrainConfig) -> tuple[DiffusionModel, keras.optimizers.Optimizer]:
    """Network, EMA and Adam with the preset's two-phase learning rate, all variables created.

    Seeds the global RNGs with ``train.seed`` first, so the same config gives the same initial weights.
    """
    settings = config.train
    keras.utils.set_random_seed(settings.seed)
    network = build_unet(config.model)
    model = DiffusionModel(network, config.diffusion, ema_decay=settings.ema_decay, seed=settings.seed,
                           low_noise=(settings.low_noise_share, settings.low_noise_steps),
                           styles=config.model.styles, style_dropout=settings.style_dropout)  # fmt: skip
    lr = keras.optimizers.schedules.PiecewiseConstantDecay(
        [settings.final_phase_start], [settings.learning_rate, settings.final_learning_rate]
    )
    optimizer = keras.optimizers.Adam(learning_rate=lr)
    model.compile(optimizer=optimizer)
    optimizer.build(network.trainable_variables)
    return model, optimizer


def make_checkpoint(model: DiffusionModel, optimizer: keras.optimizers.Optimizer) -> tf.train.Checkpoint:
    """Network and EMA weights keyed by their Keras paths, plus Adam's state and step.

    Keras 3 models are not tracked by ``tf.train.Checkpoint`` themselves, so their variables
    are listed explicitly.
    """
    paths = [w.path for w in model.network.weights]
    return tf.train.Checkpoint(
        network=dict(zip(paths, (w.value for w in model.network.weights), strict=True)),
        ema=dict(zip(paths, (e.value for e in model.ema_weights), strict=True)),
        optimizer=optimizer,
    )


def ddpm_sample(predict: Callable[[np.ndarray, np.ndarray], np.ndarray], schedule: NoiseSchedule,
                shape: tuple[int, ...], prediction: str, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Ancestral DDPM sampling (Ho et al. eq. 11): ``predict(x_t, t)`` -> scaled ``x0`` of ``shape``."""
    betas, alphas, abars = schedule.betas, schedule.alphas, schedule.alpha_bars
    x = rng.standard_normal(shape)
    for t in reversed(range(schedule.steps)):
        out = predict(x.astype(np.float32), np.full(shape[0], t, np.float32)).astype(np.float64)
        eps = out if prediction == "epsilon" else np.sqrt(abars[t]) * out + np.sqrt(1.0 - abars[t]) * x
        x = (x - betas[t] / np.sqrt(1.0 - abars[t]) * eps) / np.sqrt(alphas[t])
        if t > 0:
            variance = betas[t] * (1.0 - abars[t - 1]) / (1.0 - abars[t])
            x += np.sqrt(variance) * rng.standard_normal(shape)
    return x


def write_samples(network: keras.Model, config: TrainConfig, stats: FeatureStats, folder: Path, step: int) -> None:
    """``samples`` .mid files from the EMA network, named by step (seeded by the step, so reproducible);
    a styled network samples with "no style", the mixture of all styles."""
    shape = (config.train.samples, config.model.tracks, config.model.length, config.model.features)
    no_style = [tf.fill([shape[0]], config.model.styles)] if config.model.styles else []
    predict = tf.function(lambda x, t: network([x, t, *no_style], training=False), reduce_retracing=True)
    rng = np.random.default_rng([config.train.seed, step])
    x0 = ddpm_sample(lambda x, t: predict(x, t).numpy(), config.diffusion.noise_schedule(), shape,
                     config.diffusion.prediction, rng)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(x0[:, 0]):
        notes = features_to_notes(stats.unscale(sample), stats.encoding)
        write_midi(folder / f"step{step:08d}-{i + 1}.mid", notes)
    log.info("wrote %d samples to %s", len(x0), folder)


def _train_function(model: DiffusionModel, strategy: tf.distribute.Strategy, jit: bool) -> Callable[[Any], tf.Tensor]:
    """One compiled step on the next distributed batch -> mean loss over replicas.

    XLA (``jit_compile``) applies to the per-replica step and only on the default strategy:
    cross-replica updates cannot live inside an XLA cluster.
    """
    replica_step = tf.function(model.train_step, jit_compile=True, autograph=False) if jit else model.train_step

    @tf.function(autograph=False)  # no tensor-dependent Python control flow; saves seconds of tracing
    def step(iterator: Any) -> tf.Tensor:
        per_replica = strategy.run(replica_step, args=(next(iterator),))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica["loss"], axis=None)

    return step


def train(
    config: TrainConfig,
    data_path: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    strategy: str = "default",
    until: int | None = None,
    init_from: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run in ``run_dir`` up to ``config.train.steps``, or stop at step ``until``.

    ``init_from``: a finished run (TensorFlow or JAX) whose EMA weights start a new run, to
    fine-tune with this config's schedule; a run that already has checkpoints resumes from them.
    Returns the final run.json contents. Ctrl-C saves a checkpoint and re-raises; a kill loses
    only the steps since the last checkpoint.
    """
    dist = make_strategy(strategy)
    run_dir = Path(run_dir)
    data = load_training_data(data_path, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = _check_same_config(run_dir, config) or {
        "config": config.to_dict(),
        "dataset": dataset_summary(Path(data_path), data),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "steps": 0,
    }
    meta.update(git=git_revision(), strategy=strategy, replicas=dist.num_replicas_in_sync)
    session = _Session(config, data, run_dir, dist, meta)
    if init_from is not None and session.step == 0:
        session.warm_start(Path(init_from))
    try:
        session.loop(min(until or config.train.steps, config.train.steps))
    except KeyboardInterrupt:
        log.warning("interrupted: saving a checkpoint at step %d", session.step)
        session.save()
        raise
    finally:
        session.close()
    return session.meta


class _Session:
    """The state of one training process: model, checkpoints, logs and the step loop."""

    def __init__(self, config: TrainConfig, data: DatasetFile, run_dir: Path,
                 strategy: tf.distribute.Strategy, meta: dict[str, Any]) -> None:  # fmt: skip
        self.config, self.data, self.run_dir, self.strategy, self.meta = config, data, run_dir, strategy, meta
        self.chief = _is_chief(strategy)
        # Every worker writes its checkpoint (saving is collective); only the chief's is kept.
        self.write_dir = run_dir if self.chief else Path(tempfile.mkdtemp(prefix="dmc-worker-"))
        with strategy.scope():
            self.model, self.optimizer = build_model(config)
        checkpoint = make_checkpoint(self.model, self.optimizer)
        self.manager = tf.train.CheckpointManager(
            checkpoint, self.write_dir / "checkpoints", max_to_keep=config.train.keep_checkpoints
        )
        latest = tf.train.latest_checkpoint(run_dir / "checkpoints")
        if latest:
            checkpoint.restore(latest).assert_existing_objects_matched()
            log.info("resumed %s at step %d", run_dir, self.step)
        self.saved_step = self.step
        self.writer = tf.summary.create_file_writer(str(self.write_dir / "logs")) if self.chief else None
        # A local copy holding the EMA weights, for the held-out loss of what export ships and for samples.
        settings = config.train
        self.ema_model = DiffusionModel(build_unet(config.model, name="ema"), config.diffusion,
                                        ema_decay=settings.ema_decay, seed=settings.seed,
                                        styles=config.model.styles, style_dropout=settings.style_dropout)  # fmt: skip
        self.test_steps = {
            "heldout_loss": tf.function(self.model.test_step, autograph=False),
            "heldout_loss_ema": tf.function(self.ema_model.test_step, autograph=False),
        }

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def loop(self, end: int) -> None:
        settings = self.config.train
        start = self.step
        iterator = iter(self.strategy.distribute_datasets_from_function(
            lambda ctx: train_batches(self.data, settings, start, ctx.input_pipeline_id, ctx.num_input_pipelines,
                                      self.strategy.num_replicas_in_sync // ctx.num_input_pipelines)
        ))  # fmt: skip
        jit = settings.jit_compile and self.strategy is tf.distribute.get_strategy()
        train_step = _train_function(self.model, self.strategy, jit)
        heldout = heldout_batches(self.data, settings.batch_size, settings.heldout_batches)
        if heldout is None and settings.heldout_every and self.chief:
            log.warning("no held-out loss: the dataset has fewer held-out segments than one batch")
        with progress(max(end - start, 0), f"train {self.run_dir.name}", enabled=self.chief) as advance:
            tick, tick_step = time.monotonic(), start
            for step in range(start + 1, end + 1):
                loss = float(train_step(iterator))
                rate = (step - tick_step) / max(time.monotonic() - tick, 1e-9)
                advance(step=step, loss=loss)
                if step % settings.log_every == 0:
                    self._scalars(step, loss=loss, steps_per_second=rate,
                                  learning_rate=float(self.optimizer.learning_rate))  # fmt: skip
                    tick, tick_step = time.monotonic(), step
                if heldout is not None and settings.heldout_every and step % settings.heldout_every == 0:
                    self._heldout(step, heldout)
                if step % settings.checkpoint_every == 0 or step == end:
                    self.meta["loss"] = loss
                    self.save()
                if self.chief and settings.sample_every and settings.samples and step % settings.sample_every == 0:
                    self.samples(step)

    def _scalars(self, step: int, **values: float) -> None:
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.write(name, tf.constant(value, tf.float32), metadata=SCALAR_METADATA)
        self.writer.flush()

    def _heldout(self, step: int, heldout: tf.data.Dataset) -> None:
        """Held-out loss of the trained weights and of the EMA weights (the ones exported)."""
        self.model.copy_ema_to(self.ema_model.network)
        losses = {name: float(np.mean([float(fn(batch)["loss"]) for batch in heldout]))
                  for name, fn in self.test_steps.items()}  # fmt: skip
        self.meta["heldout_loss"] = {"step": step, "loss": losses["heldout_loss"], "ema": losses["heldout_loss_ema"]}
        self._scalars(step, **losses)
        if self.chief:
            log.info("step %d: held-out loss %.4f (EMA weights %.4f)", step, *losses.values())

    def samples(self, step: int) -> None:
        network = self.model.copy_ema_to(self.ema_model.network)
        write_samples(network, self.config, self.data.stats, self.run_dir / "samples", step)

    def save(self) -> None:
        """A checkpoint at the current step (atomic: the index file moves last), then run.json."""
        step = self.step
        if step == self.saved_step and self.manager.latest_checkpoint:
            return
        path = self.manager.save(checkpoint_number=step)
        self.saved_step = step
        self.meta.update(steps=step, checkpoint=os.path.relpath(path, self.write_dir),
                         updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))  # fmt: skip
        if self.chief:
            write_bytes(self.run_dir / RUN_FILE, json.dumps(self.meta, indent=2).encode())

    def warm_start(self, source: Path) -> None:
        """Network and EMA from ``source``'s EMA weights; Adam starts fresh (its state is not portable)."""
        network, config, meta = load_ema_network(source)
        if config.model != self.config.model:
            raise TrainingError(f"{source} has another network ({config.name}); --init-from needs the same model table")
        for target, value in zip(self.model.network.weights, network.weights, strict=True):
            target.assign(value.numpy())
        for ema, value in zip(self.model.ema_weights, network.weights, strict=True):
            ema.assign(value.numpy())
        self.meta["init_from"] = {"run": str(source), "steps": meta.get("checkpoint_step", meta.get("steps"))}
        log.info("started %s from the EMA weights of %s", self.run_dir, source)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)


def load_ema_network(run_dir: str | os.PathLike[str], step: int | None = None) -> tuple[keras.Model, TrainConfig, dict]:
    """The EMA network of a run's checkpoint (the latest, or ``ckpt-<step>``), with its config and run.json.

    The returned model has the contract's signature ``model([sample (B, 1, L, 3), timestep (B,)])``, plus
    ``style (B,)`` for a styled network (``config.model.styles``);
    ``meta["checkpoint_step"]`` is the step of the weights loaded. A run trained under JAX
    (:mod:`training.jax_train`) keeps one weights file and no checkpoints: ``step`` must be None.
    """
    from training.jax_train import is_jax_run, load_jax_run

    if is_jax_run(run_dir):
        if step is not None:
            raise TrainingError(f"{run_dir} was trained under JAX and keeps only its latest weights; give no step")
        return load_jax_run(run_dir)
    run_dir = Path(run_dir)
    meta = read_run(run_dir)
    config = TrainConfig.from_dict(meta["config"])
    folder = run_dir / "checkpoints"
    path = tf.train.latest_checkpoint(folder) if step is None else str(folder / f"ckpt-{step}")
    if path is None or not Path(f"{path}.index").is_file():
        raise TrainingError(f"{run_dir} has no checkpoint{'' if step is None else f' at step {step}'}")
    model, optimizer = build_model(config)
    make_checkpoint(model, optimizer).restore(path).assert_existing_objects_matched()
    network = model.copy_ema_to(build_unet(config.model, name="ema"))
    return network, config, {**meta, "checkpoint_step": int(optimizer.iterations.numpy())}
