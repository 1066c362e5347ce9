"""How many denoising steps fit before a deadline, from measured step times.

Each generation reports (steps, seconds); the estimate of seconds per step is a smoothed upper
value (mean plus two deviations, exponentially weighted), so a slow step now and then does not
make the phrase miss its downbeat. A fixed cost per generation (decoding, setup) is measured
from one-step runs, such as the daemon's warm-up.
"""

from __future__ import annotations

import math
import threading

SMOOTHING = 0.3  # weight of the newest measurement
SAFETY = 0.85  # plan to use this share of the time left


class StepBudget:
    """Thread-safe estimate of generation time; starts from a prior until measured."""

    def __init__(self, step_s: float = 0.05, fixed_s: float = 0.01) -> None:
        self._lock = threading.Lock()
        self._mean = step_s
        self._var = 0.0
        self._fixed = fixed_s
        self.measured = False

    def observe(self, steps: int, seconds: float) -> None:
        """One generation took ``seconds`` for ``steps`` steps."""
        if steps < 1 or seconds <= 0:
            return
        with self._lock:
            per_step = max(seconds - self._fixed, seconds * 0.1) / steps
            if not self.measured:
                self._mean, self._var, self.measured = per_step, 0.0, True
                return
            diff = per_step - self._mean
            self._mean += SMOOTHING * diff
            self._var = (1 - SMOOTHING) * (self._var + SMOOTHING * diff * diff)

    def observe_fixed(self, seconds: float) -> None:
        """The cost of a generation apart from its steps (measure with a one-step run)."""
        with self._lock:
            self._fixed = max(seconds, 0.0)

    def step_seconds(self) -> float:
        """A cautious seconds-per-step: mean plus two standard deviations."""
        with self._lock:
            return self._mean + 2.0 * math.sqrt(self._var)

    def seconds_for(self, steps: int) -> float:
        """A cautious estimate of a whole generation of ``steps`` steps."""
        with self._lock:
            fixed = self._fixed
        return fixed + steps * self.step_seconds()

    def steps_for(self, seconds: float, low: int, high: int) -> int | None:
        """The most steps in ``low..high`` that fit in ``seconds``; None when not even ``low`` fits."""
        with self._lock:
            fixed = self._fixed
        fit = math.floor((seconds * SAFETY - fixed) / self.step_seconds())
        if fit < low:
            return None
        return min(fit, high)
