"""Shapes, exact values and config round trips of each causal layer."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.layers import (
    CausalConv,
    CausalDownsample,
    CausalSelfAttention,
    CausalUpsample,
    ConvBlock,
    OnsetPhase,
    PitchChroma,
    PitchIntervals,
    ResBlock,
    SqueezeExcite,
    TimeEmbedding,
    gelu,
)

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 1, 8, 4)).astype(np.float32)  # (B, tracks, L, C)
T_EMB = RNG.standard_normal((2, 6)).astype(np.float32)


@pytest.mark.parametrize(
    ("layer", "out_shape"),
    [
        (CausalConv(5, 3), (2, 1, 8, 5)),
        (SqueezeExcite(2), (2, 1, 8, 4)),
        (ConvBlock(6, 3, 2), (2, 1, 8, 6)),
        (CausalSelfAttention(2), (2, 1, 8, 4)),
        (CausalDownsample(), (2, 1, 4, 4)),
        (CausalUpsample(), (2, 1, 16, 4)),
        (PitchChroma(0.1, (1, 5, 12)), (2, 1, 8, 10)),
        (PitchIntervals(0.1, (1, 5), (1, 3)), (2, 1, 8, 12)),
        (OnsetPhase(2.0, (0.5, 1.0, 4.0)), (2, 1, 8, 10)),
    ],
)
def test_shapes_and_config(layer: keras.layers.Layer, out_shape: tuple[int, ...]) -> None:
    assert tuple(layer(X).shape) == out_shape
    clone = type(layer).from_config(layer.get_config())
    assert tuple(clone(X).shape) == out_shape


def test_res_block_and_time_embedding_shapes() -> None:
    block = ResBlock(6, 3, 2)
    assert tuple(block(X, T_EMB).shape) == (2, 1, 8, 6)
    assert block.shortcut is not None
    assert ResBlock(4, 3, 2)(X, T_EMB).shape == X.shape  # identity residual when widths match
    emb = TimeEmbedding(6)
    assert tuple(emb(np.array([0.0, 999.0], np.float32)).shape) == (2, 6)
    assert TimeEmbedding.from_config(emb.get_config()).dim == 6


def test_pitch_chroma_is_the_pitch_class() -> None:
    """Inputs kept; the added features repeat every octave and differ between pitch classes."""
    layer = PitchChroma(0.1)
    octave = X.copy()
    octave[..., 0] += 1.2  # 12 semitones of 0.1
    fifth = X.copy()
    fifth[..., 0] += 0.7
    out, up = layer(X).numpy(), layer(octave).numpy()
    np.testing.assert_array_equal(out[..., :4], X)
    np.testing.assert_allclose(out[..., 4:], up[..., 4:], atol=1e-5)
    moved = layer(fifth).numpy()
    assert np.abs(out[..., 4:] - moved[..., 4:]).max(axis=-1).min() > 0.5
    # Harmonic 5 is the circle of fifths: a fifth up is one of its 12 steps (backwards).
    angle = [np.arctan2(o[..., 4 + 4], o[..., 4 + 6 + 4]) for o in (out, moved)]
    np.testing.assert_allclose(np.mod(angle[1] - angle[0], 2 * np.pi), 2 * np.pi * 11 / 12, atol=1e-3)

    x = np.linspace(-6, 6, 101).astype(np.float32)
    expected = keras.activations.gelu(x, approximate=False)
    np.testing.assert_allclose(np.asarray(gelu(x)), np.asarray(expected), atol=1e-6)


def test_pitch_intervals_are_the_intervals_to_earlier_notes() -> None:
    """Each lag adds sin and cos of harmonic k times the interval to the note that many places back
    (the first notes measure from note 0); moving the whole piece leaves them, a third is no second."""
    layer = PitchIntervals(0.1, (1, 5), (1, 2))
    pitch = X[..., 0]
    out = layer(X).numpy()
    np.testing.assert_array_equal(out[..., :4], X)
    for j, lag in enumerate((1, 2)):
        earlier = np.concatenate([np.repeat(pitch[..., :1], lag, axis=-1), pitch[..., :-lag]], axis=-1)
        angles = (pitch - earlier)[..., None] * (2 * np.pi * np.array([1, 5]) / 1.2)
        expected = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
        np.testing.assert_allclose(out[..., 4 + 4 * j : 8 + 4 * j], expected, atol=1e-5)
    transposed = X.copy()
    transposed[..., 0] += 0.37
    np.testing.assert_allclose(layer(transposed).numpy()[..., 4:], out[..., 4:], atol=1e-5)
    third, second = (np.array([0.0, 0.4, 0.0, 0.2], np.float32).reshape(1, 1, 4, 1) for _ in range(2))
    second[..., 1, 0] = 0.2
    assert np.abs(layer(third).numpy()[0, 0, 1, 1:5] - layer(second).numpy()[0, 0, 1, 1:5]).max() > 0.5
    moved = X.copy()
    moved[:, :, 5, 0] += 0.3  # one note moved: its own intervals and those of the two after it change, none before
    diff = np.abs(layer(moved).numpy() - out).max(axis=(0, 1, 3))
    assert (diff[:5] == 0).all() and (diff[5:8] > 1e-3).all()


def test_down_and_up_sampling_values() -> None:
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 8, 1)
    down = np.asarray(CausalDownsample()(x))[0, 0, :, 0]
    np.testing.assert_array_equal(down, [0.5, 2.5, 4.5, 6.5])  # mean of (2j, 2j + 1)
    up = np.asarray(CausalUpsample()(down.reshape(1, 1, 4, 1)))[0, 0, :, 0]
    np.testing.assert_array_equal(up, [0.0, 0.5, 0.5, 2.5, 2.5, 4.5, 4.5, 6.5])  # out[i] = low[(i - 1) // 2]


def test_causal_conv_pads_left_only() -> None:
    conv = CausalConv(1, 3)
    conv.build(X.shape)
    conv.conv.kernel.assign(np.ones((1, 3, 4, 1), np.float32))
    out = np.asarray(conv(X))[..., 0]
    window = X.sum(-1)
    expected = np.stack([window[..., max(0, i - 2) : i + 1].sum(-1) for i in range(8)], axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_squeeze_excite_uses_cumulative_mean() -> None:
    se = SqueezeExcite(2)
    se.build(X.shape)
    x = X.copy()
    x[:, :, 5:] += 100.0  # a loud future must not change the gates of earlier notes
    np.testing.assert_array_equal(np.asarray(se(x))[:, :, :5], np.asarray(se(X))[:, :, :5])


def test_onset_phase_is_where_each_onset_falls_in_the_beat_and_the_bar() -> None:
    """Gaps scaled from 0..2 beats sum to onsets; each period adds sin and cos of onset / period. Notes on
    the beat share a phase whatever the gaps between them; an offbeat differs; the sum is causal."""
    layer = OnsetPhase(2.0, (1.0, 4.0))
    gaps = np.array([0.0, 1.0, 0.5, 0.5, 0.25, 0.75, 2.0, 0.0])  # onsets 0, 1, 1.5, 2, 2.25, 3, 5, 5
    x = np.zeros((1, 1, 8, 3), np.float32)
    x[..., 2] = gaps - 1.0  # scaled: beats / 2 * 2 - 1
    out = layer(x).numpy()[0, 0]
    np.testing.assert_array_equal(out[:, :3], x[0, 0])
    angles = np.cumsum(gaps)[:, None] * (2 * np.pi / np.array([1.0, 4.0]))
    np.testing.assert_allclose(out[:, 3:], np.concatenate([np.sin(angles), np.cos(angles)], axis=1), atol=1e-5)
    beat = np.round(out[:, [3, 5]], 5)  # period 1: (sin, cos)
    assert (beat[[0, 1, 3, 5, 6, 7]] == beat[0]).all() and np.abs(beat[2] - beat[0]).max() > 1.9
    noisy = x.copy()
    noisy[..., 2] = np.array([-3.0, 5.0, 0, 0, 0, 0, 0, 0])  # clipped to 0 and 2 beats, as decoding clips
    np.testing.assert_allclose(layer(noisy).numpy()[0, 0, 1, [3, 5]], [0.0, 1.0], atol=1e-5)
    moved = x.copy()
    moved[..., 4, 2] += 0.1
    diff = np.abs(layer(moved).numpy() - out).max(axis=(0, 1, 3))
    assert (diff[:4] == 0).all() and (diff[4:] > 1e-3).all()
