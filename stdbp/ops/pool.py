"""`ai.stdbp.SpikeMinPool`: earliest spike per window (the spiking form of max-pooling)."""

from __future__ import annotations

import numpy as np

from stdbp.ops._body import Body, Ref
from stdbp.ops.spec import Attr, OpSpec, Param, ShapeError, window_attrs, window_out

SEMANTICS = r"""
Each output is the earliest spike in its window (min over times = max-pool over `-T`);
padding is `+inf` (no spike), so it never wins:

    Y[n, c, y, x] = min_{0 <= a < kh, 0 <= b < kw} Tpad[n, c, y*sh + a, x*sw + b]
    H' = floor((H + pad_top + pad_bottom - kh) / sh) + 1   (W' likewise)

`pads = [top, left, bottom, right]` (ONNX order). A window of silent inputs stays silent.
""".strip()

ATTRS = (
    Attr("kernel_shape", "ints", "window [kh, kw]"),
    Attr("strides", "ints", "step [sh, sw]"),
    Attr("pads", "ints", "[top, left, bottom, right], padded with +inf", [0, 0, 0, 0]),
)


def resolved(attrs: dict, op: str = "SpikeMinPool"):
    return window_attrs(attrs, op)


def check_attrs(attrs: dict) -> None:
    resolved(attrs)


def shape_rule(shapes: list, attrs: dict) -> list:
    (t,) = shapes
    k, s, p = resolved(attrs)
    if t is None:
        return [None] * 4
    if len(t) != 4:
        raise ShapeError(f"input T must be 4-D [N, C, H, W], got rank {len(t)}")
    return [t[0], t[1], window_out(t[2], k[0], s[0], p[0], p[2], "SpikeMinPool", "height"),
            window_out(t[3], k[1], s[1], p[1], p[3], "SpikeMinPool", "width")]


def compute(t_in: np.ndarray, kernel_shape, strides, pads=(0, 0, 0, 0)) -> np.ndarray:
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = resolved(
        {"kernel_shape": kernel_shape, "strides": strides, "pads": pads})
    t = np.pad(t_in, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=np.inf)
    n, c, h, w = t.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(t, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return np.ascontiguousarray(win[:, :, :oh, :ow].min(axis=(4, 5)))


def function():
    b = Body("SpikeMinPool")
    neg = b.op("Neg", "T")
    pooled = b.op("MaxPool", neg, kernel_shape=Ref("kernel_shape", "ints"), strides=Ref("strides", "ints"),
                  pads=Ref("pads", "ints"))
    b.op("Neg", pooled)
    b.nodes[-1].output[0] = "Y"
    return b.function(["T"], ["Y"], ATTRS)


SPEC = OpSpec(
    name="SpikeMinPool",
    summary="Min-pooling over spike times (earliest spike wins).",
    semantics=SEMANTICS,
    inputs=(Param("T", "tensor(float)", "spike times [N, C, H, W]"),),
    outputs=(Param("Y", "tensor(float)", "spike times [N, C, H', W']"),),
    attributes=ATTRS,
    shape_rule=shape_rule,
    function=function,
    compute=compute,
    check_attrs=check_attrs,
)
