"""The network's signature, its size, and the causality claim: the past never sees the future."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training.config import ModelConfig, load_config, preset_names
from training.unet import build_unet

SEED_PARAMS = 12_000_000


# Inputs that look back along the notes: the intervals to earlier notes, and onsets summed from every gap.
LOOKING_BACK = {"tiny with interval inputs": {"chroma_semitone": 0.1, "interval_lags": (1, 2)},
                "tiny with onset phases": {"delta_high": 2.0, "beat_periods": (1.0, 4.0)}}  # fmt: skip


@pytest.mark.parametrize(
    ("preset", "batch"),
    [(name, 3 if name == "tiny" else 1) for name in preset_names()] + [(name, 2) for name in LOOKING_BACK],
)
def test_causal(preset: str, batch: int) -> None:
    """Changing note p leaves outputs < p bit-identical and changes output p, for p at start, middle, end.

    Every shipped preset is checked (the seed's 12M-parameter one with a batch of 1), and the
    interval and onset-phase inputs, which look back along the notes.
    """
    cfg = _tiny_with(**LOOKING_BACK[preset]) if preset in LOOKING_BACK else load_config(preset).model
    model = build_unet(cfg)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, cfg.tracks, cfg.length, cfg.features)).astype(np.float32)
    t = rng.integers(0, 1000, batch).astype(np.float32)
    style = [np.arange(batch, dtype=np.int32) % (cfg.styles + 1)] if cfg.styles else []
    base = np.asarray(model([x, t, *style]))
    for p in (0, cfg.length // 2, cfg.length - 1):
        changed = x.copy()
        changed[:, :, p] += 3.0
        out = np.asarray(model([changed, t, *style]))
        np.testing.assert_array_equal(out[:, :, :p], base[:, :, :p], err_msg=f"{preset}: note {p} leaks back")
        assert not np.allclose(out[:, :, p], base[:, :, p]), f"{preset}: output {p} ignores its own input"


def _tiny_with(**fields: object) -> ModelConfig:
    return dataclasses.replace(load_config("tiny").model, **fields)


def test_signature() -> None:
    cfg = load_config("tiny").model
    model = build_unet(cfg)
    assert [i.name for i in model.inputs] == ["sample", "timestep"]
    assert tuple(model.inputs[0].shape) == (None, 1, cfg.length, 3)
    out = model([np.zeros((4, 1, cfg.length, 3), np.float32), np.zeros(4, np.float32)])
    assert tuple(out.shape) == (4, 1, cfg.length, 3)


def test_seed_parameter_count() -> None:
    params = build_unet(load_config("seed").model).count_params()
    print(f"seed preset: {params:,} parameters")
    assert abs(params - SEED_PARAMS) <= 0.15 * SEED_PARAMS


def test_a_styled_signature_takes_the_style_and_each_style_changes_the_output() -> None:
    cfg = load_config("medium-home-styles").model
    model = build_unet(cfg)
    assert [i.name for i in model.inputs] == ["sample", "timestep", "style"] and cfg.styles == 4
    table = model.get_layer("style_embedding")
    assert table.get_weights()[0].shape == (cfg.styles + 1, cfg.time_embedding)  # the last row: "no style"
    x = np.random.default_rng(2).standard_normal((cfg.styles + 1, 1, cfg.length, 3)).astype(np.float32)
    out = np.asarray(model([np.repeat(x[:1], cfg.styles + 1, axis=0), np.full(cfg.styles + 1, 300.0, np.float32),
                            np.arange(cfg.styles + 1, dtype=np.int32)]))  # fmt: skip
    assert all(not np.allclose(out[0], out[k]) for k in range(1, cfg.styles + 1))
