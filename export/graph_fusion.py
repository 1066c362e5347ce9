"""Export-time rewrites of the tf2onnx graph into fewer ops, so onnxruntime runs a step with less overhead.

At batch 1 a denoising step costs mostly per-node overhead, and tf2onnx spells these things in
many small ops that onnxruntime's own optimizer leaves alone:

- Keras' layer norm as ReduceMean/Sub/Mul/Sqrt/Reciprocal/Neg/Add (LayerNormFusion does not
  match it): one ONNX ``LayerNormalization`` (opset 17) instead, between two Transposes where
  tf2onnx left the channels on axis 1;
- GELU's ``erf(x * (1/sqrt 2))``: ``erf(x / sqrt 2)``, the form onnxruntime's GeluFusion turns
  into one Gelu on its CPU and CUDA providers (the file stays standard ONNX);
- a Dense layer on 4-D input as Shape/Cast/Gather/Concat/Cast/Reshape around a 2-D MatMul: one
  MatMul, which broadcasts over the leading axes and is the same GEMM;
- Reshapes and Slices that give back what they were given, and reshape targets computed from
  shapes where a constant says the same (the batch size copied with a 0).

Every rewrite is exact algebra; what the arithmetic order changes is proved by the export's
parity check against Keras. A candidate that differs from a pattern in any way is left as it is.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)
SQRT_TWO = np.sqrt(2.0)
PAST_ANY_SIZE = 10**9  # tf2onnx's end of an open slice; no axis of a tensor in memory is that long
Dims = list[int | str]  # one inferred shape: sizes, or symbols for unknown (batch) sizes


class _NoMatch(Exception):
    """A candidate is not the pattern; the graph is left as it is."""


def _need(condition: bool) -> None:
    if not condition:
        raise _NoMatch


class _View:
    """One pass over a graph: who makes and who reads each tensor, its constants and inferred shapes.

    Rewrites never edit the node list while matching: they mark nodes dead or give a node the
    nodes that take its place, and :meth:`commit` rebuilds the list once, in order.
    """

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.proto = proto
        self.graph = proto.graph
        self.consts = {t.name: t for t in self.graph.initializer}
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self.readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.graph.node:
            for name in dict.fromkeys(node.input):  # Mul(d, d) reads d once
                self.readers[name].append(node)
        self.outputs = {o.name for o in self.graph.output}
        self.shapes = _inferred_shapes(proto)
        self.opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        self.taken = {*self.producer, *self.consts, *self.readers, *(n.name for n in self.graph.node)}
        self.dead: set[str] = set()  # node names
        self.replaced: dict[str, list[onnx.NodeProto]] = {}
        self.new_consts: list[onnx.TensorProto] = []

    def sole_reader(self, tensor: str, op_type: str) -> onnx.NodeProto:
        """The one node reading ``tensor`` (not a graph output), which must be an ``op_type``."""
        readers = self.readers[tensor]
        _need(len(readers) == 1 and tensor not in self.outputs and readers[0].op_type == op_type)
        return readers[0]

    def const(self, tensor: str) -> np.ndarray:
        _need(tensor in self.consts)
        return numpy_helper.to_array(self.consts[tensor])

    def scalar(self, tensor: str) -> float:
        value = self.const(tensor)
        _need(value.size == 1)
        return float(value.ravel()[0])

    def is_scalar(self, tensor: str, value: float) -> bool:
        """Whether ``tensor`` is a one-element constant equal to ``value``."""
        return tensor in self.consts and self.const(tensor).size == 1 and self.scalar(tensor) == value

    def rank(self, tensor: str) -> int:
        _need(tensor in self.shapes)
        return len(self.shapes[tensor])

    def add_const(self, name: str, value: np.ndarray) -> str:
        self.new_consts.append(numpy_helper.from_array(value, self.fresh(name)))
        self.consts[self.new_consts[-1].name] = self.new_consts[-1]
        return self.new_consts[-1].name

    def fresh(self, name: str) -> str:
        """A tensor or node name not used in the graph yet."""
        candidate, n = name, 0
        while candidate in self.taken:
            n += 1
            candidate = f"{name}_{n}"
        self.taken.add(candidate)
        return candidate

    def commit(self) -> onnx.ModelProto:
        """The graph with dead nodes dropped and replacements put where the node they replace was."""
        nodes = []
        for node in self.graph.node:
            if node.name in self.replaced:
                nodes.extend(self.replaced[node.name])
            elif node.name not in self.dead:
                nodes.append(node)
        out = onnx.ModelProto()
        out.CopyFrom(self.proto)
        del out.graph.node[:]
        out.graph.node.extend(nodes)
        out.graph.initializer.extend(self.new_consts)
        return out


def _inferred_shapes(proto: onnx.ModelProto) -> dict[str, Dims]:
    """Each tensor's shape as ONNX infers it, symbols standing for sizes known only at run time."""
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    shapes = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor_type.shape.dim]
            if all(d != "" for d in dims):
                shapes[info.name] = dims
    return shapes


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _other_input(node: onnx.NodeProto, known: str) -> str:
    """The second operand of a binary op, given the first (either order)."""
    _need(len(node.input) == 2 and known in node.input)
    return node.input[1] if node.input[0] == known else node.input[0]


def _reduce_axis(v: _View, node: onnx.NodeProto) -> int:
    """The one non-negative axis a keepdims ReduceMean reduces over."""
    axes = _attr(node, "axes") if len(node.input) == 1 else list(v.const(node.input[1]))
    _need(axes is not None and len(axes) == 1 and _attr(node, "keepdims", 1) == 1)
    return int(axes[0]) % v.rank(node.input[0])


def _per_channel(value: np.ndarray, axis: int, rank: int, channels: int) -> np.ndarray | None:
    """``value`` as a ``(channels,)`` vector if it broadcasts along ``axis`` of a rank-``rank`` tensor only."""
    if value.ndim > rank:
        return None
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    if any(size != 1 for i, size in enumerate(full.shape) if i != axis) or full.shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(full.reshape(-1), (channels,)).copy()


def _each(v: _View, op_type: str, rewrite: Callable[[_View, onnx.NodeProto], None]) -> int:
    """Try ``rewrite`` at every ``op_type`` node still alive; returns how many matched."""
    done = 0
    for node in list(v.graph.node):
        if node.op_type != op_type or node.name in v.dead or node.name in v.replaced:
            continue
        try:
            rewrite(v, node)
            done += 1
        except _NoMatch:
            pass
    return done


def _layer_norm(v: _View, mean: onnx.NodeProto) -> None:
    """Keras' ``x * inv + (beta - mean * inv)``, ``inv = gamma / sqrt(var + eps)`` -> LayerNormalization."""
    _need(v.opset >= 17)  # LayerNormalization's first opset
    x, axis = mean.input[0], _reduce_axis(v, mean)
    readers = v.readers[mean.output[0]]
    _need(len(readers) == 2 and mean.output[0] not in v.outputs)
    neg = next((n for n in readers if n.op_type == "Neg"), None)
    centre = next((n for n in readers if n.op_type in ("Sub", "Reshape")), None)
    _need(neg is not None and centre is not None)
    path, subtrahend = [mean, neg], mean.output[0]
    if centre.op_type == "Reshape":  # tf2onnx's layout change of the mean that changes nothing
        _need(_keeps_shape(v, centre))
        path.append(centre)
        subtrahend = centre.output[0]
        centre = v.sole_reader(subtrahend, "Sub")
    _need(list(centre.input) == [x, subtrahend])
    square = v.sole_reader(centre.output[0], "Mul")
    _need(square.input[0] == square.input[1])
    var = v.sole_reader(square.output[0], "ReduceMean")
    _need(_reduce_axis(v, var) == axis)
    add_eps = v.sole_reader(var.output[0], "Add")
    eps = v.scalar(_other_input(add_eps, var.output[0]))
    sqrt = v.sole_reader(add_eps.output[0], "Sqrt")
    recip = v.sole_reader(sqrt.output[0], "Reciprocal")
    scale_mul = v.sole_reader(recip.output[0], "Mul")
    gamma = v.const(_other_input(scale_mul, recip.output[0]))
    inv = scale_mul.output[0]
    _need(len(v.readers[inv]) == 2 and inv not in v.outputs)
    neg_mul = v.sole_reader(neg.output[0], "Mul")
    x_mul = next(n for n in v.readers[inv] if n is not neg_mul)
    _need(x_mul.op_type == "Mul" and _other_input(x_mul, inv) == x and _other_input(neg_mul, inv) == neg.output[0])
    out = v.sole_reader(x_mul.output[0], "Add")
    path += [centre, square, var, add_eps, sqrt, recip, scale_mul, x_mul, neg_mul]
    if neg_mul.output[0] in out.input:  # beta = 0 (as initialized), which tf2onnx folds away
        beta = np.zeros_like(gamma)
    else:
        shift = v.sole_reader(neg_mul.output[0], "Add")
        beta = v.const(_other_input(shift, neg_mul.output[0]))
        path.append(shift)
    _need(sorted(out.input) == sorted([x_mul.output[0], path[-1].output[0]]))
    _replace_layer_norm(v, path, out, x, axis, eps, gamma, beta)


def _replace_layer_norm(v: _View, path: list[onnx.NodeProto], out: onnx.NodeProto, x: str, axis: int,
                        eps: float, gamma: np.ndarray, beta: np.ndarray) -> None:  # fmt: skip
    """Put ``[Transpose], LayerNormalization, [Transpose], [Add]`` where the layer norm's last Add was."""
    rank = v.rank(x)
    channels = v.shapes[x][axis]
    _need(isinstance(channels, int))
    scale = _per_channel(gamma, axis, rank, channels)
    bias = _per_channel(beta, axis, rank, channels)
    _need(scale is not None and gamma.dtype == beta.dtype)
    name = out.name
    nodes = []
    if axis != rank - 1:  # LayerNormalization normalizes the last axes: move the channels there and back
        perm = [i for i in range(rank) if i != axis] + [axis]
        nodes.append(helper.make_node("Transpose", [x], [v.fresh(f"{name}/to_last")], v.fresh(f"{name}/to_last"),
                                      perm=perm))  # fmt: skip
        x = nodes[-1].output[0]
    after = v.fresh(f"{name}/normalized") if axis != rank - 1 or bias is None else out.output[0]
    inputs = [x, v.add_const(f"{name}/scale", scale),
              v.add_const(f"{name}/bias", bias if bias is not None else np.zeros_like(scale))]  # fmt: skip
    nodes.append(helper.make_node("LayerNormalization", inputs, [after], v.fresh(f"{name}/layer_norm"),
                                  axis=-1, epsilon=eps))  # fmt: skip
    if axis != rank - 1:
        back = [int(i) for i in np.argsort(perm)]
        done = out.output[0] if bias is not None else v.fresh(f"{name}/restored")
        nodes.append(helper.make_node("Transpose", [after], [done], v.fresh(f"{name}/to_axis"), perm=back))
        after = done
    if bias is None:  # beta folded with a constant that varies along other axes (the attention's positions)
        nodes.append(helper.make_node("Add", [after, v.add_const(f"{name}/shift", beta)], [out.output[0]],
                                      v.fresh(f"{name}/shift")))  # fmt: skip
    v.dead.update(n.name for n in path)
    v.replaced[out.name] = nodes


def _gelu_divides(v: _View, erf: onnx.NodeProto) -> None:
    """``erf(x * 0.7071...)`` -> ``erf(x / 1.4142...)``, and the constants 1 and 1/2 as scalars.

    onnxruntime's GeluFusion looks for a Div by sqrt 2 and scalar constants; fused, it runs
    ``0.5 x (1 + erf(x / sqrt 2))`` as one Gelu.
    """
    mul = v.producer.get(erf.input[0])
    _need(mul is not None and mul.op_type == "Mul" and v.sole_reader(mul.output[0], "Erf") is erf)
    x = next((i for i in mul.input if i not in v.consts), None)
    _need(x is not None and abs(v.scalar(_other_input(mul, x)) * SQRT_TWO - 1.0) < 1e-6)
    add = v.sole_reader(erf.output[0], "Add")
    one = _other_input(add, erf.output[0])
    _need(v.is_scalar(one, 1.0) and v.rank(erf.output[0]) >= v.const(one).ndim)
    halves = [(n, _other_input(n, x)) for n in v.readers[x] if n.op_type == "Mul" and n is not mul]
    halves = [(n, h) for n, h in halves if v.is_scalar(h, 0.5) and v.rank(x) >= v.const(h).ndim]
    dtype = v.const(one).dtype
    div = helper.make_node("Div", [x, v.add_const(f"{mul.name}/sqrt2", np.array(SQRT_TWO, dtype))], [mul.output[0]],
                           v.fresh(f"{mul.name}/div"))  # fmt: skip
    v.replaced[mul.name] = [div]
    _swap_input(add, one, v.add_const(f"{add.name}/one", np.array(1.0, dtype)))
    for half_mul, half in halves:  # the 0.5 * x beside it
        _swap_input(half_mul, half, v.add_const(f"{half_mul.name}/half", np.array(0.5, dtype)))


def _swap_input(node: onnx.NodeProto, old: str, new: str) -> None:
    for i, name in enumerate(node.input):
        if name == old:
            node.input[i] = new


def _dense_matmul(v: _View, matmul: onnx.NodeProto) -> None:
    """``Reshape(x, [-1, C]) @ W`` read only by Reshapes -> ``x @ W``, which keeps x's leading axes."""
    flat = v.producer.get(matmul.input[0])
    _need(flat is not None and flat.op_type == "Reshape" and v.sole_reader(flat.output[0], "MatMul") is matmul)
    x, weight = flat.input[0], v.const(matmul.input[1])
    # Any reshape of (..., C) to 2-D that the MatMul accepts is (M, C): the leading axes flattened.
    _need(weight.ndim == 2 and v.rank(x) >= 2 and v.shapes[x][-1] == weight.shape[0] and v.rank(flat.output[0]) == 2)
    for reader in v.readers[matmul.output[0]]:  # what they reshape to must not copy sizes from the 2-D input
        _need(reader.op_type == "Reshape" and reader.input[0] == matmul.output[0])
        _need(reader.input[1] not in v.consts or 0 not in v.const(reader.input[1]))
    _need(matmul.output[0] not in v.outputs)
    matmul.input[0] = x


def _identity_reshape(v: _View, reshape: onnx.NodeProto) -> None:
    """A Reshape to the very shape it was given (symbols included) is dropped; its readers read its input."""
    source, result = reshape.input[0], reshape.output[0]
    _need(result not in v.outputs and _keeps_shape(v, reshape))
    for reader in v.readers[result]:
        _swap_input(reader, result, source)
    v.dead.add(reshape.name)


def _identity_slice(v: _View, node: onnx.NodeProto) -> None:
    """A Slice from 0 to past the end with step 1 on every axis it names (tf2onnx's ``[:, None, None, :]``)."""
    _need(node.output[0] not in v.outputs and len(node.input) >= 3 and node.input[0] in v.shapes)
    starts, ends = v.const(node.input[1]), v.const(node.input[2])
    axes = v.const(node.input[3]) if len(node.input) > 3 and node.input[3] else np.arange(len(starts))
    steps = v.const(node.input[4]) if len(node.input) > 4 and node.input[4] else np.ones_like(starts)
    shape = v.shapes[node.input[0]]
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        size = shape[int(axis)]
        _need(start == 0 and step == 1 and (end >= size if isinstance(size, int) else end >= PAST_ANY_SIZE))
    for reader in v.readers[node.output[0]]:
        _swap_input(reader, node.output[0], node.input[0])
    v.dead.add(node.name)


def _constant_reshape(v: _View, reshape: onnx.NodeProto) -> None:
    """A Reshape whose computed target differs from a constant only in the batch size -> that constant.

    With every other size known on both sides, equal products force the batch size to carry over,
    which a 0 in the target says; the Shape/Gather/Concat/Cast chain that computed it goes.
    """
    source, target = v.shapes.get(reshape.input[0]), v.shapes.get(reshape.output[0])
    _need(reshape.input[1] not in v.consts and source is not None and target is not None)
    _need(not _attr(reshape, "allowzero", 0) and all(isinstance(d, int) and d > 0 for d in source[1:] + target[1:]))
    _need(np.prod(source[1:]) == np.prod(target[1:]))
    reshape.input[1] = v.add_const(f"{reshape.name}/shape", np.array([0, *target[1:]], np.int64))


def _keeps_shape(v: _View, reshape: onnx.NodeProto) -> bool:
    """Whether a Reshape gives back its input's shape: inferred so, or a constant target that keeps every size."""
    shape = v.shapes.get(reshape.input[0])
    if shape is None or shape == v.shapes.get(reshape.output[0]):
        return shape is not None
    if reshape.input[1] not in v.consts or _attr(reshape, "allowzero", 0):
        return False
    target = [int(t) for t in v.const(reshape.input[1])]
    if len(target) != len(shape):
        return False
    open_sizes = [t for t, size in zip(target, shape, strict=True) if t not in (0, size)]
    return open_sizes in ([], [-1])  # one -1 among kept sizes can only be the size it had


def _pruned(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes whose outputs nobody reads, then constants nobody reads."""
    graph = proto.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    used = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)
    return proto


def _named(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a unique name: the rewrites address nodes by name."""
    seen: set[str] = set()
    for i, node in enumerate(proto.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}__lean{i}"
        seen.add(node.name)
    return proto


REWRITES = (  # (what, at which op, how); later rewrites see the graph the earlier ones left
    ("layer norms", "ReduceMean", _layer_norm),
    ("GELUs", "Erf", _gelu_divides),
    ("Dense reshapes", "MatMul", _dense_matmul),
    ("identity reshapes", "Reshape", _identity_reshape),
    ("identity slices", "Slice", _identity_slice),
    ("computed reshapes", "Reshape", _constant_reshape),
)


def lean(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The same function in fewer, fusable ops (float32 graph from tf2onnx in, a new proto out)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    before = len(out.graph.node)
    counts = {}
    for label, op_type, rewrite in REWRITES:
        view = _View(_named(out))
        counts[label] = _each(view, op_type, rewrite)
        out = _pruned(view.commit())
    log.info("lean graph: %d -> %d nodes (%s)", before, len(out.graph.node),
             ", ".join(f"{n} {label}" for label, n in counts.items()))  # fmt: skip
    return out


def op_counts(proto: onnx.ModelProto) -> Counter[str]:
    """How many nodes of each op type, for tests and benchmarks."""
    return Counter(node.op_type for node in proto.graph.node)


def ort_optimized(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph onnxruntime's CPU provider runs after its own optimizations, with the bridge's options."""
    import onnxruntime as ort

    from bridge.runtime import session_options

    with tempfile.TemporaryDirectory() as tmp:
        options = session_options()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)
