"""The causal U-Net's building blocks, written with ``keras.ops`` only.

Tensors are ``(batch, tracks, L, channels)``, channels last; every layer mixes notes only along
the note axis (axis 2) and only from the past: output position ``i`` depends on input positions
``<= i``. No ``tf.*`` here, so the same layers build under the JAX backend, and constants are
numpy arrays (tf2onnx turns them into initializers, not graph inputs). GELU is written with
``erf`` because tf2onnx cannot convert the ``Erfc`` op of the built-in one.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

NOTE_AXIS = 2
SQRT_HALF = np.float32(1.0 / np.sqrt(2.0))
MASKED = np.float32(-1e9)


def gelu(x: Any) -> Any:
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``."""
    return 0.5 * x * (1.0 + ops.erf(x * SQRT_HALF))


def sinusoids(positions: np.ndarray, dim: int) -> np.ndarray:
    """Transformer sinusoids: ``(n,)`` positions -> float32 ``(n, dim)`` (sines, then cosines)."""
    half = dim // 2
    freqs = np.exp(-np.log(10_000.0) * np.arange(half) / max(half, 1))
    angles = np.asarray(positions, dtype=np.float64)[:, None] * freqs[None, :]
    out = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    return np.pad(out, ((0, 0), (0, dim - 2 * half))).astype(np.float32)


@keras.saving.register_keras_serializable(package="dmc")
class CausalConv(keras.layers.Layer):
    """Convolution along notes, padded on the left only: ``(B, T, L, C) -> (B, T, L, filters)``."""

    def __init__(self, filters: int, kernel_size: int, use_bias: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.use_bias = filters, kernel_size, use_bias
        self.conv = keras.layers.Conv2D(filters, (1, kernel_size), use_bias=use_bias, name="conv")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.conv.build(self._padded(input_shape))

    def _padded(self, shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        length = None if shape[2] is None else shape[2] + self.kernel_size - 1
        return (shape[0], shape[1], length, shape[3])

    def call(self, x: Any) -> Any:
        if self.kernel_size > 1:
            x = ops.pad(x, ((0, 0), (0, 0), (self.kernel_size - 1, 0), (0, 0)))
        return self.conv(x)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:3], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "use_bias": self.use_bias}  # fmt: skip


@keras.saving.register_keras_serializable(package="dmc")
class SqueezeExcite(keras.layers.Layer):
    """Channel gates from the cumulative mean over past notes (the seed's global mean saw the future)."""

    def __init__(self, ratio: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ratio = ratio

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels, length = input_shape[-1], input_shape[NOTE_AXIS]
        self.squeeze = keras.layers.Dense(max(channels // self.ratio, 1), name="squeeze")
        self.excite = keras.layers.Dense(channels, name="excite")
        self.squeeze.build((None, channels))
        self.excite.build((None, max(channels // self.ratio, 1)))
        # 1 / (number of notes so far), shaped to broadcast over (B, T, L, C).
        self.inv_count = (1.0 / np.arange(1, length + 1, dtype=np.float32)).reshape(1, 1, length, 1)

    def call(self, x: Any) -> Any:
        mean = ops.cumsum(x, axis=NOTE_AXIS) * self.inv_count
        gate = ops.sigmoid(self.excite(gelu(self.squeeze(mean))))
        return x * gate

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ratio": self.ratio}


@keras.saving.register_keras_serializable(package="dmc")
class ConvBlock(keras.layers.Layer):
    """Causal convolution (no bias), layer norm over channels, GELU, squeeze-and-excitation."""

    def __init__(self, filters: int, kernel_size: int, se_ratio: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.se_ratio = filters, kernel_size, se_ratio
        self.conv = CausalConv(filters, kernel_size, name="conv")
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")
        self.se = SqueezeExcite(se_ratio, name="se")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        out_shape = (*input_shape[:3], self.filters)
        self.conv.build(input_shape)
        self.norm.build(out_shape)
        self.se.build(out_shape)

    def call(self, x: Any) -> Any:
        return self.se(gelu(self.norm(self.conv(x))))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:3], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "se_ratio": self.se_ratio}  # fmt: skip


@keras.saving.register_keras_serializable(package="dmc")
class ResBlock(keras.layers.Layer):
    """Two conv blocks with the time embedding added between them, plus a residual path.

    ``(B, T, L, C_in), (B, E) -> (B, T, L, filters)``.
    """

    def __init__(self, filters: int, kernel_size: int, se_ratio: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.se_ratio = filters, kernel_size, se_ratio
        self.first = ConvBlock(filters, kernel_size, se_ratio, name="first")
        self.second = ConvBlock(filters, kernel_size, se_ratio, name="second")
        self.time = keras.layers.Dense(filters, name="time")
        self.shortcut: CausalConv | None = None

    def build(self, x_shape: tuple[int | None, ...], t_emb_shape: tuple[int | None, ...]) -> None:
        out_shape = (*x_shape[:3], self.filters)
        self.first.build(x_shape)
        self.second.build(out_shape)
        self.time.build(t_emb_shape)
        if x_shape[-1] != self.filters:
            self.shortcut = CausalConv(self.filters, 1, name="shortcut")
            self.shortcut.build(x_shape)

    def call(self, x: Any, t_emb: Any) -> Any:
        h = self.first(x) + self.time(t_emb)[:, None, None, :]
        h = self.second(h)
        return h + (self.shortcut(x) if self.shortcut is not None else x)

    def compute_output_shape(self, x_shape: tuple[int | None, ...], t_emb_shape: tuple[int | None, ...]) -> tuple:
        return (*x_shape[:3], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "se_ratio": self.se_ratio}  # fmt: skip


@keras.saving.register_keras_serializable(package="dmc")
class CausalSelfAttention(keras.layers.Layer):
    """Pre-norm multi-head self-attention over notes, masked to the past, with a residual.

    Sinusoidal positions along the note axis are added to the attention's input (the seed's
    spatial positional encoding). Each track attends within itself.
    """

    def __init__(self, heads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heads = heads
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        length, channels = input_shape[NOTE_AXIS], input_shape[-1]
        self.norm.build(input_shape)
        self.qkv = keras.layers.Dense(3 * channels, use_bias=False, name="qkv")
        self.qkv.build((None, channels))
        self.out = keras.layers.Dense(channels, name="out")
        self.out.build((None, channels))
        self.positions = sinusoids(np.arange(length), channels)[None, None]  # (1, 1, L, C)
        self.future = np.triu(np.ones((length, length), dtype=bool), k=1)  # True where j > i
        self.scale = np.float32(1.0 / np.sqrt(channels // self.heads))

    def call(self, x: Any) -> Any:
        tracks, length, channels = x.shape[1], x.shape[2], x.shape[3]
        head_dim = channels // self.heads
        qkv = self.qkv(self.norm(x) + self.positions)  # (B, T, L, 3C)
        qkv = ops.reshape(qkv, (-1, tracks, length, 3, self.heads, head_dim))
        qkv = ops.transpose(qkv, (3, 0, 1, 4, 2, 5))  # (3, B, T, H, L, D)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) * self.scale  # (B, T, H, L, L)
        weights = ops.softmax(ops.where(self.future, MASKED, scores), axis=-1)
        attended = ops.transpose(ops.matmul(weights, v), (0, 1, 3, 2, 4))  # (B, T, L, H, D)
        attended = ops.reshape(attended, (-1, tracks, length, channels))
        return x + self.out(attended)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "heads": self.heads}


@keras.saving.register_keras_serializable(package="dmc")
class CausalDownsample(keras.layers.Layer):
    """Halve the note axis by averaging pairs: output ``j`` sees inputs ``2j`` and ``2j + 1``."""

    def call(self, x: Any) -> Any:
        tracks, length, channels = x.shape[1], x.shape[2], x.shape[3]
        pairs = ops.reshape(x, (-1, tracks, length // 2, 2, channels))
        return ops.mean(pairs, axis=3)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[1], input_shape[2] // 2, input_shape[3])


@keras.saving.register_keras_serializable(package="dmc")
class CausalUpsample(keras.layers.Layer):
    """Double the note axis by repeating, then delay one step: ``out[i] = low[(i - 1) // 2]``, ``out[0] = 0``.

    After :class:`CausalDownsample`, ``low[j]`` has seen inputs up to ``2j + 1``; without the
    delay ``out[2j]`` would see input ``2j + 1``, one note of the future.
    """

    def call(self, x: Any) -> Any:
        up = ops.repeat(x, 2, axis=NOTE_AXIS)
        return ops.pad(up, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1, :]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        length = None if input_shape[2] is None else 2 * input_shape[2]
        return (input_shape[0], input_shape[1], length, input_shape[3])


@keras.saving.register_keras_serializable(package="dmc")
class PitchChroma(keras.layers.Layer):
    """Appends the pitch class: ``(B, T, L, 3) -> (B, T, L, 3 + 2 * len(harmonics))``, sin and cos of
    the scaled pitch at the given harmonics of the octave.

    Key and chord are functions of pitch class, periodic in the octave, and convolutions over one
    scalar pitch learn a periodic function badly. Harmonic k has a period of 12/k semitones: k = 1
    is the octave circle, k = 5 (the same as -7) the circle of fifths, where a key's notes lie in one
    arc, and k = 12 the offset from the nearest semitone, which denoising at low noise needs.
    ``semitone`` is one semitone in scaled units (``FeatureStats.semitone``).
    """

    def __init__(self, semitone: float, harmonics: tuple[int, ...] = (1, 2, 3, 4, 5, 6), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.semitone, self.harmonics = semitone, tuple(harmonics)
        self.freqs = (2.0 * np.pi * np.asarray(self.harmonics) / (12.0 * semitone)).astype(np.float32)

    def call(self, x: Any) -> Any:
        angles = x[..., :1] * self.freqs  # (B, T, L, len(harmonics)), radians
        return ops.concatenate([x, ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:3], input_shape[3] + 2 * len(self.harmonics))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "semitone": self.semitone, "harmonics": list(self.harmonics)}


@keras.saving.register_keras_serializable(package="dmc")
class PitchIntervals(PitchChroma):
    """Appends the interval from each note to the note ``lag`` places earlier, for each of ``lags``, as
    sin and cos at the chroma harmonics: ``(B, T, L, C) -> (B, T, L, C + 2 * len(harmonics) * len(lags))``.

    Voicing and melody are intervals between neighbouring notes (a third, a second), and a
    convolution over each note's chroma can only approximate the products that a difference of
    angles needs. Causal: the first ``lag`` notes measure from the first note. Pitch is channel 0.
    """

    def __init__(self, semitone: float, harmonics: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
                 lags: tuple[int, ...] = (1,), **kwargs: Any) -> None:  # fmt: skip
        super().__init__(semitone, harmonics, **kwargs)
        self.lags = tuple(lags)

    def call(self, x: Any) -> Any:
        pitch = x[..., :1]
        parts = [x]
        for lag in self.lags:
            earlier = ops.concatenate([ops.repeat(pitch[:, :, :1], lag, axis=NOTE_AXIS), pitch[:, :, :-lag]], NOTE_AXIS)
            angles = (pitch - earlier) * self.freqs
            parts += [ops.sin(angles), ops.cos(angles)]
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:3], input_shape[3] + 2 * len(self.harmonics) * len(self.lags))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lags": list(self.lags)}


@keras.saving.register_keras_serializable(package="dmc")
class OnsetPhase(keras.layers.Layer):
    """Appends each onset's phase in ``periods`` beats: ``(B, T, L, C) -> (B, T, L, C + 2 * len(periods))``,
    sin and cos of the running sum of the gaps.

    Music puts most onsets on the beat and repeats its rhythm bar by bar, but the codec holds only
    the gap to the previous note: where a note falls in the beat is a sum over the whole phrase so
    far, which convolutions cannot form. Gaps are channel 2, scaled linearly from 0 .. ``delta_high``
    beats to -1 .. 1 and clipped there, as decoding does; the sum is causal.
    """

    def __init__(self, delta_high: float, periods: tuple[float, ...] = (1.0,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delta_high, self.periods = float(delta_high), tuple(float(p) for p in periods)
        self.freqs = (2.0 * np.pi / np.asarray(self.periods)).astype(np.float32)

    def call(self, x: Any) -> Any:
        gaps = (ops.clip(x[..., 2:3], -1.0, 1.0) + 1.0) * (0.5 * self.delta_high)
        angles = ops.cumsum(gaps, axis=NOTE_AXIS) * self.freqs  # (B, T, L, len(periods)), radians
        return ops.concatenate([x, ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:3], input_shape[3] + 2 * len(self.periods))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "delta_high": self.delta_high, "periods": list(self.periods)}


@keras.saving.register_keras_serializable(package="dmc")
class TimeEmbedding(keras.layers.Layer):
    """Diffusion step ``(B,)`` float -> ``(B, dim)``: sinusoids, then a two-layer GELU MLP."""

    def __init__(self, dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dim = dim
        half = dim // 2
        self.freqs = np.exp(-np.log(10_000.0) * np.arange(half) / max(half, 1)).astype(np.float32)[None]
        self.hidden = keras.layers.Dense(dim, name="hidden")
        self.proj = keras.layers.Dense(dim, name="proj")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.hidden.build((None, 2 * (self.dim // 2)))
        self.proj.build((None, self.dim))

    def call(self, t: Any) -> Any:
        angles = ops.expand_dims(ops.cast(t, "float32"), -1) * self.freqs  # (B, dim // 2)
        emb = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
        return self.proj(gelu(self.hidden(emb)))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dim": self.dim}
