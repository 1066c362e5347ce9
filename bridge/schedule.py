"""The DDPM noise schedule: one definition shared by training and every sampler.

Symbols follow Ho et al. 2020: ``beta_t``, ``alpha_t = 1 - beta_t`` and
``alpha_bar_t = prod_{s<=t} alpha_s``, with ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps``.
Timesteps are 0-based: ``t = 0`` is the least noisy step, ``t = steps - 1`` the noisiest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bridge.errors import BridgeError

SCHEDULE_KINDS = ("linear", "cosine")


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete-time variance schedule; ``kind`` 'linear' is the seed's (1e-4 .. 0.02 over 1000)."""

    kind: str = "linear"
    steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise BridgeError(f"schedule kind {self.kind!r} is unknown; use one of {SCHEDULE_KINDS}")
        if self.steps < 2:
            raise BridgeError(f"schedule steps must be at least 2, got {self.steps}")
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise BridgeError(
                f"schedule betas must satisfy 0 < beta_start < beta_end < 1, "
                f"got {self.beta_start} and {self.beta_end}"
            )

    @cached_property
    def betas(self) -> np.ndarray:
        """``beta_t`` for t = 0 .. steps-1, float64 ``(steps,)``."""
        if self.kind == "linear":
            return np.linspace(self.beta_start, self.beta_end, self.steps, dtype=np.float64)
        # Nichol & Dhariwal 2021, clipped as they do.
        s = 0.008
        f = np.cos((np.arange(self.steps + 1) / self.steps + s) / (1 + s) * np.pi / 2) ** 2
        return np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)

    @cached_property
    def alphas(self) -> np.ndarray:
        """``alpha_t = 1 - beta_t``, float64 ``(steps,)``."""
        return 1.0 - self.betas

    @cached_property
    def alpha_bars(self) -> np.ndarray:
        """``alpha_bar_t``, the cumulative product of ``alpha_t``, float64 ``(steps,)``."""
        return np.cumprod(self.alphas)

    def add_noise(self, x0: np.ndarray, eps: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Forward process q(x_t | x0): ``x0`` and ``eps`` ``(batch, ...)``, ``t`` int ``(batch,)``."""
        ab = self.alpha_bars[np.asarray(t)].reshape((-1,) + (1,) * (np.ndim(x0) - 1))
        return (np.sqrt(ab) * x0 + np.sqrt(1.0 - ab) * eps).astype(np.asarray(x0).dtype)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the model card."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseSchedule:
        """Rebuild from a model card; an unknown key is an error that names it."""
        unknown = set(data) - {"kind", "steps", "beta_start", "beta_end"}
        if unknown:
            raise BridgeError(f"unknown schedule key(s) {sorted(unknown)} in model card")
        return cls(**data)
