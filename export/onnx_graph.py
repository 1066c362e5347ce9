"""Keras network -> ONNX graph with tf2onnx, and the fp16 variant for GPUs.

The graph's signature is the contract in docs/CONTRACTS.md: inputs ``sample`` ``(batch, 1, L, 3)``,
``timestep`` ``(batch,)`` and, for a network conditioned on styles, ``style`` ``(batch,)`` int32; output
``prediction``; the batch dimension stays dynamic.
"""

from __future__ import annotations

import logging

import onnx

from export import graph_fusion

log = logging.getLogger(__name__)
OPSET = 17  # LayerNormalization as one op; supported by onnxruntime's CPU and CUDA providers
INPUT_NAMES = ("sample", "timestep", "style")
OUTPUT_NAME = "prediction"


def keras_to_onnx(network: object, length: int, opset: int = OPSET, *, lean: bool = True) -> onnx.ModelProto:
    """Trace ``network([sample, timestep(, style)])`` as a tf.function and convert it; the checker must pass.

    ``lean`` rewrites tf2onnx's output into fewer, fusable ops (``graph_fusion``), the same function.
    """
    import tensorflow as tf
    import tf2onnx

    spec = (
        tf.TensorSpec((None, 1, length, 3), tf.float32, name=INPUT_NAMES[0]),
        tf.TensorSpec((None,), tf.float32, name=INPUT_NAMES[1]),
        tf.TensorSpec((None,), tf.int32, name=INPUT_NAMES[2]),
    )[: len(network.inputs)]  # type: ignore[attr-defined]

    @tf.function(input_signature=spec)
    def denoise(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: network(list(inputs), training=False)}  # type: ignore[operator]

    proto, _ = tf2onnx.convert.from_function(denoise, input_signature=spec, opset=opset)
    proto.producer_name = "diffusion-composer"
    if lean:
        proto = graph_fusion.lean(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Half-precision weights and arithmetic, float32 inputs and outputs (so callers never change)."""
    import warnings

    from onnxconverter_common import float16

    model_casts = {n.name for n in proto.graph.node if n.op_type == "Cast"}
    with warnings.catch_warnings():  # it warns for every constant it clamps to fp16's range (the -1e9 mask)
        warnings.simplefilter("ignore", UserWarning)
        half = float16.convert_float_to_float16(proto, keep_io_types=True, node_block_list=sorted(_phase_nodes(proto)))
    # The converter leaves the graph's own casts to float32 (e.g. a boolean mask made numeric), whose
    # float32 output then meets fp16 operands: make them cast to fp16 like everything around them.
    for node in half.graph.node:
        if node.op_type == "Cast" and node.name in model_casts:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                    attr.i = onnx.TensorProto.FLOAT16
    onnx.checker.check_model(half)
    return half


def _phase_nodes(proto: onnx.ModelProto) -> set[str]:
    """The Sin and Cos nodes and everything upstream of them, which stay float32 in the fp16 graph.

    Their angles are large (a pitch-chroma harmonic of 12 turns about 200 radians over the pitch
    range, the time embedding up to 1000): fp16 spaces numbers there 0.1 to 0.5 apart, so the
    sines would be noise. Computed in float32 from the float32 inputs, they are exact.
    """
    producers = {output: node for node in proto.graph.node for output in node.output}
    kept: set[str] = set()
    stack = [node for node in proto.graph.node if node.op_type in ("Sin", "Cos")]
    while stack:
        node = stack.pop()
        if node.name not in kept:
            kept.add(node.name)
            stack.extend(producers[i] for i in node.input if i in producers)
    return kept
