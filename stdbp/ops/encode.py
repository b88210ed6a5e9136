"""`ai.stdbp.SpikeEncode`: pixel intensities -> input spike times (time-to-first-spike code)."""

from __future__ import annotations

import math

import numpy as np

from stdbp.ops._body import Body, Ref
from stdbp.ops.spec import Attr, OpSpec, Param, ShapeError

SEMANTICS = r"""
Intensity-to-latency coding (paper V-A): a brighter pixel spikes earlier.

    T = alpha * (255 - X) / 255            (evaluated in float32, in this order)
    T = +inf  where X == 0, if silent_zero == 1

so `X = 255` spikes at 0 and `X = 0` at `alpha` (the paper) or never (`silent_zero = 1`,
about 5x less work on MNIST). Element-wise; the output has the input's shape.
""".strip()

ATTRS = (
    Attr("alpha", "float", "time unit: the spike time of a black pixel (> 0, finite)", 1.0),
    Attr("silent_zero", "int", "1: pixels equal to 0 never spike (+inf); 0: they spike at alpha", 0),
)


def check_attrs(attrs: dict) -> None:
    a = attrs["alpha"]
    if not (math.isfinite(a) and a > 0):
        raise ShapeError(f"attribute 'alpha' must be finite and > 0, got {a}")
    if attrs["silent_zero"] not in (0, 1):
        raise ShapeError(f"attribute 'silent_zero' must be 0 or 1, got {attrs['silent_zero']}")


def shape_rule(shapes: list, attrs: dict) -> list:
    return shapes[0]


def compute(x: np.ndarray, alpha: float = 1.0, silent_zero: int = 0) -> np.ndarray:
    x = np.asarray(x)
    t = np.float32(alpha) * (np.float32(255) - x.astype(np.float32)) / np.float32(255)
    if silent_zero:
        t = np.where(x == 0, np.float32(np.inf), t).astype(np.float32)
    return t


def function():
    b = Body("SpikeEncode")
    alpha = b.op("Constant", value_float=Ref("alpha", "float"), hint="alpha")
    silent = b.op("Cast", b.op("Constant", value_int=Ref("silent_zero", "int")), to=9, hint="silent")
    c255 = b.const(255.0)
    t = b.op("Div", b.op("Mul", alpha, b.op("Sub", c255, b.op("Cast", "X", to=1))), c255)
    zero = b.op("Equal", "X", b.const(0, np.uint8))
    b.op("Where", b.op("And", zero, silent), b.inf(), t)
    b.nodes[-1].output[0] = "T"
    return b.function(["X"], ["T"], ATTRS)


SPEC = OpSpec(
    name="SpikeEncode",
    summary="Pixels (uint8) to input spike times.",
    semantics=SEMANTICS,
    inputs=(Param("X", "tensor(uint8)", "pixel intensities 0..255, any shape"),),
    outputs=(Param("T", "tensor(float)", "spike times, same shape; +inf = no spike"),),
    attributes=ATTRS,
    shape_rule=shape_rule,
    function=function,
    compute=compute,
    check_attrs=check_attrs,
)
