"""`ai.stdbp.RelPspConv2d`: a convolutional layer of ReL-PSP neurons."""

from __future__ import annotations

import numpy as np

from stdbp.ops import dense
from stdbp.ops._body import Body, Ref
from stdbp.ops.spec import DOMAIN, Attr, OpSpec, Param, ShapeError, known, window_attrs, window_out

SEMANTICS = r"""
The RelPspDense neuron applied to every window of a `+inf`-padded input (padding never spikes;
padding with 0 would mean "spike at t = 0"). With `Tpad` the padded input and the patch

    P[n, y, x] = ( Tpad[n, c, y*sh + a, x*sw + b] )  over c < C, a < kh, b < kw  (flattened c, a, b)

the output is `Y[n, o, y, x] = RelPspDense(P[n, y, x], W[o] flattened)`, i.e. the first time
`t <= t_max` where `sum W[o, c, a, b] max(0, t - P) >= threshold`, with the same causal-set
formula and `+inf` for a silent neuron. Cross-correlation like ONNX Conv (no kernel flip);
`H' = floor((H + pad_top + pad_bottom - kh) / sh) + 1`, `W'` likewise; `kernel_shape` must equal
`W`'s last two dimensions; `pads = [top, left, bottom, right]`.
""".strip()

ATTRS = (
    Attr("kernel_shape", "ints", "[kh, kw], equal to W's last two dimensions"),
    Attr("strides", "ints", "step [sh, sw]"),
    Attr("pads", "ints", "[top, left, bottom, right], padded with +inf", [0, 0, 0, 0]),
    Attr("threshold", "float", "firing threshold theta (> 0, finite)"),
    Attr("t_max", "float", "end of the integration window (> 0; `inf` = none)"),
)


def resolved(attrs: dict, op: str = "RelPspConv2d"):
    return window_attrs(attrs, op)


def check_attrs(attrs: dict) -> None:
    resolved(attrs)
    dense.check_attrs(attrs)


def shape_rule(shapes: list, attrs: dict) -> list:
    t, w = shapes
    k, s, p = resolved(attrs)
    if t is not None and len(t) != 4:
        raise ShapeError(f"input T must be 4-D [N, C, H, W], got rank {len(t)}")
    if w is not None and len(w) != 4:
        raise ShapeError(f"weight W must be 4-D [O, C, kh, kw], got rank {len(w)}")
    if w is not None:
        if all(known(d) for d in w[2:]) and tuple(int(d) for d in w[2:]) != k:
            raise ShapeError(f"kernel_shape {list(k)} differs from the weight's {[int(d) for d in w[2:]]}")
        if t is not None and known(t[1]) and known(w[1]) and int(t[1]) != int(w[1]):
            raise ShapeError(f"input T has {t[1]} channels but weight W expects {w[1]}")
    if t is None:
        return [None, w[0] if w is not None else None, None, None]
    return [t[0], w[0] if w is not None else None,
            window_out(t[2], k[0], s[0], p[0], p[2], "RelPspConv2d", "height"),
            window_out(t[3], k[1], s[1], p[1], p[3], "RelPspConv2d", "width")]


def patches(t_in: np.ndarray, kernel, strides, pads):
    """[N, C, H, W] -> ([N*H'*W', C*kh*kw] patches, (H', W')), +inf padding."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, strides, pads
    t = np.pad(t_in, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=np.inf)
    n, c, h, w = t.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(t, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    # [N, C, H', W', kh, kw] -> [N, H', W', C, kh, kw]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, c * kh * kw), (oh, ow)


def compute(t_in: np.ndarray, weight: np.ndarray, kernel_shape, strides, pads=(0, 0, 0, 0), *,
            threshold: float, t_max: float) -> np.ndarray:
    k, s, p = resolved({"kernel_shape": kernel_shape, "strides": strides, "pads": pads})
    cols, (oh, ow) = patches(t_in, k, s, p)
    o = weight.shape[0]
    y = dense.compute(cols, weight.reshape(o, -1), threshold, t_max)
    return np.ascontiguousarray(y.reshape(t_in.shape[0], oh, ow, o).transpose(0, 3, 1, 2))


def function():
    """im2col with index arithmetic (Range/Gather), then a nested RelPspDense call."""
    b = Body("RelPspConv2d")
    i64 = lambda v: b.const(v, np.int64)  # noqa: E731
    ks = b.op("Constant", value_ints=Ref("kernel_shape", "ints"), hint="kernel")
    st = b.op("Constant", value_ints=Ref("strides", "ints"), hint="strides")
    pads = b.op("Constant", value_ints=Ref("pads", "ints"), hint="pads")
    tp = b.op("Pad", "T", pads, b.inf(), i64([2, 3]), hint="padded")  # +inf = no spike
    shp = b.op("Shape", tp)
    zero, one = i64(0), i64(1)
    n = b.op("Gather", shp, i64([0]))
    index = {}
    for axis, name in ((0, "h"), (1, "w")):
        size = b.op("Gather", shp, i64(2 + axis))
        k = b.op("Gather", ks, i64(axis))
        s = b.op("Gather", st, i64(axis))
        out = b.op("Add", b.op("Div", b.op("Sub", size, k), s), one, hint=f"o{name}")
        start = b.op("Mul", b.op("Range", zero, out, one), s)  # [out]
        index[name] = (b.op("Add", b.op("Unsqueeze", start, i64([1])),
                            b.op("Unsqueeze", b.op("Range", zero, k, one), i64([0])), hint=f"idx_{name}"),
                       b.op("Unsqueeze", out, i64([0])))
    g = b.op("Gather", tp, index["h"][0], axis=2)  # [N, C, H', kh, Wp]
    g = b.op("Gather", g, index["w"][0], axis=4)  # [N, C, H', kh, W', kw]
    g = b.op("Transpose", g, perm=[0, 2, 4, 1, 3, 5])  # [N, H', W', C, kh, kw]
    wf = b.op("Flatten", "W", axis=1)  # [O, C*kh*kw]
    cols = b.op("Reshape", g, b.op("Concat", i64([-1]), b.op("Shape", wf, start=1), axis=0))
    y = b.op("RelPspDense", cols, wf, domain=DOMAIN, threshold=Ref("threshold", "float"),
             t_max=Ref("t_max", "float"))
    o = b.op("Shape", "W", start=0, end=1)
    y = b.op("Reshape", y, b.op("Concat", n, index["h"][1], index["w"][1], o, axis=0))
    b.op("Transpose", y, perm=[0, 3, 1, 2])
    b.nodes[-1].output[0] = "Y"
    return b.function(["T", "W"], ["Y"], ATTRS)


SPEC = OpSpec(
    name="RelPspConv2d",
    summary="2-D convolutional ReL-PSP layer (+inf padding).",
    semantics=SEMANTICS,
    inputs=(Param("T", "tensor(float)", "input spike times [N, C, H, W]"),
            Param("W", "tensor(float)", "weights [O, C, kh, kw]")),
    outputs=(Param("Y", "tensor(float)", "output spike times [N, O, H', W']"),),
    attributes=ATTRS,
    shape_rule=shape_rule,
    function=function,
    compute=compute,
    check_attrs=check_attrs,
)
