"""Pass 1a: read an `ai.stdbp` ONNX model into the IR (`Graph`).

Accepted graph (contracts.md): `pixels` uint8 [N, F] or [N, C, H, W] -> SpikeEncode ->
(RelPspConv2d | SpikeMinPool)* -> (Flatten) -> RelPspDense -> ... -> RelPspDense -> `spike_times`.
onnx + numpy only (never torch).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from compiler.ir import ConvLayer, DenseLayer, Graph, PoolLayer
from stdbp.errors import UserError
from yoso_backend.geometry import Window

DOMAIN = "ai.stdbp"
FIX_EXPORT = "re-export it with `stdbp export`"


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_onnx(path: str | os.PathLike) -> tuple[onnx.ModelProto, bytes]:
    p = Path(path)
    if not p.is_file():
        raise UserError(p, "no such file" if not p.exists() else "not a file", "pass the model.onnx file")
    data = p.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf DecodeError and friends
        raise UserError(p, "not a readable ONNX model (truncated or corrupt protobuf)", FIX_EXPORT) from None
    return model, data


def import_model(model: onnx.ModelProto, where: str = "model", data: bytes | None = None) -> Graph:
    """Validate (shared validator when present) and convert to a Graph; UserError on anything else."""
    graph = model.graph
    try:
        from stdbp.ops.validate import validate_model  # shared validator (onnx + numpy)
    except ImportError:  # pragma: no cover - the op set package is part of stdbp
        validate_model = None
    if validate_model is not None:
        validate_model(model, where)
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise UserError(where, "needs exactly one input and one output", FIX_EXPORT)
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    input_shape = tuple(int(d) for d in dims[1:])
    n_inputs = int(np.prod(input_shape)) if input_shape else 0
    current, layers, alpha, silent_zero = inputs[0].name, [], None, None
    shape = input_shape  # of the current tensor, without the batch dimension
    for i, node in enumerate(graph.node):
        label = f"node {i} {node.name or ''} ({node.op_type})"
        if not node.input or node.input[0] != current:
            raise UserError(where, f"{label}: the graph is not a single chain from {inputs[0].name!r}",
                            "the YOSO compiler takes SpikeEncode -> conv/pool/dense chains")
        attrs = _attrs(node)
        if node.domain == DOMAIN and node.op_type == "SpikeEncode":
            if i != 0:
                raise UserError(where, f"{label}: SpikeEncode must be the first node", FIX_EXPORT)
            alpha = float(attrs.get("alpha", 1.0))
            silent_zero = bool(int(attrs.get("silent_zero", 0)))
        elif node.domain in ("", "ai.onnx") and node.op_type == "Flatten":
            if layers and layers[-1].kind == "dense":
                raise UserError(where, f"{label}: Flatten between dense layers", "flatten only the input or a map")
            shape = (int(np.prod(shape)),)
        elif node.domain == DOMAIN and node.op_type in ("RelPspConv2d", "SpikeMinPool"):
            if alpha is None:
                raise UserError(where, f"{label}: no SpikeEncode before the first layer", FIX_EXPORT)
            layers.append(_window_layer(node, attrs, inits, shape, label, where, len(layers)))
            shape = layers[-1].window.out_shape
        elif node.domain == DOMAIN and node.op_type == "RelPspDense":
            if alpha is None:
                raise UserError(where, f"{label}: no SpikeEncode before the first layer", FIX_EXPORT)
            if len(shape) != 1:
                raise UserError(where, f"{label}: a dense layer after a {list(shape)} map needs a Flatten", FIX_EXPORT)
            if len(node.input) != 2 or node.input[1] not in inits:
                raise UserError(where, f"{label}: weight must be an initializer (second input)", FIX_EXPORT)
            w = inits[node.input[1]].astype(np.float64)
            if w.ndim != 2:
                raise UserError(where, f"{label}: weight must be 2-D [out, in], got {list(w.shape)}", FIX_EXPORT)
            if not np.isfinite(w).all():
                raise UserError(where, f"{label}: weight has NaN or infinite values", "retrain or fix the weights")
            n_in = layers[-1].n_out if layers else n_inputs
            if w.shape[1] != n_in:
                raise UserError(where, f"{label}: weight has {w.shape[1]} inputs, the layer receives {n_in}", FIX_EXPORT)
            theta, t_max = _neuron_attrs(attrs, label, where)
            layers.append(DenseLayer(name=node.name or f"dense{len(layers)}", weight=w, threshold=theta, t_max=t_max))
            shape = (w.shape[0],)
        else:
            dom = f"{node.domain}." if node.domain else ""
            raise UserError(where, f"{label}: op {dom}{node.op_type} is not supported by the YOSO compiler",
                            "use SpikeEncode, RelPspConv2d, SpikeMinPool, Flatten and RelPspDense only")
        current = node.output[0]
    if not layers:
        raise UserError(where, "no RelPspDense layer", "compile a network with at least one dense layer")
    if layers[-1].kind != "dense":
        raise UserError(where, f"the last layer ({layers[-1].name}) is {layers[-1].kind}, not RelPspDense",
                        "end the network with a dense read-out layer")
    if current != graph.output[0].name:
        raise UserError(where, "the last node does not produce the graph output", FIX_EXPORT)
    meta = {p.key: p.value for p in model.metadata_props}
    return Graph(n_inputs=n_inputs, input_shape=input_shape, n_classes=layers[-1].n_out, alpha=alpha,
                 silent_zero=bool(silent_zero), layers=layers, metadata=meta, source=str(where),
                 source_sha256=hashlib.sha256(data).hexdigest() if data is not None else "")


def _neuron_attrs(attrs: dict, label: str, where: str) -> tuple[float, float]:
    theta = float(attrs.get("threshold", math.nan))
    t_max = float(attrs.get("t_max", math.inf))
    if not (math.isfinite(theta) and theta > 0):
        raise UserError(where, f"{label}: threshold {theta} must be finite and > 0", FIX_EXPORT)
    if math.isnan(t_max) or t_max <= 0:
        raise UserError(where, f"{label}: t_max {t_max} must be > 0 (inf allowed)", FIX_EXPORT)
    return theta, t_max


def _window_layer(node, attrs: dict, inits: dict, shape: tuple, label: str, where: str, index: int):
    """A RelPspConv2d or SpikeMinPool node -> ConvLayer / PoolLayer on a [C, H, W] map."""
    conv = node.op_type == "RelPspConv2d"
    if len(shape) != 3:
        raise UserError(where, f"{label}: needs a [C, H, W] map, the layer receives {list(shape)}",
                        "export the model with an image-shaped input ([N, C, H, W])")
    kernel = tuple(int(v) for v in attrs.get("kernel_shape", []))
    strides = tuple(int(v) for v in attrs.get("strides", [1, 1]))
    pads = tuple(int(v) for v in attrs.get("pads", [0, 0, 0, 0]))
    if len(kernel) != 2 or len(strides) != 2 or len(pads) != 4:
        raise UserError(where, f"{label}: kernel_shape, strides and pads must have 2, 2 and 4 entries", FIX_EXPORT)
    if min(strides) < 1 or min(kernel) < 1 or min(pads) < 0:
        raise UserError(where, f"{label}: kernel {list(kernel)}, strides {list(strides)}, pads {list(pads)} "
                        "are not supported (need kernel >= 1, stride >= 1, pads >= 0)", FIX_EXPORT)
    if pads[0] >= kernel[0] or pads[2] >= kernel[0] or pads[1] >= kernel[1] or pads[3] >= kernel[1]:
        raise UserError(where, f"{label}: pads {list(pads)} are not smaller than the kernel {list(kernel)} "
                        "(border neurons would have no input)", "use pads < kernel size")
    if conv:
        if len(node.input) != 2 or node.input[1] not in inits:
            raise UserError(where, f"{label}: weight must be an initializer (second input)", FIX_EXPORT)
        w = inits[node.input[1]].astype(np.float64)
        if w.ndim != 4 or tuple(w.shape[2:]) != kernel or w.shape[1] != shape[0]:
            raise UserError(where, f"{label}: weight {list(w.shape)} does not match kernel {list(kernel)} on "
                            f"{shape[0]} input channels", FIX_EXPORT)
        if not np.isfinite(w).all():
            raise UserError(where, f"{label}: weight has NaN or infinite values", "retrain or fix the weights")
        out_c = int(w.shape[0])
    else:
        out_c = int(shape[0])
    g = Window("conv" if conv else "pool", tuple(int(v) for v in shape), out_c, kernel, strides, pads)
    if min(g.out_shape[1:]) < 1:
        raise UserError(where, f"{label}: kernel {list(kernel)} is larger than the {list(shape[1:])} map", FIX_EXPORT)
    if not conv:
        return PoolLayer(name=node.name or f"pool{index}", window=g)
    theta, t_max = _neuron_attrs(attrs, label, where)
    return ConvLayer(name=node.name or f"conv{index}", weight=w, threshold=theta, t_max=t_max, window=g)


def import_onnx(path: str | os.PathLike) -> Graph:
    model, data = load_onnx(path)
    return import_model(model, str(path), data)
