"""``tf.data`` input: scaled, shuffled, optionally transposed batches of dataset segments.

The batch for training step ``s`` is a pure function of ``(seed, s)``: each epoch is a stateless
permutation of the training segments (with its own transposition draws), epochs are
concatenated and cut into global batches. So a resumed run rebuilds the pipeline at its step and
sees exactly the data an uninterrupted run would, with no iterator state in the checkpoint.
Each batch carries its segments' style indices (``model.styles``), looked up after the draws, so
they change no batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from bridge.codec import FeatureStats
from training.config import TrainSettings
from training.datafile import DatasetFile, split_styles
from training.errors import TrainingError

AUGMENT_SEED_OFFSET = 1_000_003  # separates transposition draws from the shuffling stream


def transpose_pitch(pitch: tf.Tensor, semitones: tf.Tensor, encoding: str) -> tf.Tensor:
    """Shift unscaled pitch values ``(..., L)`` by ``semitones`` ``(..., 1)`` (log: add; linear Hz: multiply)."""
    shift = tf.cast(semitones, pitch.dtype)
    return pitch + shift if encoding == "log" else pitch * tf.pow(2.0, shift / 12.0)


def _scaler(stats: FeatureStats) -> Callable[[tf.Tensor], tf.Tensor]:
    low = np.asarray(stats.low, np.float32)
    span = np.asarray(stats.high, np.float32) - low
    bounds = stats.bounds.astype(np.float32)

    def scale(features: tf.Tensor) -> tf.Tensor:
        """Time-encoded ``(..., L, 3)`` (:meth:`FeatureStats.encode_times`) -> ``(..., 1, L, 3)`` in [-1, 1],
        pitch in [-gain, gain] (outside only after transposition; durations and gaps past the
        statistics' high clip to it, as decoding does)."""
        scaled = (2.0 * (features - low) / span - 1.0) * bounds
        scaled = tf.concat([scaled[..., :1], tf.minimum(scaled[..., 1:], 1.0)], axis=-1)
        return tf.expand_dims(scaled, -3)

    return scale


def _epoch_items(epoch: tf.Tensor, n: int, settings: TrainSettings) -> tf.data.Dataset:
    seed = tf.stack([tf.constant(settings.seed, tf.int64), epoch])
    order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed)
    shifts = tf.random.stateless_uniform(
        [n], seed + AUGMENT_SEED_OFFSET, -settings.transpose, settings.transpose + 1, dtype=tf.int32
    )
    return tf.data.Dataset.from_tensor_slices((order, shifts))


def train_batches(
    data: DatasetFile, settings: TrainSettings, start_step: int,
    pipeline: int = 0, pipelines: int = 1, replicas_per_pipeline: int = 1,
) -> tf.data.Dataset:  # fmt: skip
    """Endless per-replica batches ``(x0 (B / replicas, 1, L, 3), style (B / replicas,))`` for steps
    ``start_step, start_step + 1, ...``.

    With several input pipelines (workers), pipeline ``i`` takes its slice of each global batch.
    """
    train = data.stats.encode_times(data.train).astype(np.float32)
    n, batch = len(train), settings.batch_size
    if n < batch:
        raise TrainingError(f"the dataset has {n} training segments, fewer than one batch ({batch})")
    replicas = pipelines * replicas_per_pipeline
    if batch % replicas:
        raise TrainingError(f"train.batch_size {batch} must be a multiple of the {replicas} replicas")
    epoch, offset = divmod(start_step * batch, n)
    segments, scale, encoding = tf.constant(train), _scaler(data.stats), data.stats.encoding
    styles = tf.constant(split_styles(data, heldout=False))
    per_pipeline = batch // pipelines

    def load(index: tf.Tensor, shift: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.gather(segments, index)  # (b, L, 3)
        pitch = transpose_pitch(x[..., 0], shift[:, None], encoding)
        return scale(tf.concat([pitch[..., None], x[..., 1:]], axis=-1)), tf.gather(styles, index)

    ds = tf.data.Dataset.counter(epoch).flat_map(lambda e: _epoch_items(e, n, settings)).skip(offset)
    ds = ds.batch(batch, drop_remainder=True)
    if pipelines > 1:
        ds = ds.map(lambda i, s: (i[pipeline * per_pipeline:(pipeline + 1) * per_pipeline],
                                  s[pipeline * per_pipeline:(pipeline + 1) * per_pipeline]))  # fmt: skip
    if replicas_per_pipeline > 1:
        ds = ds.rebatch(per_pipeline // replicas_per_pipeline)
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def heldout_batches(data: DatasetFile, batch: int, batches: int) -> tf.data.Dataset | None:
    """The first ``batches`` full batches of held-out segments as ``(x0 (B, 1, L, 3), style (B,), index)``;
    None if too few."""
    heldout = data.stats.encode_times(data.heldout_segments).astype(np.float32)
    count = min(batches, len(heldout) // batch)
    if count == 0:
        return None
    x0 = _scaler(data.stats)(tf.constant(heldout[: count * batch].reshape(count, batch, *heldout.shape[1:])))
    style = split_styles(data, heldout=True)[: count * batch].reshape(count, batch)
    return tf.data.Dataset.from_tensor_slices((x0, style, tf.range(count)))
