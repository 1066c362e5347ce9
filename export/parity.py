"""Proof at export time that the ONNX graph computes what the Keras network computes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BATCHES = (1, 4)
MAX_ABS = 1e-4


@dataclass(frozen=True)
class Parity:
    """Largest absolute difference over every batch size and timestep tried."""

    max_abs: float
    batches: tuple[int, ...]
    timesteps: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        return {"max_abs": self.max_abs, "batches": list(self.batches), "timesteps": list(self.timesteps)}


def onnx_runner(model_bytes: bytes) -> Callable[..., np.ndarray]:
    """A CPU onnxruntime session as ``run(sample, timestep[, style]) -> prediction`` (inputs in graph order)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda *inputs: session.run(None, dict(zip(names, inputs, strict=True)))[0]


def measure(
    reference: Callable[..., np.ndarray],
    candidate: Callable[..., np.ndarray],
    length: int,
    steps: int,
    *,
    styles: int = 0,
    batches: Sequence[int] = BATCHES,
    seed: int = 0,
) -> Parity:
    """Compare two denoisers on the same random ``(batch, 1, L, 3)`` inputs at early, middle and late t;
    a styled pair (``styles`` > 0) also gets ``style`` indices running through every style and "no style"."""
    rng = np.random.default_rng(seed)
    timesteps = (0, steps // 2, steps - 1)
    worst = 0.0
    for batch in batches:
        sample = rng.standard_normal((batch, 1, length, 3)).astype(np.float32)
        style = (np.arange(batch, dtype=np.int32) % (styles + 1),) if styles else ()
        for t in timesteps:
            inputs = (sample, np.full((batch,), t, dtype=np.float32), *style)
            diff = np.abs(np.asarray(reference(*inputs)) - np.asarray(candidate(*inputs)))
            worst = max(worst, float(diff.max()))
    return Parity(worst, tuple(batches), timesteps)
