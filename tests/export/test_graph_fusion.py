"""The export's graph pass on small graphs spelled the way tf2onnx spells Keras: rewritten, and unchanged in value."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.graph_fusion import lean, op_counts, ort_optimized

OPSET = 17
RNG = np.random.default_rng(0)


Shape = list[int | str]


def _model(nodes: list[onnx.NodeProto], x_shape: Shape, outputs: dict[str, Shape],
           consts: dict[str, np.ndarray]) -> onnx.ModelProto:  # fmt: skip
    """A graph from ``x`` to ``outputs`` (name: shape); the batch axis is dynamic."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)  # opset 17's IR
    onnx.checker.check_model(model, full_check=True)
    return model


def _layer_norm(axis: int, *, mean_is_output: bool = False, zero_beta: bool = False) -> onnx.ModelProto:
    """Keras' layer norm over ``axis`` of ``(batch, 4, 1, 6)`` as tf2onnx writes it (axis 1: channels first;
    ``zero_beta``: the Add of an all-zero beta folded away, as in a network not trained yet)."""
    shape = [4, 1, 6]
    broadcast = [1, 1, 1, 1]
    broadcast[axis] = shape[axis - 1]
    mean_shape = ["batch", *(1 if i == axis else size for i, size in enumerate(shape, 1))]
    keep = {1: [0, 1, -1, 6], 3: [0, 4, -1, 1]}[axis]  # the mean's own shape, as tf2onnx writes it
    consts = {"eps": np.full((1, 1, 1, 1), 1e-5, np.float32), "keep": np.array(keep, np.int64),
              "gamma": RNG.uniform(0.5, 1.5, broadcast).astype(np.float32),
              "beta": RNG.standard_normal(broadcast).astype(np.float32)}  # fmt: skip
    node = helper.make_node
    nodes = [
        node("ReduceMean", ["x"], ["mean"], "mean", axes=[axis], keepdims=1),
        node("Neg", ["mean"], ["neg"], "neg"),
        node("Reshape", ["mean", "keep"], ["mean_r"], "mean_r"),  # tf2onnx's no-op layout change
        node("Sub", ["x", "mean_r"], ["d"], "d"),
        node("Mul", ["d", "d"], ["dd"], "dd"),
        node("ReduceMean", ["dd"], ["var"], "var", axes=[axis], keepdims=1),
        node("Add", ["var", "eps"], ["ve"], "ve"),
        node("Sqrt", ["ve"], ["s"], "s"),
        node("Reciprocal", ["s"], ["r"], "r"),
        node("Mul", ["r", "gamma"], ["inv"], "inv"),
        node("Mul", ["x", "inv"], ["a"], "a"),
        node("Mul", ["neg", "inv"], ["b"], "b"),
        node("Add", ["b", "beta"], ["c"], "c"),
        node("Add", ["a", "c"], ["y"], "y"),
    ]
    if zero_beta:
        del consts["beta"]
        nodes[-2:] = [node("Add", ["a", "b"], ["y"], "y")]
    outputs = {"y": ["batch", *shape], **({"mean": mean_shape} if mean_is_output else {})}
    return _model(nodes, ["batch", *shape], outputs, consts)


def _gelu() -> onnx.ModelProto:
    """``0.5 x (1 + erf(x * 0.7071))`` with tf2onnx's constants, one of them shaped ``(1, 1)``."""
    consts = {"rsqrt2": np.float32(1 / np.sqrt(2)), "one": np.ones((1, 1), np.float32), "half": np.float32(0.5)}
    node = helper.make_node
    nodes = [
        node("Mul", ["x", "rsqrt2"], ["xs"], "xs"),
        node("Erf", ["xs"], ["e"], "e"),
        node("Add", ["one", "e"], ["e1"], "e1"),
        node("Mul", ["half", "x"], ["hx"], "hx"),
        node("Mul", ["hx", "e1"], ["y"], "y"),
    ]
    return _model(nodes, ["batch", 8], {"y": ["batch", 8]}, consts)


def _dense() -> onnx.ModelProto:
    """Keras Dense on ``(batch, 1, 5, 6)``: flatten, MatMul, then a reshape to a target computed from shapes."""
    consts = {"flat": np.array([-1, 6], np.int64), "w": RNG.standard_normal((6, 3)).astype(np.float32),
              "free": np.array([0, 1, 2], np.int64), "k": np.array([3], np.int32),
              "bias": RNG.standard_normal(3).astype(np.float32)}  # fmt: skip
    node = helper.make_node
    nodes = [
        node("Shape", ["x"], ["shape"], "shape"),
        node("Cast", ["shape"], ["shape32"], "shape32", to=TensorProto.INT32),
        node("Gather", ["shape32", "free"], ["lead"], "lead", axis=0),
        node("Concat", ["lead", "k"], ["target32"], "target32", axis=0),
        node("Cast", ["target32"], ["target"], "target", to=TensorProto.INT64),
        node("Reshape", ["x", "flat"], ["x2"], "x2"),
        node("MatMul", ["x2", "w"], ["m"], "m"),
        node("Reshape", ["m", "target"], ["m4"], "m4"),
        node("Add", ["m4", "bias"], ["y"], "y"),
    ]
    return _model(nodes, ["batch", 1, 5, 6], {"y": ["batch", 1, 5, 3]}, consts)


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _assert_same_function(before: onnx.ModelProto, after: onnx.ModelProto, shape: tuple[int, ...]) -> None:
    for batch in (1, 3):
        x = (RNG.standard_normal((batch, *shape)) * 3 + 1).astype(np.float32)
        for old, new in zip(_run(before, x), _run(after, x), strict=True):
            np.testing.assert_allclose(new, old, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("axis", "zero_beta"), [(1, False), (3, False), (1, True)])
def test_layer_norm_becomes_one_op(axis: int, zero_beta: bool) -> None:
    """Channels first (axis 1) or last: one LayerNormalization (with Transposes around it for axis 1)."""
    before = _layer_norm(axis, zero_beta=zero_beta)
    after = lean(before)
    onnx.checker.check_model(after, full_check=True)
    ops = op_counts(after)
    assert ops["LayerNormalization"] == 1
    assert not ops.keys() & {"ReduceMean", "Sqrt", "Reciprocal", "Neg", "Sub", "Mul", "Add", "Reshape"}
    assert ops["Transpose"] == (2 if axis == 1 else 0)
    _assert_same_function(before, after, (4, 1, 6))


def test_layer_norm_whose_mean_is_read_elsewhere_is_left_alone() -> None:
    before = _layer_norm(3, mean_is_output=True)
    after = lean(before)
    assert op_counts(after) == op_counts(before) - Counter(Reshape=1)  # only the no-op reshape of the mean goes
    _assert_same_function(before, after, (4, 1, 6))


def test_gelu_takes_the_form_onnxruntime_fuses() -> None:
    before = _gelu()
    assert "Erf" in op_counts(ort_optimized(before))  # the form tf2onnx writes is not fused
    after = lean(before)
    fused = op_counts(ort_optimized(after))
    assert fused["Gelu"] == 1 and "Erf" not in fused
    _assert_same_function(before, after, (8,))


def test_dense_on_4d_input_is_one_matmul() -> None:
    before = _dense()
    after = lean(before)
    assert op_counts(after) == {"MatMul": 1, "Add": 1}
    _assert_same_function(before, after, (1, 5, 6))
