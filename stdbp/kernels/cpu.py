"""Compiled CPU kernels of the exact ReL-PSP neuron (numba, numpy in / numpy out).

Used by the torch autograd functions (CPU tensors) and by the ONNX Runtime custom op, so they
take and return plain numpy arrays (float32 or float64, C-contiguous; other layouts are
converted). Every kernel is parallel over the batch (or the output neurons) and never builds a
batch x in x out tensor.

Forward, per sample (event driven): sort the input times; walk them in time order and keep for
every output the running sums W_j = sum w_ij, T_j = sum w_ij t_i of the inputs seen so far.
After each group of simultaneous inputs, V_j is linear up to e = min(next input time, t_max);
an unfired output whose END value reaches the threshold, W_j e - T_j >= theta (never true for
W_j <= 0), fires at t_j = (theta + T_j) / W_j, clamped into (t_group, e] so the causal set
{i : t_i < t_j} recomputed by backward is exactly the set used here. The walk stops once every
output fired or the next input is at/after t_max (an input at t_max adds nothing by t_max).

Backward (Eq. 13-14): delta_j = g_j / W_C (0 for silent outputs), and with the causal mask
t_i < t_j recomputed from the saved times,
    dL/dw_ij = sum_b (t_i - t_j) delta_j [t_i < t_j],   dL/dt_i = sum_j w_ij delta_j [t_i < t_j].
(t_i - t_j) is evaluated as min(t_i, t_j) - t_j, which is 0 for non-causal or silent inputs:
no infinite time is ever multiplied, so no NaN.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

_FLOATS = (np.float32, np.float64)


# ---------------------------------------------------------------------------------------------
# input checks shared by the wrappers (cheap; they keep the jitted code free of surprises)
def _as_float(a, name: str, dtype=None) -> np.ndarray:
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in _FLOATS else np.float32
    return np.ascontiguousarray(a, dtype=dtype)


def _params(dtype, threshold: float, t_max: float) -> np.ndarray:
    """[theta, t_max, +inf] in the working dtype (keeps float32 math in float32)."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    if math.isnan(t_max):
        raise ValueError("t_max must not be NaN")
    return np.array([threshold, t_max, np.inf], dtype=dtype)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list, np.ndarray)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


# ---------------------------------------------------------------------------------------------
# the neuron walk, shared by dense and conv: inputs `vals` (times), weights wT[k, j]
@njit(cache=True, nogil=True)
def _walk(vals, order, n_act, wT, wrow, p, w_acc, t_acc, t_out, wsum):
    """Fire the outputs fed by inputs vals[order[:n_act]] (sorted, all < t_max).

    wT[wrow[k], j] is the weight from input k to output j. Writes t_out[j] (+inf if silent)
    and wsum[j] (0 if silent). w_acc, t_acc: scratch of length n_out.
    """
    thr, t_max, inf = p[0], p[1], p[2]
    n_out = t_out.shape[0]
    for j in range(n_out):
        w_acc[j] = 0.0
        t_acc[j] = 0.0
        t_out[j] = inf
        wsum[j] = 0.0
    remaining = n_out
    k = 0
    while k < n_act and remaining > 0:
        i = order[k]
        ti = vals[i]
        r = wrow[i]
        for j in range(n_out):
            w = wT[r, j]
            w_acc[j] += w
            t_acc[j] += w * ti
        k += 1
        if k < n_act and vals[order[k]] == ti:
            continue  # simultaneous inputs: the interval between them is empty
        e = vals[order[k]] if k < n_act else t_max
        lo = np.nextafter(ti, inf)
        if e == inf:
            # unbounded last interval: V reaches any threshold iff its slope W is positive
            for j in range(n_out):
                if t_out[j] == inf and w_acc[j] > 0:
                    t = (thr + t_acc[j]) / w_acc[j]
                    t_out[j] = max(t, lo)
                    wsum[j] = w_acc[j]
                    remaining -= 1
        else:
            # cheap vectorised pre-check; the branchy firing pass runs only when someone fires
            hits = 0
            for j in range(n_out):
                hits += (w_acc[j] * e - t_acc[j] >= thr) and (t_out[j] == inf)
            if hits == 0:
                continue
            for j in range(n_out):
                wj = w_acc[j]
                if t_out[j] == inf and wj > 0 and wj * e - t_acc[j] >= thr:
                    t = (thr + t_acc[j]) / wj
                    t_out[j] = min(max(t, lo), e)
                    wsum[j] = wj
                    remaining -= 1


@njit(cache=True, nogil=True)
def _sort_keys(vals):
    """Order-preserving unsigned integer keys of float32/float64 values (IEEE order)."""
    n = vals.shape[0]
    keys = np.empty(n, np.uint64)
    if vals.itemsize == 4:
        bits = vals.view(np.uint32)
        for i in range(n):
            u = np.uint64(bits[i])
            keys[i] = u ^ np.uint64(0xFFFFFFFF) if u >> np.uint64(31) else u | np.uint64(1 << 31)
    else:
        bits64 = vals.view(np.uint64)
        for i in range(n):
            u = bits64[i]
            keys[i] = ~u if u >> np.uint64(63) else u | np.uint64(1 << 63)
    return keys


@njit(cache=True, nogil=True)
def _argsort(vals):
    """argsort of a 1-D float array: insertion sort for short arrays, LSD radix sort (8-bit
    digits on the IEEE keys, passes with a single occupied bucket skipped) otherwise; about
    4x faster than np.argsort for a 784-pixel image."""
    n = vals.shape[0]
    order = np.arange(n)
    if n <= 48:
        for a in range(1, n):
            o = order[a]
            v = vals[o]
            c = a - 1
            while c >= 0 and vals[order[c]] > v:
                order[c + 1] = order[c]
                c -= 1
            order[c + 1] = o
        return order
    keys = _sort_keys(vals)
    k2 = np.empty(n, np.uint64)
    o2 = np.empty(n, np.int64)
    count = np.empty(256, np.int64)
    for byte in range(vals.itemsize):
        shift = np.uint64(8 * byte)
        count[:] = 0
        for i in range(n):
            count[(keys[i] >> shift) & np.uint64(255)] += 1
        if count.max() == n:
            continue  # every key has the same digit here: the pass would not move anything
        total = 0
        for d in range(256):
            c = count[d]
            count[d] = total
            total += c
        for i in range(n):
            d = (keys[i] >> shift) & np.uint64(255)
            pos = count[d]
            count[d] = pos + 1
            k2[pos] = keys[i]
            o2[pos] = order[i]
        keys, k2 = k2, keys
        order, o2 = o2, order
    return order


@njit(cache=True, nogil=True)
def _active(vals, t_max):
    """argsort of vals and the number of inputs that spike before t_max (finite ones only)."""
    order = _argsort(vals)
    n_act = 0
    while n_act < vals.shape[0] and vals[order[n_act]] < t_max:
        n_act += 1
    return order, n_act


# ---------------------------------------------------------------------------------------------
# dense
@njit(parallel=True, cache=True)
def _dense_forward(t_in, weight, p):
    batch, n_in = t_in.shape
    n_out = weight.shape[0]
    wT = np.ascontiguousarray(weight.T)
    wrow = np.arange(n_in)
    t_out = np.empty((batch, n_out), dtype=t_in.dtype)
    wsum = np.empty((batch, n_out), dtype=t_in.dtype)
    for b in prange(batch):
        w_acc = np.empty(n_out, dtype=t_in.dtype)
        t_acc = np.empty(n_out, dtype=t_in.dtype)
        order, n_act = _active(t_in[b], p[1])
        _walk(t_in[b], order, n_act, wT, wrow, p, w_acc, t_acc, t_out[b], wsum[b])
    return t_out, wsum


def dense_forward(t_in, weight, threshold: float = 1.0, t_max: float = math.inf):
    """t_in [B, in], weight [out, in] -> (t_out [B, out], wsum [B, out]); +inf = no spike."""
    t_in = _as_float(t_in, "t_in")
    weight = _as_float(weight, "weight", t_in.dtype)
    if t_in.ndim != 2 or weight.ndim != 2 or weight.shape[1] != t_in.shape[1]:
        raise ValueError(f"dense_forward: shapes t_in {t_in.shape}, weight {weight.shape}")
    return _dense_forward(t_in, weight, _params(t_in.dtype, threshold, t_max))


def dense_delta(grad_out, t_out, wsum, delta_clip: float | None = None):
    """delta = g / W_C for fired outputs (0 otherwise), optionally clamped -> (delta, n_clipped)."""
    fired = np.isfinite(t_out) & (wsum != 0)
    delta = np.zeros_like(t_out)
    np.divide(grad_out, wsum, out=delta, where=fired)
    n_clipped = 0
    if delta_clip is not None:
        over = np.abs(delta) > delta_clip
        n_clipped = int(over.sum())
        if n_clipped:
            np.clip(delta, -delta_clip, delta_clip, out=delta)
    return delta, n_clipped


@njit(parallel=True, cache=True)
def _dense_backward(delta, t_in, weight, t_out, n_blk, need_t, need_w):
    """Fused Eq. 13-14. Block `blk` owns the rows j of g_w in its output range and a private
    g_t accumulator (summed at the end), so there are no write races; j outer / b inner keeps
    w[j] and g_w[j] in L1 while the samples stream through."""
    batch, n_in = t_in.shape
    n_out = weight.shape[0]
    g_w = np.zeros_like(weight)
    g_t_blk = np.zeros((n_blk, batch if need_t else 0, n_in), dtype=t_in.dtype)
    for blk in prange(n_blk):
        g_t = g_t_blk[blk]
        for j in range(blk * n_out // n_blk, (blk + 1) * n_out // n_blk):
            wj = weight[j]
            gwj = g_w[j]
            for b in range(batch):
                d = delta[b, j]
                if d == 0:
                    continue  # silent output (or zero upstream gradient)
                tj = t_out[b, j]
                tb = t_in[b]
                if need_w:
                    for i in range(n_in):
                        gwj[i] += (min(tb[i], tj) - tj) * d
                if need_t:
                    gtb = g_t[b]
                    for i in range(n_in):
                        gtb[i] += wj[i] * d * (tb[i] < tj)
    g_t = g_t_blk[0] if need_t else np.zeros_like(t_in)
    for blk in range(1, n_blk if need_t else 1):
        g_t += g_t_blk[blk]
    return g_t, g_w


def dense_backward(grad_out, t_in, weight, t_out, wsum, delta_clip: float | None = None):
    """Eq. 13-14 over the causal set -> (grad_t_in [B, in], grad_weight [out, in])."""
    g_t, g_w, _ = dense_backward_counted(grad_out, t_in, weight, t_out, wsum, delta_clip)
    return g_t, g_w


def dense_backward_counted(grad_out, t_in, weight, t_out, wsum, delta_clip=None,
                           need_grad_t: bool = True, need_grad_w: bool = True):
    """dense_backward that also returns how many deltas the clip changed; a gradient that is
    not needed (need_grad_t / need_grad_w False) is skipped and returned as zeros."""
    t_in = _as_float(t_in, "t_in")
    dt = t_in.dtype
    delta, n_clipped = dense_delta(_as_float(grad_out, "grad_out", dt),
                                   _as_float(t_out, "t_out", dt),
                                   _as_float(wsum, "wsum", dt), delta_clip)
    weight = _as_float(weight, "weight", dt)
    n_blk = max(1, min(weight.shape[0], numba.get_num_threads()))
    g_t, g_w = _dense_backward(delta, t_in, weight, _as_float(t_out, "t_out", dt), n_blk,
                               bool(need_grad_t), bool(need_grad_w))
    return g_t, g_w, n_clipped


# ---------------------------------------------------------------------------------------------
# conv2d: the dense neuron over every (+inf padded) receptive field
@njit(cache=True, nogil=True)
def _gather_patch(t_in, b, y0, x0, kh, kw, vals, inf):
    """vals[c*kh*kw + dy*kw + dx] = t_in[b, c, y0+dy, x0+dx], +inf outside the image."""
    n_c, height, width = t_in.shape[1], t_in.shape[2], t_in.shape[3]
    k = 0
    for c in range(n_c):
        for dy in range(kh):
            yy = y0 + dy
            for dx in range(kw):
                xx = x0 + dx
                if 0 <= yy < height and 0 <= xx < width:
                    vals[k] = t_in[b, c, yy, xx]
                else:
                    vals[k] = inf
                k += 1


@njit(parallel=True, cache=True)
def _conv2d_forward(t_in, weight, sh, sw, ph, pw, p):
    batch, n_c, height, width = t_in.shape
    n_o, _, kh, kw = weight.shape
    oh = (height + 2 * ph - kh) // sh + 1
    ow = (width + 2 * pw - kw) // sw + 1
    n_k = n_c * kh * kw
    wT = np.ascontiguousarray(weight.reshape(n_o, n_k).T)
    wrow = np.arange(n_k)
    t_out = np.empty((batch, n_o, oh, ow), dtype=t_in.dtype)
    wsum = np.empty((batch, n_o, oh, ow), dtype=t_in.dtype)
    total = batch * oh * ow
    n_blk = min(total, 64)
    for blk in prange(n_blk):
        vals = np.empty(n_k, dtype=t_in.dtype)
        w_acc = np.empty(n_o, dtype=t_in.dtype)
        t_acc = np.empty(n_o, dtype=t_in.dtype)
        t_buf = np.empty(n_o, dtype=t_in.dtype)
        w_buf = np.empty(n_o, dtype=t_in.dtype)
        for pos in range(blk * total // n_blk, (blk + 1) * total // n_blk):
            b = pos // (oh * ow)
            y = (pos // ow) % oh
            x = pos % ow
            _gather_patch(t_in, b, y * sh - ph, x * sw - pw, kh, kw, vals, p[2])
            order, n_act = _active(vals, p[1])
            _walk(vals, order, n_act, wT, wrow, p, w_acc, t_acc, t_buf, w_buf)
            for o in range(n_o):
                t_out[b, o, y, x] = t_buf[o]
                wsum[b, o, y, x] = w_buf[o]
    return t_out, wsum


def _conv_args(t_in, weight, stride, padding):
    t_in = _as_float(t_in, "t_in")
    weight = _as_float(weight, "weight", t_in.dtype)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    if t_in.ndim != 4 or weight.ndim != 4 or weight.shape[1] != t_in.shape[1]:
        raise ValueError(f"conv2d: shapes t_in {t_in.shape}, weight {weight.shape}")
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"conv2d: bad stride {(sh, sw)} or padding {(ph, pw)}")
    if t_in.shape[2] + 2 * ph < weight.shape[2] or t_in.shape[3] + 2 * pw < weight.shape[3]:
        raise ValueError(f"conv2d: kernel {weight.shape[2:]} larger than the padded input")
    return t_in, weight, sh, sw, ph, pw


def conv2d_forward(t_in, weight, stride=(1, 1), padding=(0, 0), threshold: float = 1.0,
                   t_max: float = math.inf):
    """t_in [B,C,H,W], weight [O,C,kh,kw] -> (t_out [B,O,H',W'], wsum); padding = +inf."""
    t_in, weight, sh, sw, ph, pw = _conv_args(t_in, weight, stride, padding)
    return _conv2d_forward(t_in, weight, sh, sw, ph, pw, _params(t_in.dtype, threshold, t_max))


@njit(parallel=True, cache=True)
def _conv2d_backward(delta, t_in, weight, t_out, sh, sw, ph, pw, inf, need_t):
    batch, n_c, height, width = t_in.shape
    n_o, _, kh, kw = weight.shape
    oh, ow = t_out.shape[2], t_out.shape[3]
    n_k = n_c * kh * kw
    w2 = np.ascontiguousarray(weight.reshape(n_o, n_k))
    g_t = np.zeros_like(t_in)
    n_blk = max(1, min(batch, 64))
    g_w_blk = np.zeros((n_blk, n_o, n_k), dtype=t_in.dtype)
    for blk in prange(n_blk):
        vals = np.empty(n_k, dtype=t_in.dtype)
        g_p = np.empty(n_k, dtype=t_in.dtype)
        g_w = g_w_blk[blk]
        for b in range(blk * batch // n_blk, (blk + 1) * batch // n_blk):
            for y in range(oh):
                for x in range(ow):
                    y0, x0 = y * sh - ph, x * sw - pw
                    _gather_patch(t_in, b, y0, x0, kh, kw, vals, inf)
                    g_p[:] = 0
                    any_d = False
                    for o in range(n_o):
                        d = delta[b, o, y, x]
                        if d == 0:
                            continue
                        any_d = True
                        tj = t_out[b, o, y, x]
                        for k in range(n_k):
                            g_w[o, k] += (min(vals[k], tj) - tj) * d
                        if need_t:
                            for k in range(n_k):
                                g_p[k] += w2[o, k] * d * (vals[k] < tj)
                    if not any_d or not need_t:
                        continue
                    k = 0
                    for c in range(n_c):
                        for dy in range(kh):
                            yy = y0 + dy
                            for dx in range(kw):
                                xx = x0 + dx
                                if 0 <= yy < height and 0 <= xx < width:
                                    g_t[b, c, yy, xx] += g_p[k]
                                k += 1
    return g_t, g_w_blk.sum(axis=0).reshape(weight.shape)


def conv2d_backward_counted(grad_out, t_in, weight, t_out, wsum, stride=(1, 1),
                            padding=(0, 0), delta_clip: float | None = None,
                            need_grad_t: bool = True, need_grad_w: bool = True):
    """conv2d_backward that also returns how many deltas the clip changed (need_grad_t=False
    skips the input gradient, returned as zeros; the weight gradient is always computed)."""
    t_in, weight, sh, sw, ph, pw = _conv_args(t_in, weight, stride, padding)
    dt = t_in.dtype
    t_out = _as_float(t_out, "t_out", dt)
    delta, n_clipped = dense_delta(_as_float(grad_out, "grad_out", dt), t_out,
                                   _as_float(wsum, "wsum", dt), delta_clip)
    g_t, g_w = _conv2d_backward(delta, t_in, weight, t_out, sh, sw, ph, pw, dt.type(np.inf),
                                bool(need_grad_t))
    return g_t, g_w, n_clipped


def conv2d_backward(grad_out, t_in, weight, t_out, wsum, stride=(1, 1), padding=(0, 0),
                    delta_clip: float | None = None):
    """Eq. 13-14 for the convolution -> (grad_t_in [B,C,H,W], grad_weight [O,C,kh,kw])."""
    g_t, g_w, _ = conv2d_backward_counted(grad_out, t_in, weight, t_out, wsum, stride,
                                          padding, delta_clip)
    return g_t, g_w


# ---------------------------------------------------------------------------------------------
# min-pool: earliest spike per window (padding = +inf)
@njit(parallel=True, cache=True)
def _min_pool2d(t_in, kh, kw, sh, sw, ph, pw):
    batch, n_c, height, width = t_in.shape
    oh = (height + 2 * ph - kh) // sh + 1
    ow = (width + 2 * pw - kw) // sw + 1
    t_out = np.empty((batch, n_c, oh, ow), dtype=t_in.dtype)
    idx = np.empty((batch, n_c, oh, ow), dtype=np.int64)
    for bc in prange(batch * n_c):
        b, c = bc // n_c, bc % n_c
        for y in range(oh):
            for x in range(ow):
                best_i = -1
                best = t_in[b, c, 0, 0]
                for dy in range(kh):
                    yy = y * sh - ph + dy
                    if yy < 0 or yy >= height:
                        continue
                    for dx in range(kw):
                        xx = x * sw - pw + dx
                        if xx < 0 or xx >= width:
                            continue
                        v = t_in[b, c, yy, xx]
                        if best_i < 0 or v < best:
                            best, best_i = v, yy * width + xx
                t_out[b, c, y, x] = best
                idx[b, c, y, x] = best_i
    return t_out, idx


def min_pool2d_forward(t_in, kernel, stride=None, padding=(0, 0)):
    """Earliest spike per window -> (t_out, argmin [int64, flat index into H*W]).

    Ties go to the first position in row-major window order; padding is +inf (never chosen
    unless the window has no spike, then the first real position is reported).
    """
    t_in = _as_float(t_in, "t_in")
    (kh, kw) = _pair(kernel)
    (sh, sw) = (kh, kw) if stride is None else _pair(stride)
    (ph, pw) = _pair(padding)
    if t_in.ndim != 4 or kh < 1 or kw < 1 or sh < 1 or sw < 1:
        raise ValueError(f"min_pool2d: shape {t_in.shape}, kernel {(kh, kw)}, stride {(sh, sw)}")
    if ph * 2 > kh or pw * 2 > kw or t_in.shape[2] + 2 * ph < kh or t_in.shape[3] + 2 * pw < kw:
        raise ValueError(f"min_pool2d: padding {(ph, pw)} / kernel {(kh, kw)} do not fit")
    return _min_pool2d(t_in, kh, kw, sh, sw, ph, pw)
