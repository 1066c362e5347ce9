"""Samplers: interface, determinism, and the strong test: with the exact denoiser of a known
Gaussian (tests/bridge/tiny_model.py) every sampler must return that Gaussian's mean and std."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_model import TINY_MEAN, TINY_STD, write_tiny_model

from bridge.errors import BridgeError
from bridge.runtime import Denoiser, load_model
from bridge.samplers import (
    SAMPLERS,
    DDIMSampler,
    DDPMSampler,
    DPMSolverPP2MSampler,
    make_sampler,
    sample,
    split_prediction,
)
from bridge.schedule import NoiseSchedule

SHORT = NoiseSchedule(steps=40, beta_start=1e-3, beta_end=0.3)


@pytest.fixture(scope="module")
def short_denoiser(tmp_path_factory: pytest.TempPathFactory) -> Denoiser:
    """The tiny model on a 40-step schedule, so DDPM's full run is quick."""
    return load_model(write_tiny_model(tmp_path_factory.mktemp("short") / "m", schedule=SHORT), device="cpu")


@pytest.fixture(scope="module")
def v_denoiser(tmp_path_factory: pytest.TempPathFactory) -> Denoiser:
    """The tiny model predicting v instead of epsilon."""
    return load_model(write_tiny_model(tmp_path_factory.mktemp("v") / "m", prediction="v"), device="cpu")


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_shapes_determinism_and_variety(short_denoiser: Denoiser, name: str) -> None:
    sampler = make_sampler(name, short_denoiser.card)
    steps = 40 if name == "ddpm" else 8
    first = sample(short_denoiser, sampler, 3, steps, seed=7)
    again = sample(short_denoiser, sampler, 3, steps, seed=7)  # same sampler object: its state was reset
    other = sample(short_denoiser, sampler, 3, steps, seed=8)
    assert first.shape == (3, 16, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first[0], first[1])  # the n variations differ


@pytest.mark.parametrize(
    ("name", "steps", "options", "tolerance"),
    [
        ("ddpm", None, {}, 0.03),
        ("ddim", 1000, {"eta": 1.0}, 0.03),
        ("ddim", 50, {}, 0.04),
        ("ddim", 100, {"eta": 0.5}, 0.04),
        ("dpm++", 20, {}, 0.03),
        ("dpm++", 10, {}, 0.04),
    ],
)
def test_recovers_the_data_distribution(
    tiny_denoiser: Denoiser, name: str, steps: int | None, options: dict, tolerance: float
) -> None:
    x = sample(tiny_denoiser, make_sampler(name, tiny_denoiser.card, **options), 256, steps, seed=0).reshape(-1, 3)
    np.testing.assert_allclose(x.mean(axis=0), TINY_MEAN, atol=tolerance)
    np.testing.assert_allclose(x.std(axis=0), TINY_STD, atol=tolerance)


@pytest.mark.parametrize(("name", "steps"), [("ddpm", None), ("dpm++", 15)])
def test_v_prediction_recovers_the_data_distribution(v_denoiser: Denoiser, name: str, steps: int | None) -> None:
    x = sample(v_denoiser, make_sampler(name, v_denoiser.card), 256, steps, seed=1).reshape(-1, 3)
    np.testing.assert_allclose(x.mean(axis=0), TINY_MEAN, atol=0.03)
    np.testing.assert_allclose(x.std(axis=0), TINY_STD, atol=0.03)


def test_ddim_over_all_steps_with_eta_one_matches_ddpm(tiny_denoiser: Denoiser) -> None:
    ddpm = sample(tiny_denoiser, make_sampler("ddpm", tiny_denoiser.card), 256, None, seed=2).reshape(-1, 3)
    ddim = sample(tiny_denoiser, make_sampler("ddim", tiny_denoiser.card, eta=1.0), 256, 1000, seed=3).reshape(-1, 3)
    np.testing.assert_allclose(ddim.mean(axis=0), ddpm.mean(axis=0), atol=0.03)
    np.testing.assert_allclose(ddim.std(axis=0), ddpm.std(axis=0), atol=0.03)


def test_ddpm_step_is_the_seeds_formula() -> None:
    """x_{t-1} = 1/sqrt(alpha_t) (x_t - (1 - alpha_t)/sqrt(1 - alpha_bar_t) eps) + sqrt(beta_t) z, z = 0 at t = 0."""
    schedule = NoiseSchedule()
    sampler = DDPMSampler(schedule)
    sampler.set_timesteps(1000)
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 3)).astype(np.float32)
    eps = np.random.default_rng(1).standard_normal((2, 1, 4, 3)).astype(np.float32)
    for t in (999, 500, 0):
        a, ab, b = schedule.alphas[t], schedule.alpha_bars[t], schedule.betas[t]
        z = np.random.default_rng(2).standard_normal(x.shape, dtype=np.float32) if t > 0 else 0.0
        expected = 1.0 / np.sqrt(a) * (x - (1.0 - a) / np.sqrt(1.0 - ab) * eps) + np.sqrt(b) * z
        got = sampler.step(eps, t, x, np.random.default_rng(2)).prev_sample
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_ddpm_runs_every_step_and_only_that() -> None:
    sampler = DDPMSampler(SHORT)
    sampler.set_timesteps(40)
    np.testing.assert_array_equal(sampler.timesteps, np.arange(39, -1, -1))
    with pytest.raises(BridgeError, match="ddpm runs all 40 steps, got 10; use ddim or dpm\\+\\+"):
        sampler.set_timesteps(10)


@given(n=st.integers(1, 1000))
def test_timesteps_are_distinct_descending_from_the_noisiest(n: int) -> None:
    sampler = DDIMSampler(NoiseSchedule())
    sampler.set_timesteps(n)
    ts = sampler.timesteps
    assert len(ts) == n and ts[0] == 999 and ts[-1] >= 0
    assert np.all(np.diff(ts) < 0)
    if n >= 2:
        assert ts[-1] == 0  # the last network run sees the least noise, so details come out sharp


def test_ddim_without_eta_ignores_the_random_generator() -> None:
    sampler = DDIMSampler(NoiseSchedule())
    sampler.set_timesteps(10)
    x = np.ones((1, 1, 2, 3), np.float32)
    out = np.full_like(x, 0.3)
    a = sampler.step(out, 999, x, np.random.default_rng(0)).prev_sample
    b = sampler.step(out, 999, x, np.random.default_rng(1)).prev_sample
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [DDPMSampler, DDIMSampler, DPMSolverPP2MSampler])
def test_an_identity_hook_changes_nothing_and_a_hook_reaches_pred_x0(cls: type) -> None:
    sampler = cls(SHORT)
    sampler.set_timesteps(40)
    rng_args = (np.random.default_rng(0), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 1, 4, 3)).astype(np.float32)
    eps = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    plain = sampler.step(eps, 39, x, rng_args[0])
    sampler.set_timesteps(40)
    hooked = sampler.step(eps, 39, x, rng_args[1], x0_hook=lambda x0: x0)
    np.testing.assert_allclose(hooked.prev_sample, plain.prev_sample, rtol=1e-4, atol=1e-4)
    sampler.set_timesteps(40)
    zeroed = sampler.step(eps, 39, x, np.random.default_rng(0), x0_hook=np.zeros_like)
    assert not zeroed.pred_x0.any()


@given(
    alpha_bar=st.floats(1e-4, 0.9999),
    x0=st.floats(-2, 2),
    eps=st.floats(-3, 3),
)
def test_split_prediction_inverts_epsilon_and_v(alpha_bar: float, x0: float, eps: float) -> None:
    s, c = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
    x_t = np.array([s * x0 + c * eps])
    for prediction, output in (("epsilon", eps), ("v", s * eps - c * x0)):
        got_x0, got_eps = split_prediction(np.array([output]), x_t, alpha_bar, prediction)
        assert got_eps[0] == pytest.approx(eps, abs=1e-6)
        assert got_x0[0] == pytest.approx(x0, abs=1e-6 / s)


def test_progress_is_reported_after_each_step(short_denoiser: Denoiser) -> None:
    calls: list[tuple[int, int]] = []
    sample(short_denoiser, make_sampler("ddim", short_denoiser.card), 1, 5, seed=0, progress=lambda *a: calls.append(a))
    assert calls == [(i, 5) for i in range(1, 6)]


def test_default_steps(short_denoiser: Denoiser) -> None:
    assert make_sampler("ddpm", short_denoiser.card).default_steps == 40
    assert make_sampler("ddim", short_denoiser.card).default_steps == 50
    assert make_sampler("dpm++", short_denoiser.card).default_steps == 20


def test_refusals(short_denoiser: Denoiser) -> None:
    card = short_denoiser.card
    with pytest.raises(BridgeError, match="sampler 'euler' is unknown; use one of ddpm, ddim, dpm\\+\\+"):
        make_sampler("euler", card)
    with pytest.raises(BridgeError, match="prediction type 'x0' is unknown"):
        DDIMSampler(SHORT, prediction="x0")
    with pytest.raises(BridgeError, match="eta must be at least 0"):
        DDIMSampler(SHORT, eta=-1)
    with pytest.raises(BridgeError, match="takes 1 to 40 steps, got 41"):
        sample(short_denoiser, make_sampler("dpm++", card), 1, 41)
    with pytest.raises(BridgeError, match="at least 1, got 0"):
        sample(short_denoiser, make_sampler("dpm++", card), 0, 5)
    sampler = make_sampler("ddim", card)
    sampler.set_timesteps(5)
    with pytest.raises(BridgeError, match="timestep 3 is not one of this ddim run's"):
        sampler.step(np.zeros((1, 1, 16, 3)), 3, np.zeros((1, 1, 16, 3)), np.random.default_rng())


def test_a_python_denoiser_works_too(short_denoiser: Denoiser) -> None:
    """The loop needs only a card and a call: any DenoiserLike, not just an onnxruntime session."""

    class Zero:
        card = short_denoiser.card

        def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
            return np.zeros_like(x)

    out = sample(Zero(), make_sampler("ddim", Zero.card), 2, 4, seed=0)
    assert out.shape == (2, 16, 3)
