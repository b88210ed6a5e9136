"""`ai.stdbp.RelPspDense`: a fully connected layer of ReL-PSP neurons (one spike each)."""

from __future__ import annotations

import math

import numpy as np

from stdbp.ops._body import Body, Ref
from stdbp.ops.spec import Attr, OpSpec, Param, ShapeError, known

SEMANTICS = r"""
Each output neuron j of sample n integrates the ReL-PSP kernel `K(x) = max(0, x)` of its inputs
(paper Eq. 8-9, no leak, no reset):

    V_j(t) = sum_i W[j, i] * max(0, t - T[n, i])

and fires once, at the first time `t <= t_max` (inclusive) where `V_j(t) >= threshold`
(Eq. 11):

    Y[n, j] = (threshold + sum_{i in C} W[j, i] T[n, i]) / sum_{i in C} W[j, i],
    C = { i : T[n, i] < Y[n, j] }   (strict: an input arriving exactly at Y[n, j] is not causal)

If V_j never reaches the threshold by `t_max`, `Y[n, j] = +inf` (silent). Input times `+inf`
never contribute. Computed exactly, without time steps: sort the inputs, `W_k`, `T_k` = prefix
sums of `w` and `w*t` over them; V is linear on each non-empty interval `[t_(k), e_k]`,
`e_k = min(t_(k+1), t_max)`; the spike lies in the first such interval with `W_k > 0` and
`W_k e_k - T_k >= threshold` (for `e_k = +inf`: `W_k > 0` suffices), at
`(threshold + T_k) / W_k`, clamped into `(t_(k), e_k]` against rounding. Tied inputs form one
interval (all of them are causal together). `t_max = +inf` means no window.
""".strip()

ATTRS = (
    Attr("threshold", "float", "firing threshold theta (> 0, finite)"),
    Attr("t_max", "float", "end of the integration window (> 0; `inf` = none)"),
)


def check_attrs(attrs: dict) -> None:
    th, tm = attrs["threshold"], attrs["t_max"]
    if not (math.isfinite(th) and th > 0):
        raise ShapeError(f"attribute 'threshold' must be finite and > 0, got {th}")
    if math.isnan(tm) or tm <= 0:
        raise ShapeError(f"attribute 't_max' must be > 0 (inf allowed), got {tm}")


def shape_rule(shapes: list, attrs: dict) -> list:
    t, w = shapes
    if t is not None and len(t) != 2:
        raise ShapeError(f"input T must be 2-D [N, in], got rank {len(t)}")
    if w is not None and len(w) != 2:
        raise ShapeError(f"weight W must be 2-D [out, in], got rank {len(w)}")
    if t is not None and w is not None and known(t[1]) and known(w[1]) and int(t[1]) != int(w[1]):
        raise ShapeError(f"input T has {t[1]} features but weight W expects {w[1]} ([out, in])")
    return [t[0] if t is not None else None, w[0] if w is not None else None]


def compute(t_in: np.ndarray, weight: np.ndarray, threshold: float, t_max: float,
            chunk_elems: int = 1 << 22) -> np.ndarray:
    """Numpy implementation (vectorised over batch chunks); same algorithm as the function body."""
    t_in = np.ascontiguousarray(t_in)
    dtype = t_in.dtype
    weight = np.asarray(weight, dtype=dtype)
    batch, n_in = t_in.shape
    n_out = weight.shape[0]
    out = np.full((batch, n_out), np.inf, dtype=dtype)
    if batch == 0 or n_in == 0:
        return out
    wt = weight.T
    inf = dtype.type(np.inf)
    theta = dtype.type(threshold)
    tmax = dtype.type(t_max)
    step = max(1, min(batch, chunk_elems // max(1, n_in * n_out)))
    for s in range(0, batch, step):  # chunks bound memory; each chunk is fully vectorised
        order = np.argsort(t_in[s:s + step], axis=1, kind="stable")
        ts = np.take_along_axis(t_in[s:s + step], order, axis=1)
        fin = np.isfinite(ts)
        ts0 = np.where(fin, ts, dtype.type(0))
        ws = wt[order] * fin[..., None]  # [b, in, out]
        w_cum = np.cumsum(ws, axis=1)
        t_cum = np.cumsum(ws * ts0[..., None], axis=1)
        nxt = np.concatenate([ts[:, 1:], np.full((ts.shape[0], 1), inf, dtype)], axis=1)
        end = np.minimum(nxt, tmax)
        valid = fin & (ts < end)
        end_fin = np.isfinite(end)
        end0 = np.where(end_fin, end, dtype.type(0))
        reach = (w_cum * end0[..., None] - t_cum) >= theta
        cond = np.where(end_fin[..., None], reach, True) & (w_cum > 0) & valid[..., None]
        fired = cond.any(axis=1)
        k = cond.argmax(axis=1)  # first True
        w_sel = np.take_along_axis(w_cum, k[:, None, :], axis=1)[:, 0]
        t_sel = np.take_along_axis(t_cum, k[:, None, :], axis=1)[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (theta + t_sel) / np.where(fired, w_sel, dtype.type(1))
        lo = np.nextafter(np.take_along_axis(ts0, k, axis=1), inf)
        hi = np.take_along_axis(end, k, axis=1)
        t = np.minimum(np.maximum(t, lo), hi)
        out[s:s + step] = np.where(fired, t, inf)
    return out


def function():
    """Function body (standard ONNX ops). Memory: several [N, out, in] temporaries."""
    b = Body("RelPspDense")
    theta = b.op("Constant", value_float=Ref("threshold", "float"), hint="theta")
    tmax = b.op("Constant", value_float=Ref("t_max", "float"), hint="tmax")
    zero, one, inf = b.const(0.0), b.const(1.0), b.inf()
    n_in = b.op("Shape", "T", start=1, end=2, hint="n_in")
    ts, idx = b.op("TopK", "T", n_in, n_out=2, axis=1, largest=0, sorted=1, hint="sorted")
    fin = b.op("Not", b.op("IsInf", ts))
    ts0 = b.op("Where", fin, ts, zero, hint="ts0")
    # W[:, idx] -> [out, N, in] -> [N, in, out]
    ws = b.op("Transpose", b.op("Gather", "W", idx, axis=1), perm=[1, 2, 0])
    ax1 = b.const([1], np.int64)
    ax2 = b.const([2], np.int64)
    ws = b.op("Mul", ws, b.op("Unsqueeze", b.op("Cast", fin, to=1), ax2), hint="ws")
    w_cum = b.op("CumSum", ws, b.const(1, np.int64), hint="w_cum")
    t_cum = b.op("CumSum", b.op("Mul", ws, b.op("Unsqueeze", ts0, ax2)), b.const(1, np.int64), hint="t_cum")
    # next sorted time, +inf after the last: Pad(ts[:, 1:], right by one, value inf)
    rest = b.op("Slice", ts, b.const([1], np.int64), b.const([2**62], np.int64), ax1)
    nxt = b.op("Pad", rest, b.const([0, 0, 0, 1], np.int64), inf, hint="next")
    end = b.op("Min", nxt, tmax, hint="end")
    valid = b.op("And", fin, b.op("Less", ts, end), hint="valid")
    end_fin = b.op("Not", b.op("IsInf", end))
    end0 = b.op("Where", end_fin, end, zero)
    reach = b.op("GreaterOrEqual", b.op("Sub", b.op("Mul", w_cum, b.op("Unsqueeze", end0, ax2)), t_cum), theta)
    cond = b.op("Or", reach, b.op("Not", b.op("Unsqueeze", end_fin, ax2)))
    cond = b.op("And", cond, b.op("Greater", w_cum, zero))
    cond = b.op("And", cond, b.op("Unsqueeze", valid, ax2), hint="cond")
    condf = b.op("Cast", cond, to=1)
    k = b.op("ArgMax", condf, axis=1, keepdims=1, hint="k")  # [N, 1, out], first maximum
    fired = b.op("Greater", b.op("ReduceMax", condf, ax1, keepdims=0), b.const(0.5), hint="fired")
    w_sel = b.op("Squeeze", b.op("GatherElements", w_cum, k, axis=1), ax1)
    t_sel = b.op("Squeeze", b.op("GatherElements", t_cum, k, axis=1), ax1)
    w_safe = b.op("Where", fired, w_sel, one)
    t = b.op("Div", b.op("Add", theta, t_sel), w_safe)
    k2 = b.op("Squeeze", k, ax1)  # [N, out] index into the sorted inputs
    # lo = nextafter(t_(k), +inf) for float32 t >= 0: adding x * 2**-24 * (1 + 2**-10), a bit more
    # than half an ulp and less than 1.5 ulp, rounds to exactly the next float; 0 -> smallest subnormal.
    tk = b.op("GatherElements", ts0, k2, axis=1)
    lo = b.op("Add", tk, b.op("Mul", tk, b.const(2.0**-24 * (1 + 2.0**-10))))
    lo = b.op("Where", b.op("Equal", tk, zero), b.const(np.nextafter(np.float32(0), np.float32(1))), lo)
    hi = b.op("GatherElements", end, k2, axis=1)
    t = b.op("Min", b.op("Max", t, lo), hi)
    b.op("Where", fired, t, inf, hint="Y")
    b.nodes[-1].output[0] = "Y"
    return b.function(["T", "W"], ["Y"], ATTRS)


SPEC = OpSpec(
    name="RelPspDense",
    summary="Fully connected ReL-PSP layer: exact first-spike times.",
    semantics=SEMANTICS,
    inputs=(Param("T", "tensor(float)", "input spike times [N, in]; +inf = no spike"),
            Param("W", "tensor(float)", "weights [out, in]")),
    outputs=(Param("Y", "tensor(float)", "output spike times [N, out]; +inf = silent"),),
    attributes=ATTRS,
    shape_rule=shape_rule,
    function=function,
    compute=compute,
    check_attrs=check_attrs,
)
