"""The causal U-Net: ``model([sample (B, tracks, L, 3), timestep (B,)]) -> (B, tracks, L, 3)``.

With ``ModelConfig.styles`` it takes a third input, ``style`` (B,) int32, whose learned embedding is
added to the time embedding, so every residual block hears it.

Levels follow ``ModelConfig.widths`` (kernel sizes shrinking with depth), each with residual
blocks that receive the time embedding, attention at ``attention_levels``, a middle at
``middle_width`` with attention, and skip connections from each encoder level to its decoder
level. Every path is causal along the note axis (see :mod:`training.layers`).
"""

from __future__ import annotations

import keras

from training.config import ModelConfig
from training.layers import (
    CausalConv,
    CausalDownsample,
    CausalSelfAttention,
    CausalUpsample,
    OnsetPhase,
    PitchChroma,
    PitchIntervals,
    ResBlock,
    TimeEmbedding,
)


def build_unet(cfg: ModelConfig, name: str = "unet") -> keras.Model:
    """A fresh network with the contract's inputs ``sample``, ``timestep`` (and ``style``) and output
    ``prediction``."""
    sample = keras.Input((cfg.tracks, cfg.length, cfg.features), name="sample")
    timestep = keras.Input((), name="timestep")
    inputs = [sample, timestep]
    t_emb = TimeEmbedding(cfg.time_embedding, name="time_embedding")(timestep)
    if cfg.styles:
        inputs.append(keras.Input((), dtype="int32", name="style"))
        style_emb = keras.layers.Embedding(cfg.styles + 1, cfg.time_embedding, name="style_embedding")(inputs[-1])
        t_emb = keras.layers.Add(name="time_and_style")([t_emb, style_emb])
    x = sample
    if cfg.chroma_semitone:
        x = PitchChroma(cfg.chroma_semitone, cfg.chroma_harmonics, name="pitch_chroma")(x)
    if cfg.interval_lags:
        x = PitchIntervals(cfg.chroma_semitone, cfg.chroma_harmonics, cfg.interval_lags, name="pitch_intervals")(x)
    if cfg.beat_periods:
        x = OnsetPhase(cfg.delta_high, cfg.beat_periods, name="onset_phase")(x)
    x = CausalConv(cfg.widths[0], 1, use_bias=True, name="stem")(x)

    skips = []
    for level, (width, kernel) in enumerate(zip(cfg.widths, cfg.kernel_sizes, strict=True)):
        x = _level(x, t_emb, cfg, level, width, kernel, f"down{level}")
        skips.append(x)
        if level < len(cfg.widths) - 1:
            x = CausalDownsample(name=f"down{level}_pool")(x)

    x = ResBlock(cfg.middle_width, cfg.middle_kernel_size, cfg.se_ratio, name="middle_block0")(x, t_emb)
    x = CausalSelfAttention(cfg.heads, name="middle_attention")(x)
    x = ResBlock(cfg.middle_width, cfg.middle_kernel_size, cfg.se_ratio, name="middle_block1")(x, t_emb)

    for level in reversed(range(len(cfg.widths))):
        if level < len(cfg.widths) - 1:
            x = CausalUpsample(name=f"up{level}_upsample")(x)
        x = keras.layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        x = _level(x, t_emb, cfg, level, cfg.widths[level], cfg.kernel_sizes[level], f"up{level}")

    out = CausalConv(cfg.features, 1, use_bias=True, name="prediction")(x)
    return keras.Model(inputs, out, name=name)


def _level(x: keras.KerasTensor, t_emb: keras.KerasTensor, cfg: ModelConfig, level: int,
           width: int, kernel: int, prefix: str) -> keras.KerasTensor:  # fmt: skip
    """``blocks_per_level`` residual blocks, each followed by attention on attention levels."""
    for block in range(cfg.blocks_per_level):
        x = ResBlock(width, kernel, cfg.se_ratio, name=f"{prefix}_block{block}")(x, t_emb)
        if level in cfg.attention_levels:
            x = CausalSelfAttention(cfg.heads, name=f"{prefix}_attention{block}")(x)
    return x
