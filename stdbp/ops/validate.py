"""Validate an ai.stdbp ONNX model: every defect becomes one `UserError` line.

Used by the onnxruntime backend (`stdbp-run`), `stdbp inspect` and (optionally) the compiler.
numpy + onnx only. Checks, in order: the file (exists, parses), the IR/opset versions ONNX Runtime
1.32 accepts, node domains and ops, attributes (presence, type, value), initializers (finite,
stored inline), the input/output signature, then `onnx.checker.check_model(full_check=True)` with
the op schemas registered (types and shapes of every node, our shape rules included).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from stdbp.errors import UserError
from stdbp.ops import DOMAIN, OPS, ShapeError, VERSION, attribute_values, register_schemas

MAX_IR = 14      # what onnxruntime 1.32 accepts
MAX_OPSET = 28
STANDARD_DOMAINS = ("", "ai.onnx")
FIX_EXPORT = "re-export it with `stdbp export`"


@dataclass(frozen=True)
class ModelInfo:
    input_name: str
    pixel_shape: tuple[int, ...]   # one sample, e.g. (784,) or (1, 28, 28)
    output_name: str
    n_classes: int


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and validate an .onnx file (see module doc); UserError on any defect."""
    p = Path(path)
    if not p.exists():
        raise UserError(p, "no such file", "check the path")
    if p.is_dir():
        raise UserError(p, "is a directory, not an .onnx file", "pass the model.onnx file")
    data = p.read_bytes()
    if not data:
        raise UserError(p, "empty file", FIX_EXPORT)
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf DecodeError and friends
        raise UserError(p, "not a readable ONNX model (truncated or corrupt protobuf)", FIX_EXPORT) from None
    validate_model(model, str(p))
    return model


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    head = lines[0] if lines else type(exc).__name__
    ctx = next((ln for ln in lines if ln.startswith("==> Context")), "")
    return f"{head} [{ctx.removeprefix('==> Context: ')}]" if ctx else head


def _node_label(i: int, node) -> str:
    return f"node {i} {node.name or '(unnamed)'} ({node.domain + '.' if node.domain else ''}{node.op_type})"


def validate_model(model: onnx.ModelProto, where: str = "model") -> ModelInfo:
    """Validate an in-memory model; returns its input/output signature."""
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise UserError(where, "not an ONNX model (no IR version or empty graph)", FIX_EXPORT)
    if model.ir_version > MAX_IR:
        raise UserError(where, f"IR version {model.ir_version} is newer than ONNX Runtime 1.32 accepts "
                        f"(<= {MAX_IR})", FIX_EXPORT)
    opsets = {o.domain: o.version for o in model.opset_import}
    default = opsets.get("", opsets.get("ai.onnx"))
    if default is None or default > MAX_OPSET:
        raise UserError(where, f"default-domain opset {default} missing or newer than {MAX_OPSET}", FIX_EXPORT)
    graph = model.graph
    for i, node in enumerate(graph.node):
        label = _node_label(i, node)
        if node.domain in STANDARD_DOMAINS:
            continue
        if node.domain != DOMAIN:
            raise UserError(where, f"{label}: unknown op domain {node.domain!r}",
                            f"only standard ONNX ops and the {DOMAIN} op set are supported")
        if opsets.get(DOMAIN) != VERSION:
            raise UserError(where, f"opset import for {DOMAIN} is {opsets.get(DOMAIN)}, expected {VERSION}",
                            FIX_EXPORT)
        spec = OPS.get(node.op_type)
        if spec is None:
            raise UserError(where, f"{label}: unknown op {node.op_type!r} in {DOMAIN}",
                            f"known ops: {', '.join(OPS)}")
        if len(node.input) != len(spec.inputs) or len(node.output) != 1:
            raise UserError(where, f"{label}: needs {len(spec.inputs)} input(s) and 1 output, "
                            f"got {len(node.input)} and {len(node.output)}", FIX_EXPORT)
        try:
            attribute_values(spec, node.attribute)
        except ShapeError as exc:
            raise UserError(where, f"{label}: {exc}", FIX_EXPORT) from None
        if len(spec.inputs) == 2 and node.input[1] not in {i.name for i in graph.initializer}:
            raise UserError(where, f"{label}: weight {node.input[1]!r} must be a constant initializer",
                            FIX_EXPORT)
    for init in graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise UserError(where, f"initializer {init.name!r} uses external data", "store weights inside the model")
        try:
            arr = numpy_helper.to_array(init)
        except Exception as exc:
            raise UserError(where, f"initializer {init.name!r} is unreadable ({_first_line(exc)})", FIX_EXPORT) from None
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise UserError(where, f"initializer {init.name!r} has {bad} NaN or infinite value(s)",
                            "retrain or fix the weights; ReL-PSP weights must be finite")
    info = _signature(graph, where)
    register_schemas()
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ShapeError) as exc:
        raise UserError(where, f"invalid model: {_first_line(exc)}", FIX_EXPORT) from None
    return info


def _dims(vi) -> list:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _signature(graph, where: str) -> ModelInfo:
    inits = {i.name for i in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise UserError(where, f"needs exactly one input and one output, got {len(inputs)} and "
                        f"{len(graph.output)}", FIX_EXPORT)
    x, y = inputs[0], graph.output[0]
    if x.type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        raise UserError(where, f"input {x.name!r} must be uint8 pixels, got "
                        f"{onnx.TensorProto.DataType.Name(x.type.tensor_type.elem_type)}", FIX_EXPORT)
    xs = _dims(x)
    if xs is None or len(xs) not in (2, 4) or any(d is None or d <= 0 for d in xs[1:]):
        raise UserError(where, f"input {x.name!r} must be [N, features] or [N, C, H, W] with known "
                        f"sizes, got {xs}", FIX_EXPORT)
    if y.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UserError(where, f"output {y.name!r} must be float spike times", FIX_EXPORT)
    ys = _dims(y)
    if ys is None or len(ys) != 2 or ys[1] is None or ys[1] < 2:
        raise UserError(where, f"output {y.name!r} must be [N, classes] with classes >= 2, got {ys}", FIX_EXPORT)
    return ModelInfo(x.name, tuple(xs[1:]), y.name, int(ys[1]))
