"""The network's signature, its size, and the causality claim: the past never sees the future."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import load_config, preset_names
from training.unet import build_unet

SEED_PARAMS = 12_000_000


@pytest.mark.parametrize(("preset", "batch"), [(name, 3 if name == "tiny" else 1) for name in preset_names()])
def test_causal(preset: str, batch: int) -> None:
    """Changing note p leaves outputs < p bit-identical and changes output p, for p at start, middle, end.

    Every shipped preset is checked (the seed's 12M-parameter one with a batch of 1).
    """
    cfg = load_config(preset).model
    model = build_unet(cfg)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, cfg.tracks, cfg.length, cfg.features)).astype(np.float32)
    t = rng.integers(0, 1000, batch).astype(np.float32)
    base = np.asarray(model([x, t]))
    for p in (0, cfg.length // 2, cfg.length - 1):
        changed = x.copy()
        changed[:, :, p] += 3.0
        out = np.asarray(model([changed, t]))
        np.testing.assert_array_equal(out[:, :, :p], base[:, :, :p], err_msg=f"{preset}: note {p} leaks back")
        assert not np.allclose(out[:, :, p], base[:, :, p]), f"{preset}: output {p} ignores its own input"


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
