"""DDPM training around the causal U-Net: a ``keras.Model`` whose ``train_step`` is one update.

Symbols as in :mod:`bridge.schedule`: ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps``.
The network predicts ``eps`` (the seed's choice) or ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0``.
Noise and timesteps come from stateless RNGs keyed on (seed, step, replica), so a resumed run
draws exactly what an uninterrupted one would. A styled network (``ModelConfig.styles``) also takes
each segment's style, a share of them dropped to "no style" (index ``styles``) on a stream of its own,
so unconditioned runs draw what they always did. ``train_step`` uses ``tf.GradientTape``: training
is TensorFlow-only, while the network itself is backend-neutral.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from training.config import DiffusionConfig

HELDOUT_SEED = 7919  # a fixed stream for held-out noise, so successive held-out losses compare
STYLE_SEED_OFFSET = 2_000_003  # separates style dropout draws from the step's eps and t


class DiffusionModel(keras.Model):
    """The network, its EMA weights and the DDPM loss; ``compile`` it with an optimizer."""

    def __init__(self, network: keras.Model, diffusion: DiffusionConfig, *, ema_decay: float, seed: int,
                 low_noise: tuple[float, int] = (0.0, 1), styles: int = 0, style_dropout: float = 0.0,
                 **kwargs: Any) -> None:  # fmt: skip
        """``low_noise``: (share, steps) of each batch drawn from the lowest timesteps (TrainSettings);
        ``styles``: the network's ``ModelConfig.styles`` (0: it takes no style input); ``style_dropout``:
        the share of training styles shown as "no style" (``TrainSettings.style_dropout``)."""
        super().__init__(**kwargs)
        self.low_noise_share, self.low_noise_steps = low_noise
        self.styles, self.style_dropout = styles, style_dropout
        self.network = network
        self.prediction = diffusion.prediction
        self.timesteps = diffusion.steps
        self.alpha_bars = diffusion.noise_schedule().alpha_bars.astype(np.float32)  # (T,)
        self.ema_decay = ema_decay
        self.seed = seed
        # ONLY_FIRST_REPLICA: every replica computes the same average, so it may be assigned in
        # replica context under tf.distribute without an all-reduce.
        self.ema_weights = [
            keras.Variable(w.numpy(), trainable=False, aggregation="only_first_replica", name=f"ema_{i}")
            for i, w in enumerate(network.weights)
        ]

    def call(self, inputs: list[Any], training: bool = False) -> Any:
        return self.network(inputs, training=training)

    def diffusion_loss(self, x0: Any, eps: Any, t: Any, style: Any, training: bool) -> Any:
        """MSE of the prediction: ``x0``, ``eps`` ``(B, tracks, L, 3)``, ``t`` and ``style`` int32 ``(B,)``
        (the style reaches only a styled network)."""
        ab = ops.reshape(ops.take(self.alpha_bars, t), (-1, 1, 1, 1))
        signal, noise = ops.sqrt(ab), ops.sqrt(1.0 - ab)
        x_t = signal * x0 + noise * eps
        target = eps if self.prediction == "epsilon" else signal * eps - noise * x0
        inputs = [x_t, ops.cast(t, "float32"), *([style] if self.styles else [])]
        pred = self.network(inputs, training=training)
        return ops.mean(ops.square(pred - target))

    def _draw(self, x0: tf.Tensor, seed: tf.Tensor, low_noise_share: float = 0.0) -> tuple[tf.Tensor, tf.Tensor]:
        """``eps ~ N(0, I)`` like ``x0`` and ``t ~ U{0..T-1}`` ``(B,)``, stateless from ``seed`` (2,);
        ``low_noise_share`` of the t from the lowest ``low_noise_steps`` instead (training only: the
        held-out loss stays uniform in t, so runs with and without it compare)."""
        seeds = tf.random.experimental.stateless_split(seed, 2)
        eps = tf.random.stateless_normal(tf.shape(x0), seeds[0], dtype=x0.dtype)
        t = tf.random.stateless_uniform(tf.shape(x0)[:1], seeds[1], 0, self.timesteps, dtype=tf.int32)
        if low_noise_share > 0.0:
            pick, low = tf.unstack(tf.random.experimental.stateless_split(seeds[1], 2))
            low_t = tf.random.stateless_uniform(tf.shape(t), low, 0, self.low_noise_steps, dtype=tf.int32)
            t = tf.where(tf.random.stateless_uniform(tf.shape(t), pick) < low_noise_share, low_t, t)
        return eps, t

    def _drop_styles(self, style: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """``style`` ``(B,)`` with ``style_dropout`` of it replaced by "no style", so the network also
        learns the unconditioned mixture; stateless from ``seed`` (2,) but apart from :meth:`_draw`'s stream."""
        dropped = tf.random.stateless_uniform(tf.shape(style), seed + STYLE_SEED_OFFSET) < self.style_dropout
        return tf.where(dropped, tf.constant(self.styles, style.dtype), style)

    def _step_seed(self) -> tf.Tensor:
        ctx = tf.distribute.get_replica_context()
        replicas = tf.cast(ctx.num_replicas_in_sync, tf.int64)
        replica = tf.cast(ctx.replica_id_in_sync_group, tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64), self.optimizer.iterations * replicas + replica])

    def train_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One Adam step on a per-replica batch ``(x0 (B, tracks, L, 3), style (B,))``; returns this replica's loss."""
        x0, style = data
        seed = self._step_seed()
        eps, t = self._draw(x0, seed, self.low_noise_share)
        if self.styles:
            style = self._drop_styles(style, seed)
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        weights = self.network.trainable_weights
        with tf.GradientTape() as tape:
            loss = self.diffusion_loss(x0, eps, t, style, training=True)
            # Gradients are summed over replicas, so each contributes its share of the mean.
            scaled = loss / replicas
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights, strict=True))
        self._update_ema()
        return {"loss": loss}

    def test_step(self, data: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Held-out loss of ``(x0, style, batch_index)`` with noise fixed per batch, so evaluations compare;
        every segment keeps its own style."""
        x0, style, index = data
        seed = tf.stack([tf.constant(HELDOUT_SEED, tf.int64), tf.cast(index, tf.int64)])
        eps, t = self._draw(x0, seed)
        return {"loss": self.diffusion_loss(x0, eps, t, style, training=False)}

    def _update_ema(self) -> None:
        """``ema = d ema + (1 - d) w``, with ``d`` ramped up early so the random init fades fast."""
        step = tf.cast(self.optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for ema, w in zip(self.ema_weights, self.network.weights, strict=True):
            ema.assign(decay * ema + (1.0 - decay) * w)

    def copy_ema_to(self, network: keras.Model) -> keras.Model:
        """Load the EMA weights into ``network`` (same config), the one to sample from and export."""
        for target, ema in zip(network.weights, self.ema_weights, strict=True):
            target.assign(ema.numpy())
        return network
