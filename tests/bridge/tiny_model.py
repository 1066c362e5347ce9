"""A tiny, real model folder for tests: an ONNX graph that denoises a known Gaussian exactly.

The data it "was trained on" is x0 ~ N(mean, std^2), independently per note and feature (in
scaled units). For that distribution the ideal epsilon-prediction has a closed form,

    eps_hat(x_t, t) = sqrt(1 - alpha_bar_t) * (x_t - sqrt(alpha_bar_t) * mean) / (alpha_bar_t * std^2 + 1 - alpha_bar_t)

so a correct sampler must return samples with that mean and std: a strong end-to-end test of
samplers and runtime together. The graph depends on both inputs through real ops (Gather on
the schedule by timestep, arithmetic on the sample), and has the contract's signature. A styled
twin takes ``style`` too and gathers each style's own mean (the last row: "no style").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bridge.card import ModelCard, sha256_file, write_card
from bridge.codec import FeatureStats
from bridge.schedule import NoiseSchedule
from bridge.styles import Styles

TINY_MEAN = (0.2, -0.3, 0.1)
TINY_STD = (0.5, 0.3, 0.2)
TINY_STATS = FeatureStats(low=(36.0, 0.0, 0.0), high=(96.0, 4.0, 2.0))
TINY_LENGTH = 16


def gaussian_denoiser(
    schedule: NoiseSchedule,
    length: int,
    *,
    prediction: str = "epsilon",
    mean: Sequence[float] = TINY_MEAN,
    std: Sequence[float] = TINY_STD,
    style_means: Sequence[Sequence[float]] = (),
) -> onnx.ModelProto:
    """The exact denoiser of N(mean, std^2) data as an opset-17 graph: sample (N,1,L,3), timestep (N,);
    with ``style_means`` (one row per style, then "no style"), also style (N,) int32, which picks the mean."""
    consts = {
        "alpha_bars": schedule.alpha_bars.astype(np.float32),
        ("style_means" if style_means else "mean"): np.asarray(style_means or mean, np.float32),
        "var": np.square(np.asarray(std, np.float32)),
        "one": np.array(1.0, np.float32),
        "batch_shape": np.array([-1, 1, 1, 1], np.int64),
        "mean_shape": np.array([-1, 1, 1, 3], np.int64),
    }
    styled = [
        helper.make_node("Gather", ["style_means", "style"], ["mean_flat"]),
        helper.make_node("Reshape", ["mean_flat", "mean_shape"], ["mean"]),
    ]
    nodes = [
        *styled[: 2 * bool(style_means)],
        helper.make_node("Cast", ["timestep"], ["t_index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["alpha_bars", "t_index"], ["ab_flat"]),
        helper.make_node("Reshape", ["ab_flat", "batch_shape"], ["ab"]),
        helper.make_node("Sqrt", ["ab"], ["sqrt_ab"]),
        helper.make_node("Sub", ["one", "ab"], ["one_minus_ab"]),
        helper.make_node("Sqrt", ["one_minus_ab"], ["sqrt_one_minus_ab"]),
        helper.make_node("Mul", ["sqrt_ab", "mean"], ["mean_t"]),
        helper.make_node("Sub", ["sample", "mean_t"], ["centered"]),
        helper.make_node("Mul", ["ab", "var"], ["ab_var"]),
        helper.make_node("Add", ["ab_var", "one_minus_ab"], ["var_t"]),
        helper.make_node("Div", ["centered", "var_t"], ["scaled"]),
        helper.make_node("Mul", ["sqrt_one_minus_ab", "scaled"], ["eps" if prediction == "v" else "prediction"]),
    ]
    if prediction == "v":
        # v = sqrt(ab) eps - sqrt(1-ab) x0 with x0 = (x_t - sqrt(1-ab) eps) / sqrt(ab).
        nodes += [
            helper.make_node("Mul", ["sqrt_one_minus_ab", "eps"], ["noise_part"]),
            helper.make_node("Sub", ["sample", "noise_part"], ["x0_scaled"]),
            helper.make_node("Div", ["x0_scaled", "sqrt_ab"], ["x0"]),
            helper.make_node("Mul", ["sqrt_ab", "eps"], ["v_eps"]),
            helper.make_node("Mul", ["sqrt_one_minus_ab", "x0"], ["v_x0"]),
            helper.make_node("Sub", ["v_eps", "v_x0"], ["prediction"]),
        ]
    graph = helper.make_graph(
        nodes,
        "gaussian_denoiser",
        [
            helper.make_tensor_value_info("sample", TensorProto.FLOAT, ["batch", 1, length, 3]),
            helper.make_tensor_value_info("timestep", TensorProto.FLOAT, ["batch"]),
            *[helper.make_tensor_value_info("style", TensorProto.INT32, ["batch"])] * bool(style_means),
        ],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["batch", 1, length, 3])],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_tiny_model(
    directory: Path,
    *,
    length: int = TINY_LENGTH,
    prediction: str = "epsilon",
    schedule: NoiseSchedule | None = None,
    stats: FeatureStats = TINY_STATS,
    name: str = "tiny",
    mean: Sequence[float] = TINY_MEAN,
    std: Sequence[float] = TINY_STD,
    styles: Styles | None = None,
    style_means: Sequence[Sequence[float]] = (),
) -> Path:
    """Write ``directory/model.onnx`` and a valid ``model.json``; returns ``directory``."""
    schedule = schedule or NoiseSchedule()
    directory.mkdir(parents=True, exist_ok=True)
    graph = gaussian_denoiser(schedule, length, prediction=prediction, mean=mean, std=std, style_means=style_means)
    onnx.save(graph, directory / "model.onnx")
    card = ModelCard(
        name=name,
        sha256=sha256_file(directory / "model.onnx"),
        length=length,
        stats=stats,
        schedule=schedule,
        prediction=prediction,
        training={"config": "gaussian", "steps": 0, "dataset": {"mean": list(mean), "std": list(std)}},
        parity={"max_abs": 0.0, "batches": [1], "timesteps": [0]},
        styles=styles,
    )
    write_card(directory, card)
    return directory
