"""The shape of one `ai.stdbp` op definition: everything about an op lives in one `OpSpec`.

An `OpSpec` carries the op's documented semantics (rendered into docs/ops.md), its formal
inputs/outputs/attributes (turned into an `onnx.defs.OpSchema`), a pure-Python shape rule (used by
the schema's inference function and by `stdbp.ops.validate`), a builder of the ONNX function body
(standard ops only) and a numpy implementation (used by `onnx.reference.ReferenceEvaluator`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

DOMAIN = "ai.stdbp"
VERSION = 1
# Pinned to what onnxruntime 1.32 accepts (IR <= 14, opset <= 28); see docs/design/contracts.md.
IR_VERSION = 10
ONNX_OPSET = 20
OPSET_IMPORTS = {"": ONNX_OPSET, DOMAIN: VERSION}

REQUIRED = object()

class ShapeError(ValueError):
    """Input shapes or attribute values an op cannot accept (message says which and why)."""


@dataclass(frozen=True)
class Attr:
    name: str
    type: str  # "float" | "int" | "ints"
    doc: str
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Param:
    name: str
    type_str: str  # e.g. "tensor(float)"
    doc: str


@dataclass(frozen=True)
class OpSpec:
    name: str
    summary: str
    semantics: str  # markdown, equations; rendered verbatim into docs/ops.md
    inputs: Sequence[Param]
    outputs: Sequence[Param]
    attributes: Sequence[Attr]
    # (input shapes as lists of Dim or None when unknown, attribute dict) -> output shape
    shape_rule: Callable[[list, dict], list]
    function: Callable[[], Any]  # -> onnx.FunctionProto
    compute: Callable[..., np.ndarray]  # numpy implementation: (*inputs, **attrs) -> output
    check_attrs: Callable[[dict], None] = field(default=lambda attrs: None)

    def attr_values(self, given: dict) -> dict:
        """Given attribute values completed with the defaults (raises ShapeError if one is missing)."""
        out = {}
        for a in self.attributes:
            if a.name in given:
                out[a.name] = given[a.name]
            elif a.required:
                raise ShapeError(f"{self.name}: missing required attribute {a.name!r} ({a.type})")
            else:
                out[a.name] = a.default
        return out


def known(d) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool)


def pair(values, name: str, op: str, n: int = 2) -> tuple[int, ...]:
    vals = tuple(int(v) for v in values)
    if len(vals) != n:
        raise ShapeError(f"{op}: attribute {name!r} needs {n} values, got {len(vals)}")
    return vals


def window_attrs(attrs: dict, op: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(kernel_shape, strides, pads) of a sliding-window op (conv, pool), checked."""
    k = pair(attrs["kernel_shape"], "kernel_shape", op)
    s = pair(attrs["strides"], "strides", op)
    p = pair(attrs.get("pads") or [0, 0, 0, 0], "pads", op, 4)
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ShapeError(f"{op}: kernel_shape and strides must be >= 1 and pads >= 0")
    return k, s, p


def window_out(size, k: int, s: int, p0: int, p1: int, op: str, axis: str):
    """Output length of a valid sliding window: floor((size + p0 + p1 - k) / s) + 1 (ONNX, ceil_mode 0)."""
    if not known(size):
        return None
    span = int(size) + p0 + p1 - k
    if span < 0:
        raise ShapeError(f"{op}: kernel {k} larger than padded {axis} size {int(size) + p0 + p1}")
    return span // s + 1
