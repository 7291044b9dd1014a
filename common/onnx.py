"""NiN as an ONNX graph, built from the spec and canonical weights, and read back.

Sources: the ONNX operator specification (https://onnx.ai/onnx/operators/) for Conv, Relu,
MaxPool, AveragePool, GlobalAveragePool, Flatten and Gemm; the NiN spec (``nin.spec``) for
the layers and their pooling rules.

Framework-free: only the ``onnx`` package is imported, and only when a function here is
called (``import nin`` does not import it).  The graph is channels-first like the canonical
weights, so the initializers *are* the canonical tensors under their canonical names:

* ``block{b}.conv{c}``: ``Conv`` (weights ``block{b}.conv{c}.weight``/``.bias``) then
  ``Relu``, whose output carries the layer name;
* ``pool{p}``: ``MaxPool`` / ``AveragePool`` with symmetric ``pads``, ``ceil_mode`` and, for
  average pooling, ``count_include_pad=1`` (the spec's divisor: the window clipped at input +
  padding).  A ceil-mode pool whose windows are the floor-mode ones at its input size (no
  window hangs past input + padding) is written in floor mode: there ONNX's ceil formula
  (opset 21, and onnx's shape inference) keeps a last window that starts in the right padding,
  which the spec and onnxruntime's kernels (1.32) drop, and onnxruntime, planning buffers from
  the inferred shape, failed on graphs with such a pool ("Shape mismatch attempting to re-use
  buffer").  Where a pool needs ceil mode in one dimension and ONNX's formula keeps one window
  too many in another, a ``Slice`` keeps the spec's windows;
* ``dropout{d}``: ``Identity`` (inference);
* ``gap``: ``GlobalAveragePool`` then ``Flatten``; ``head``: ``Flatten`` then ``Gemm`` with
  ``transB=1`` over the (out, in) canonical ``head.weight``.

The input ``x`` is ``(N, C, *input_size)`` with a symbolic batch dimension ``N``; the output
``logits`` is ``(N, num_classes)``.  With ``intermediates=True`` every layer of
``nin.layer_table`` is a graph output too, under its canonical name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .deprecated import renamed
from .errors import WeightsError
from .shapes import layer_table, window_out
from .spec import AvgPool, Dropout, GlobalAvgPool, Linear, MaxPool, NiNBlock, NiNSpec
from .weights import Weights, validate_weights, weight_shapes

if TYPE_CHECKING:
    import onnx

# ONNX opset 21: the newest that every runtime pinned here executes (onnxruntime ≥ 1.18);
# Conv, MaxPool and AveragePool have had pads, ceil_mode and count_include_pad since opset 19.
OPSET = 21
INPUT = "x"
OUTPUT = "logits"

# ops that only move or rename a tensor: an imported graph may hold them anywhere
_PASS_THROUGH = ("Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Slice")


def _onnx():
    try:
        import onnx
    except ImportError as e:
        from .errors import BackendUnavailable

        raise BackendUnavailable(
            f"nin.onnx needs the onnx package ({e}); install it with: pip install 'nin-suite[onnx]'"
        ) from None
    return onnx


def _pads(padding: tuple[int, ...]) -> list[int]:
    """ONNX ``pads``: every dimension's start padding, then every end padding."""
    return [*padding, *padding]


def _modes_agree(size: tuple[int, ...], pool: MaxPool | AvgPool) -> bool:
    """Whether ceil and floor mode give ``pool`` the same windows (and divisors) at input
    ``size``: no ceil-mode window would hang past input + padding."""
    dims = zip(size, pool.kernel, pool.stride, pool.padding, strict=True)
    return all(window_out(n, k, s, p, True) == window_out(n, k, s, p) for n, k, s, p in dims)


def _needs_ceil_mode(size: tuple[int, ...], pool: MaxPool | AvgPool) -> bool:
    """Whether ``pool`` is in ceil mode with a window that floor mode lacks at input ``size``."""
    return pool.ceil_mode and not _modes_agree(size, pool)


def _ceil_mode_keep(size: tuple[int, ...], pool: MaxPool | AvgPool) -> tuple[int, ...] | None:
    """Where ONNX's ceil formula gives one window more than the spec: the number of windows
    to keep per dimension; None where the two agree.

    ONNX (opset 21) rounds ``(n + 2p − k) / s`` up without the spec's rule that a last window
    starting in the right padding is dropped (Caffe, PyTorch).  The windows before it are the
    same, with the same divisors, so slicing off the extra one is exact."""
    if not _needs_ceil_mode(size, pool):
        return None
    dims = list(zip(size, pool.kernel, pool.stride, pool.padding, strict=True))
    keep = tuple(window_out(n, k, s, p, True) for n, k, s, p in dims)
    onnx_out = tuple(-(-(n + 2 * p - k) // s) + 1 for n, k, s, p in dims)
    return keep if keep != onnx_out else None


def _slice(source: str, target: str, keep: tuple[int, ...]) -> list:
    """Nodes that keep the first ``keep`` positions of every spatial axis of ``source``, with
    their bounds as ``Constant`` nodes (not initializers, which hold only weights)."""
    from onnx import TensorProto, helper

    axes = list(range(2, 2 + len(keep)))
    bounds = {"starts": [0] * len(keep), "ends": list(keep), "axes": axes}
    nodes = [
        helper.make_node(
            "Constant",
            [],
            [f"{target}.{key}"],
            name=f"{target}/{key}",
            value=helper.make_tensor(f"{target}.{key}", TensorProto.INT64, [len(v)], v),
        )
        for key, v in bounds.items()
    ]
    inputs = [source, *(f"{target}.{key}" for key in bounds)]
    return [*nodes, helper.make_node("Slice", inputs, [target], name=f"{target}/drop_window_in_padding")]


def to_model(spec: NiNSpec, weights: Weights, *, intermediates: bool = False) -> onnx.ModelProto:
    """The ONNX model of ``spec`` holding ``weights`` (validated first), checked by
    ``onnx.checker`` with full shape inference.  ``intermediates=True`` adds every layer of
    ``nin.layer_table`` as a graph output under its canonical name."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    weights = validate_weights(spec, weights)
    sizes = {row.name: row.output_shape[1:] for row in layer_table(spec)}
    nodes: list[onnx.NodeProto] = []
    value, size = INPUT, spec.input_size
    for name, layer in spec.named_layers():
        if isinstance(layer, NiNBlock):
            for c, conv in enumerate(layer.convs):
                layer_name = f"{name}.conv{c}"
                pre = f"{layer_name}.pre_relu"
                nodes.append(
                    helper.make_node(
                        "Conv",
                        [value, f"{layer_name}.weight", f"{layer_name}.bias"],
                        [pre],
                        name=f"{layer_name}/conv",
                        kernel_shape=list(conv.kernel),
                        strides=list(conv.stride),
                        pads=_pads(conv.padding),
                    )
                )
                nodes.append(helper.make_node("Relu", [pre], [layer_name], name=f"{layer_name}/relu"))
                value = layer_name
        elif isinstance(layer, MaxPool | AvgPool):
            op, extra = ("MaxPool", {}) if isinstance(layer, MaxPool) else ("AveragePool", {"count_include_pad": 1})
            keep = _ceil_mode_keep(size, layer)
            pooled = f"{name}.onnx_ceil" if keep else name
            nodes.append(
                helper.make_node(
                    op,
                    [value],
                    [pooled],
                    name=name,
                    kernel_shape=list(layer.kernel),
                    strides=list(layer.stride),
                    pads=_pads(layer.padding),
                    ceil_mode=int(_needs_ceil_mode(size, layer)),
                    **extra,
                )
            )
            if keep:
                nodes += _slice(pooled, name, keep)
            value = name
        elif isinstance(layer, Dropout):
            nodes.append(helper.make_node("Identity", [value], [name], name=name))
            value = name
        elif isinstance(layer, GlobalAvgPool):
            nodes.append(helper.make_node("GlobalAveragePool", [value], ["gap.pooled"], name="gap/pool"))
            nodes.append(helper.make_node("Flatten", ["gap.pooled"], [name], name="gap/flatten", axis=1))
            value = name
        elif isinstance(layer, Linear):
            nodes.append(helper.make_node("Flatten", [value], ["head.flat"], name="head/flatten", axis=1))
            nodes.append(
                helper.make_node("Gemm", ["head.flat", "head.weight", "head.bias"], [name], name="head/gemm", transB=1)
            )
            value = name
        size = sizes.get(value, size)
    nodes.append(helper.make_node("Identity", [value], [OUTPUT], name="logits"))

    def tensor(name: str, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape])

    outputs = [tensor(OUTPUT, (spec.num_classes,))]
    if intermediates:
        outputs += [tensor(row.name, row.output_shape) for row in layer_table(spec)]
    graph = helper.make_graph(
        nodes,
        spec.name,
        [tensor(INPUT, (spec.in_channels, *spec.input_size))],
        outputs,
        initializer=[numpy_helper.from_array(w, name) for name, w in weights.items()],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="nin-suite",
        doc_string=f"{spec.name}: Network in Network (Lin, Chen, Yan 2014) built by nin.onnx",
    )
    model.ir_version = min(model.ir_version, 10)  # IR 10 is what opset 21 ships with
    onnx.checker.check_model(model, full_check=True)
    return model


def save_model(spec: NiNSpec, weights: Weights, path: str | Path, *, intermediates: bool = False) -> Path:
    """Write ``to_model(spec, weights)`` to ``path`` (``.onnx``), atomically."""
    from .files import atomic_write

    model = to_model(spec, weights, intermediates=intermediates)
    data = model.SerializeToString()
    return atomic_write(Path(path), lambda f: f.write(data))


def param_count(model: onnx.ModelProto) -> int:
    """The number of values in the initializers that the graph's nodes read: what the graph
    computes with, so a tensor left unwired (a convolution without its bias input) or one
    nothing reads does not count."""
    read = {name for node in model.graph.node for name in node.input}
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.name in read)


# -- import --------------------------------------------------------------------------------


def _expected_ops(spec: NiNSpec) -> list[tuple[str, str, Any]]:
    """(canonical layer name, ONNX op, spec layer) in graph order, pass-through ops left out."""
    ops: list[tuple[str, str, Any]] = []
    for name, layer in spec.named_layers():
        if isinstance(layer, NiNBlock):
            for c, conv in enumerate(layer.convs):
                ops += [(f"{name}.conv{c}", "Conv", conv), (f"{name}.conv{c}", "Relu", None)]
        elif isinstance(layer, MaxPool):
            ops.append((name, "MaxPool", layer))
        elif isinstance(layer, AvgPool):
            ops.append((name, "AveragePool", layer))
        elif isinstance(layer, GlobalAvgPool):
            ops.append((name, "GlobalAveragePool", layer))
        elif isinstance(layer, Linear):
            ops.append((name, "Gemm", layer))
    return ops


def _layer_inputs(spec: NiNSpec) -> dict[str, tuple[int, ...]]:
    """The spatial size of every layer's input, by layer name (a convolution's, by its own)."""
    inputs, size = {}, spec.input_size
    for row in layer_table(spec):
        inputs[row.name] = size
        if len(row.output_shape) > 1:
            size = row.output_shape[1:]
    return inputs


def _window_problems(node, layer, what: str, size: tuple[int, ...] = ()) -> list[str]:
    """How a Conv / pool node's window attributes differ from the spec's ``layer`` (a pool at
    input ``size``: ceil or floor mode are the same where no window hangs past the padding)."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    ndim = len(layer.kernel)
    got = {
        "kernel": tuple(attrs.get("kernel_shape", ())),
        "stride": tuple(attrs.get("strides", (1,) * ndim)),
        "pads": tuple(attrs.get("pads", (0,) * 2 * ndim)),
    }
    want = {"kernel": layer.kernel, "stride": layer.stride, "pads": tuple(_pads(layer.padding))}
    if what != "Conv":
        got["ceil_mode"], want["ceil_mode"] = bool(attrs.get("ceil_mode", 0)), layer.ceil_mode
        if _modes_agree(size, layer):
            want["ceil_mode"] = got["ceil_mode"]
    if what == "AveragePool":
        got["count_include_pad"], want["count_include_pad"] = bool(attrs.get("count_include_pad", 0)), True
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        got["auto_pad"], want["auto_pad"] = attrs["auto_pad"], "NOTSET"
    if any(d != 1 for d in attrs.get("dilations", ())) or attrs.get("group", 1) != 1:
        got["dilations/group"], want["dilations/group"] = (attrs.get("dilations"), attrs.get("group", 1)), "1"
    return [f"{k} {got[k]} (spec: {want[k]})" for k in want if got[k] != want[k]]


def _constants(graph) -> dict[str, np.ndarray]:
    """Every initializer and ``Constant`` node output of ``graph`` (and the ``Identity``
    aliases of one), as arrays."""
    from onnx import helper, numpy_helper

    found = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(helper.get_attribute_value(node.attribute[0]))
        elif node.op_type == "Identity" and node.input[0] in found:
            # exporters that deduplicate equal tensors (torch.onnx) alias them through Identity
            found[node.output[0]] = found[node.input[0]]
    return found


def extract_weights(source: str | Path | onnx.ModelProto, spec: NiNSpec) -> Weights:
    """The canonical weights held by an ONNX NiN whose graph matches ``spec``: written by
    ``nin.onnx`` or by another tool (``torch.onnx.export``, MXNet's ``mx.onnx``, ...).

    The graph's compute nodes, in order and with pass-through ops (Identity, Dropout,
    Flatten, Reshape, Squeeze, Unsqueeze, and Slice, which ``to_model`` uses to drop a ceil-mode
    window) left out, must be the spec's layers op by op: Conv
    + Relu per convolution with the spec's kernel, stride and padding, MaxPool / AveragePool
    with its window, ceil mode and (average) ``count_include_pad=1``, GlobalAveragePool, Gemm
    for a head.  Each weight is checked against the spec's shape.  The first mismatch raises
    a ``WeightsError`` naming the node and the layer."""
    onnx = _onnx()
    from onnx import helper

    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"no ONNX file at {path}")
        try:
            model = onnx.load(str(path))
        except Exception as e:  # protobuf's DecodeError and friends
            raise WeightsError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})") from None
        where = str(path)
    else:
        model, where = source, "the ONNX model"
    graph = model.graph
    constants = _constants(graph)
    nodes = [n for n in graph.node if n.op_type != "Constant" and n.op_type not in _PASS_THROUGH]
    expected = _expected_ops(spec)
    shapes = weight_shapes(spec)
    inputs = _layer_inputs(spec)
    weights: Weights = {}

    def fail(i: int, message: str) -> WeightsError:
        node = nodes[i] if i < len(nodes) else None
        at = f"node {i} ({node.op_type} {node.name!r})" if node is not None else f"after node {i - 1}: the graph ends"
        return WeightsError(f"{where} does not match {spec.name} at {at}: {message}")

    def tensor(i: int, name: str, layer: str) -> np.ndarray:
        if name not in constants:
            raise fail(i, f"{layer}: input {name!r} is not an initializer or constant, so its weights cannot be read")
        return np.asarray(constants[name], dtype=np.float32)

    for i, (layer_name, op, layer) in enumerate(expected):
        if i >= len(nodes):
            raise fail(i, f"the spec expects {op} for {layer_name}")
        node = nodes[i]
        if node.op_type != op:
            raise fail(i, f"the spec expects {op} for {layer_name}")
        if op in ("Conv", "MaxPool", "AveragePool"):
            problems = _window_problems(node, layer, op, inputs[layer_name])
            if problems:
                raise fail(i, f"{layer_name}: " + ", ".join(problems))
        if op == "Conv":
            if len(node.input) < 3:
                raise fail(i, f"{layer_name}: the convolution has no bias; a NiN convolution has one")
            weights[f"{layer_name}.weight"] = tensor(i, node.input[1], layer_name)
            weights[f"{layer_name}.bias"] = tensor(i, node.input[2], layer_name)
        elif op == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                raise fail(i, "head: Gemm with transA, alpha or beta is not a plain fully connected layer")
            if len(node.input) < 3:
                raise fail(i, "head: the fully connected layer has no bias; the spec's head has one")
            w = tensor(i, node.input[1], "head")
            weights["head.weight"] = w if attrs.get("transB", 0) else w.T
            weights["head.bias"] = tensor(i, node.input[2], "head")
        for suffix in (".weight", ".bias"):
            key = layer_name + suffix
            if key in weights and weights[key].shape != shapes[key]:
                raise fail(i, f"{key} has shape {weights[key].shape}; the spec needs {shapes[key]}")
    if len(nodes) > len(expected):
        raise fail(len(expected), "the spec has no more layers")
    problems = [name for name, w in weights.items() if not np.all(np.isfinite(w))]
    if problems:
        raise WeightsError(f"{where}: non-finite values in {', '.join(problems)}")
    return validate_weights(spec, weights)


# the old name, which said "load" like nin.load_weights (a file) but reads an ONNX graph
__getattr__ = renamed("nin.onnx", {"load_weights": "extract_weights"}, globals())
