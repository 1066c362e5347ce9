"""Samplers over the shared noise schedule, and the loop that runs them.

Split as in diffusers' schedulers: a sampler never touches the network. ``set_timesteps(n)``
chooses the steps (and resets any multistep state), then the caller runs the network and
hands its output to ``step(model_output, t, sample, rng)``, which returns ``StepOutput(prev_sample,
pred_x0)``. :func:`sample` is that loop, batched and seeded.

Symbols (Ho et al. 2020; Song et al. 2021; Lu et al. 2022): ``ab`` = alpha_bar_t,
``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps``; the network predicts ``eps`` or ``v = sqrt(ab) eps -
sqrt(1 - ab) x0`` (the card says which). Timesteps are 0-based, ``t = T - 1`` the noisiest; the
step after ``t = 0`` is "clean", ``ab = 1``. Arrays are ``(B, 1, L, 3)`` float32.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from bridge.card import PREDICTIONS, ModelCard
from bridge.constraints import PitchConstraint, Projection
from bridge.errors import BridgeError
from bridge.schedule import NoiseSchedule

log = logging.getLogger(__name__)

X0Hook = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StepOutput:
    """One step's result: ``prev_sample`` x_{t_prev} and the ``pred_x0`` it was computed from."""

    prev_sample: np.ndarray
    pred_x0: np.ndarray


def half_log_snr(alpha_bar: np.ndarray | float) -> np.ndarray:
    """lambda_t = log(alpha_t / sigma_t) = (log ab - log(1 - ab)) / 2; +inf at the clean end (ab = 1)."""
    ab = np.asarray(alpha_bar, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 0.5 * (np.log(ab) - np.log1p(-ab))


def split_prediction(
    model_output: np.ndarray, sample: np.ndarray, alpha_bar: float, prediction: str
) -> tuple[np.ndarray, np.ndarray]:
    """The network's output at x_t -> (x0, eps), for epsilon or v prediction."""
    sqrt_ab, sqrt_one_minus_ab = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    if prediction == "epsilon":
        return (sample - sqrt_one_minus_ab * model_output) / sqrt_ab, model_output
    # v-prediction (Salimans & Ho 2022): x0 = sqrt(ab) x_t - sqrt(1-ab) v, eps = sqrt(1-ab) x_t + sqrt(ab) v.
    return (
        sqrt_ab * sample - sqrt_one_minus_ab * model_output,
        sqrt_one_minus_ab * sample + sqrt_ab * model_output,
    )


class Sampler(ABC):
    """What every sampler shares: the schedule, the prediction type, and the step bookkeeping."""

    name: ClassVar[str]
    default_steps: int

    def __init__(self, schedule: NoiseSchedule, prediction: str = "epsilon") -> None:
        if prediction not in PREDICTIONS:
            raise BridgeError(f"prediction type {prediction!r} is unknown; use one of {PREDICTIONS}")
        self.schedule = schedule
        self.prediction = prediction
        self.timesteps = np.zeros(0, np.int64)
        self._prev: dict[int, int] = {}

    def set_timesteps(self, n: int) -> None:
        """Use ``n`` distinct steps from ``T - 1`` to 0, evenly spaced in lambda (log-SNR / 2).

        Lu et al. 2022 recommend log-SNR spacing: it spends the steps where the data's details
        form, near t = 0 (with time-uniform or trailing spacing, 10 steps lose a fifth of the
        data's spread on the tests' Gaussian). Rounding to integers may merge steps near t = 0;
        those are pushed apart (within 0 .. T - 1), so all T steps give T - 1 .. 0.
        """
        steps = self.schedule.steps
        if not 1 <= n <= steps:
            raise BridgeError(f"{self.name} takes 1 to {steps} steps, got {n}")
        lambdas = half_log_snr(self.schedule.alpha_bars)  # decreasing in t
        targets = np.linspace(lambdas[-1], lambdas[0], n)
        timesteps = np.rint(np.interp(targets, lambdas[::-1], np.arange(steps - 1, -1, -1))).astype(np.int64)
        for i in range(n - 2, -1, -1):
            timesteps[i] = max(timesteps[i], timesteps[i + 1] + 1)
        self._use(np.minimum(timesteps, steps - 1 - np.arange(n)))

    def _use(self, timesteps: np.ndarray) -> None:
        self.timesteps = timesteps
        self._prev = dict(zip(timesteps.tolist(), [*timesteps[1:].tolist(), -1], strict=True))

    @abstractmethod
    def step(
        self, model_output: np.ndarray, t: int, sample: np.ndarray, rng: np.random.Generator,
        *, x0_hook: X0Hook | None = None,
    ) -> StepOutput:
        """x_t and the network's output at t -> x at the next timestep; ``x0_hook`` may change x0 first."""

    def _alpha_bar(self, t: int) -> float:
        """``ab`` at ``t``; 1 for the clean end (t = -1)."""
        return 1.0 if t < 0 else float(self.schedule.alpha_bars[t])

    def _prev_t(self, t: int) -> int:
        try:
            return self._prev[t]
        except KeyError:
            raise BridgeError(f"timestep {t} is not one of this {self.name} run's; call set_timesteps first") from None

    def _predict(
        self, model_output: np.ndarray, t: int, sample: np.ndarray, x0_hook: X0Hook | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(x0, eps) at t; after a hook changed x0, eps is re-derived from it so the step stays consistent."""
        alpha_bar = self._alpha_bar(t)
        x0, eps = split_prediction(model_output, sample, alpha_bar, self.prediction)
        if x0_hook is None:
            return x0, eps
        x0 = x0_hook(x0)
        return x0, (sample - math.sqrt(alpha_bar) * x0) / math.sqrt(1.0 - alpha_bar)


class DDPMSampler(Sampler):
    """Ancestral DDPM over all T steps, the seed's procedure (Ho et al. 2020, Algorithm 2, sigma_t^2 = beta_t)."""

    name = "ddpm"

    def __init__(self, schedule: NoiseSchedule, prediction: str = "epsilon") -> None:
        super().__init__(schedule, prediction)
        self.default_steps = schedule.steps

    def set_timesteps(self, n: int) -> None:
        """DDPM runs every step, T - 1 .. 0; a fewer-step run is DDIM's or DPM++'s job."""
        if n != self.schedule.steps:
            raise BridgeError(f"ddpm runs all {self.schedule.steps} steps, got {n}; use ddim or dpm++ for fewer")
        self._use(np.arange(n - 1, -1, -1, dtype=np.int64))

    def step(
        self, model_output: np.ndarray, t: int, sample: np.ndarray, rng: np.random.Generator,
        *, x0_hook: X0Hook | None = None,
    ) -> StepOutput:
        """x_{t-1} = (x_t - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z, and z = 0 at t = 0."""
        self._prev_t(t)  # refuses a t that is not this run's
        x0, eps = self._predict(model_output, t, sample, x0_hook)
        beta, alpha = float(self.schedule.betas[t]), float(self.schedule.alphas[t])
        prev = (sample - beta / math.sqrt(1.0 - self._alpha_bar(t)) * eps) / math.sqrt(alpha)
        if t > 0:
            prev += math.sqrt(beta) * rng.standard_normal(sample.shape, dtype=np.float32)
        return StepOutput(prev, x0)


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021, eq. 12): eta = 0 is deterministic; eta = 1 over all T steps is DDPM-like."""

    name = "ddim"
    default_steps = 50

    def __init__(self, schedule: NoiseSchedule, prediction: str = "epsilon", eta: float = 0.0) -> None:
        super().__init__(schedule, prediction)
        if eta < 0:
            raise BridgeError(f"ddim eta must be at least 0, got {eta}")
        self.eta = eta

    def step(
        self, model_output: np.ndarray, t: int, sample: np.ndarray, rng: np.random.Generator,
        *, x0_hook: X0Hook | None = None,
    ) -> StepOutput:
        """x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z."""
        x0, eps = self._predict(model_output, t, sample, x0_hook)
        ab, ab_prev = self._alpha_bar(t), self._alpha_bar(self._prev_t(t))
        # sigma_t(eta) = eta sqrt((1 - ab_prev) / (1 - ab)) sqrt(1 - ab / ab_prev)
        sigma = self.eta * math.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
        prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            prev += sigma * rng.standard_normal(sample.shape, dtype=np.float32)
        return StepOutput(prev, x0)


class DPMSolverPP2MSampler(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep, second order, data (x0) prediction.

    With alpha_t = sqrt(ab), sigma_t = sqrt(1 - ab), lambda_t = log(alpha_t / sigma_t) and h the
    step in lambda: x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (e^{-h} - 1) D, where D is x0,
    corrected by the previous step's x0 after the first step. The last step, to sigma = 0,
    is first order: it returns x0 (as k-diffusion and diffusers do).
    """

    name = "dpm++"
    default_steps = 20
    _x0_prev: np.ndarray | None = None  # D at the previous step, for the second-order correction
    _h_prev: float = 0.0

    def set_timesteps(self, n: int) -> None:
        """Log-SNR spaced steps as for DDIM, and a fresh history."""
        super().set_timesteps(n)
        self._x0_prev, self._h_prev = None, 0.0

    def step(
        self, model_output: np.ndarray, t: int, sample: np.ndarray, rng: np.random.Generator,
        *, x0_hook: X0Hook | None = None,
    ) -> StepOutput:
        """One multistep update; ``rng`` is unused (the solver is deterministic)."""
        x0, _ = self._predict(model_output, t, sample, x0_hook)
        prev_t = self._prev_t(t)
        if prev_t < 0:
            return StepOutput(x0, x0)
        ab, ab_prev = self._alpha_bar(t), self._alpha_bar(prev_t)
        h = float(half_log_snr(ab_prev) - half_log_snr(ab))
        denoised = x0
        if self._x0_prev is not None:
            half_inv_r = 0.5 * h / self._h_prev  # 1 / (2 r), r = h_prev / h
            denoised = (1.0 + half_inv_r) * x0 - half_inv_r * self._x0_prev
        prev = math.sqrt((1.0 - ab_prev) / (1.0 - ab)) * sample - math.sqrt(ab_prev) * math.expm1(-h) * denoised
        self._x0_prev, self._h_prev = x0, h
        return StepOutput(prev, x0)


SAMPLERS: dict[str, type[Sampler]] = {s.name: s for s in (DDPMSampler, DDIMSampler, DPMSolverPP2MSampler)}


def make_sampler(name: str, card: ModelCard, **options: Any) -> Sampler:
    """The sampler ``name`` ("ddpm", "ddim", "dpm++") for a model's schedule and prediction type."""
    if name not in SAMPLERS:
        raise BridgeError(f"sampler {name!r} is unknown; use one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name](card.schedule, card.prediction, **options)


class DenoiserLike(Protocol):
    """What :func:`sample` needs of a model: its card and one call ``(B, 1, L, 3), (B,) -> (B, 1, L, 3)``."""

    card: ModelCard

    def __call__(self, sample: np.ndarray, timestep: np.ndarray) -> np.ndarray: ...


def sample(
    denoiser: DenoiserLike,
    sampler: Sampler,
    n: int = 1,
    steps: int | None = None,
    seed: int | np.random.Generator | None = None,
    *,
    constraint: PitchConstraint | None = None,
    prompt: np.ndarray | None = None,
    project_during: bool = True,
    progress: Progress | None = None,
    onset_start: np.ndarray | float = 0.0,
) -> np.ndarray:
    """``n`` variations in one batch -> scaled float32 ``(n, L, 3)``; decode with :mod:`bridge.decoding`.

    ``steps``: None is the sampler's default. ``seed`` (or a Generator) makes the run repeatable.
    ``constraint`` projects each step's x0 onto allowed pitches (``project_during``) and snaps the
    result. ``prompt``, unscaled features ``(k, 3)`` or ``(n, k, 3)``, holds the first k notes (see
    :mod:`bridge.continuation`). ``progress(done, total)`` is called after each step. ``onset_start``
    (beats, one value or ``(n,)``): where in the beat the first note falls, for the corpus onset gaps.
    """
    card = denoiser.card
    if n < 1:
        raise BridgeError(f"the number of variations must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    sampler.set_timesteps(sampler.default_steps if steps is None else steps)
    x = rng.standard_normal((n, 1, card.length, 3), dtype=np.float32)
    hold = _PromptHold.create(prompt, card, n, rng)
    held = 0 if hold is None else hold.length
    projection = (
        constraint.projection(card.stats, len(sampler.timesteps), card.note_lengths, card.onset_gaps, onset_start, held)
        if constraint is not None
        else None
    )
    hook = _x0_hook(projection if project_during else None, hold)
    timestep = np.empty(n, np.float32)
    total = len(sampler.timesteps)
    for done, t in enumerate(sampler.timesteps.tolist(), start=1):
        if hold is not None:
            hold.noise_into(x[:, 0], t)
        timestep.fill(t)
        x = sampler.step(denoiser(x, timestep), t, x, rng, x0_hook=hook).prev_sample
        if progress is not None:
            progress(done, total)
    out = x[:, 0]
    _project(None if projection is None else projection.finish, hold, out)
    return out


def _x0_hook(projection: Projection | None, hold: _PromptHold | None) -> X0Hook | None:
    """The per-step change of x0 ``(B, 1, L, 3)``: project pitches and times, then restore the prompt."""
    if projection is None and hold is None:
        return None

    def hook(x0: np.ndarray) -> np.ndarray:
        _project(projection, hold, x0[:, 0])
        return x0

    return hook


def _project(project: X0Hook | None, hold: _PromptHold | None, x0: np.ndarray) -> None:
    """Project a clean ``(n, L, 3)`` in place with its prompt exact, then restore the prompt the projection
    moved: the key and the beat run on through the prompt as it is, not as the network heard it."""
    if hold is not None:
        hold.keep(x0)
    if project is not None:
        project(x0)
        if hold is not None:
            hold.keep(x0)


@dataclass(frozen=True)
class _PromptHold:
    """The first k positions held to a prompt: before each network run they become the prompt
    noised to the current level, x_t = sqrt(ab) prompt + sqrt(1 - ab) eps, with one eps per run
    (the prompt's own noise, so a deterministic solver sees one consistent trajectory)."""

    scaled: np.ndarray  # (1 or n, k, 3) float32
    eps: np.ndarray  # (n, k, 3) float32
    alpha_bars: np.ndarray  # (T,)

    @classmethod
    def create(cls, prompt: np.ndarray | None, card: ModelCard, n: int, rng: np.random.Generator) -> _PromptHold | None:
        """Checked and scaled; None for no prompt or an empty one."""
        if prompt is None or np.shape(prompt)[-2:-1] == (0,):
            return None
        features = np.asarray(prompt, dtype=np.float64)
        features = features[None] if features.ndim == 2 else features
        k = features.shape[1] if features.ndim == 3 else 0
        if features.ndim != 3 or features.shape[2] != 3 or features.shape[0] not in (1, n) or k >= card.length:
            raise BridgeError(
                f"a prompt must be features of shape (k, 3) or ({n}, k, 3) with k < {card.length}, "
                f"got {np.shape(prompt)}; keep its last notes (bridge.continuation.prompt_features)"
            )
        scaled = card.stats.scale(features)
        bounds = card.stats.bounds.astype(np.float32)
        if (np.abs(scaled) > bounds).any():
            log.warning("the prompt goes beyond the model's range (pitch, duration or delta); it was clipped")
            np.clip(scaled, -bounds, bounds, out=scaled)
        return cls(scaled, rng.standard_normal((n, k, 3), dtype=np.float32), card.schedule.alpha_bars)

    def noise_into(self, x: np.ndarray, t: int) -> None:
        """Set the first k positions of x_t ``(n, L, 3)`` to the prompt noised to level t."""
        ab = float(self.alpha_bars[t])
        x[:, : self.eps.shape[1]] = math.sqrt(ab) * self.scaled + math.sqrt(1.0 - ab) * self.eps

    @property
    def length(self) -> int:
        """k, the prompt's number of notes."""
        return self.eps.shape[1]

    def keep(self, x: np.ndarray) -> None:
        """Set the first k positions of a clean ``(n, L, 3)`` to the prompt exactly."""
        x[:, : self.eps.shape[1]] = self.scaled
