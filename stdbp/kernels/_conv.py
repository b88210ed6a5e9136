"""Numba kernels of the conv and min-pool layers (used by `stdbp.kernels.cpu`).

Forward (`conv_forward_ranked`): the event walk of `_neuron.walk` over every receptive field,
as `cpu._conv2d_forward_rows` does, but without sorting every patch. Neighbouring patches share
most of their inputs, so each sample's whole input (C x H x W) is argsorted ONCE (stable, the
same keys as `_neuron.argsort_into`); a patch then marks the global ranks of its active inputs
(those before t_max) in a bitmap of the sample's active inputs and reads them back in rank
order (count-trailing-zeros), which is its inputs in time order, ties in flat (c, y, x) order.
Within a patch that is (c, dy, dx) order, the patch's own index order, so the order handed
to `walk` is exactly the stable argsort of the patch: the spike times are bit-identical to the
per-patch kernel. With 16 x 12 x 12 inputs (2 304 bits, 36 words) and 400 per patch this is
several times cheaper than radix sorting each patch.

Min-pool (`min_pool_backward`): the gradient of each window to its earliest input.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from stdbp.kernels._neuron import add_and_test, argsort_into, fire_in_interval, gather_patch
from stdbp.kernels._simd import prefer_512


@njit(nogil=True, inline="always")
def walk_patch(vals, order, n_act, wT, s_all, p, w_acc, t_acc, g2, t_out, wsum):
    """`_neuron.walk`, operation for operation, inlined into the patch loop and with the group
    sum in row 0 of a 2-D scratch g2 (walk's per-call `reshape` view and the call with eleven
    array arguments cost about as much as a short walk: conv1 has about 6 events a patch)."""
    thr, t_max, inf = p[0], p[1], p[2]
    n_out = t_out.shape[0]
    for j in range(n_out):
        w_acc[j] = 0.0
        t_acc[j] = 0.0
        t_out[j] = inf
        wsum[j] = 0.0
    remaining = n_out
    k = 0
    full = n_act == vals.shape[0]
    while k < n_act and remaining > 0:
        i = order[k]
        ti = vals[i]
        k0 = k
        k += 1
        if full and k < n_act and vals[order[n_act - 1]] == ti:
            for j in range(n_out):  # the last group, every input spiking
                g2[0, j] = s_all[j] - w_acc[j]
            k = n_act
        elif k < n_act and vals[order[k]] == ti:
            for j in range(n_out):
                g2[0, j] = wT[i, j]
            while k < n_act and vals[order[k]] == ti:
                i2 = order[k]
                for j in range(n_out):
                    g2[0, j] += wT[i2, j]
                k += 1
        grouped = k - k0 > 1
        e = vals[order[k]] if k < n_act else t_max
        if e == inf:
            if grouped:
                for j in range(n_out):
                    w_acc[j] += g2[0, j]
                    t_acc[j] += g2[0, j] * ti
            else:
                for j in range(n_out):
                    w = wT[i, j]
                    w_acc[j] += w
                    t_acc[j] += w * ti
            lo = np.nextafter(ti, inf)
            for j in range(n_out):
                if t_out[j] == inf and w_acc[j] > 0:
                    t_out[j] = max((thr + t_acc[j]) / w_acc[j], lo)
                    wsum[j] = w_acc[j]
                    remaining -= 1
            continue
        if grouped:
            hits = add_and_test(g2, 0, w_acc, t_acc, t_out, ti, e, thr, inf)
        else:
            hits = add_and_test(wT, i, w_acc, t_acc, t_out, ti, e, thr, inf)
        if hits:
            remaining -= fire_in_interval(w_acc, t_acc, t_out, wsum, ti, e, thr, inf)


@intrinsic
def _cttz(typingctx, x):
    """Count trailing zeros of a uint64 (LLVM cttz; x != 0)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.uint64(types.uint64), codegen


@njit(cache=True, nogil=True)
def patch_offsets(n_c, height, width, kh, kw):
    """kbase[f] = c*kh*kw + yy*kw + xx for the flat input index f = (c*H + yy)*W + xx: the
    patch index of input f in the patch at (y0, x0) is kbase[f] - (y0*kw + x0)."""
    kbase = np.empty(n_c * height * width, np.int64)
    f = 0
    for c in range(n_c):
        for yy in range(height):
            for xx in range(width):
                kbase[f] = c * kh * kw + yy * kw + xx
                f += 1
    return kbase


@njit(cache=True, nogil=True)
def conv_forward_ranked(t_in, wT, s_all, kbase, kh, kw, sh, sw, ph, pw, p, t_out, wsum,
                        task, lo, hi):
    """Samples b in [lo, hi) (see the module docstring); same outputs as
    `cpu._conv2d_forward_rows`, bit for bit."""
    prefer_512()
    n_c, height, width = t_in.shape[1], t_in.shape[2], t_in.shape[3]
    n_o = wT.shape[1]
    oh, ow = t_out.shape[2], t_out.shape[3]
    n_flat = n_c * height * width
    n_k = wT.shape[0]
    t_max, inf = p[1], p[2]
    vals = np.empty(n_k, dtype=t_in.dtype)
    order = np.empty(n_k, np.int64)
    gorder = np.empty(n_flat, np.int64)
    rank = np.empty(n_flat, np.int64)
    gk = np.empty(n_flat, np.int64)
    bits = np.zeros((n_flat + 63) // 64, np.uint64)
    w_acc = np.empty(n_o, dtype=t_in.dtype)
    t_acc = np.empty(n_o, dtype=t_in.dtype)
    g2 = np.empty((1, n_o), dtype=t_in.dtype)
    t_buf = np.empty(n_o, dtype=t_in.dtype)
    w_buf = np.empty(n_o, dtype=t_in.dtype)
    one = np.uint64(1)
    for b in range(lo, hi):
        flat = t_in[b].reshape(n_flat)
        argsort_into(flat, gorder)
        n_g = 0
        while n_g < n_flat and flat[gorder[n_g]] < t_max:
            n_g += 1
        for r in range(n_flat):
            rank[gorder[r]] = r  # r >= n_g: not active
        for r in range(n_g):
            gk[r] = kbase[gorder[r]]
        words = (n_g + 63) // 64
        for y in range(oh):
            for x in range(ow):
                y0, x0 = y * sh - ph, x * sw - pw
                gather_patch(t_in, b, y0, x0, kh, kw, vals, inf)
                for wi in range(words):
                    bits[wi] = 0
                if n_g:
                    for c in range(n_c):
                        for dy in range(kh):
                            yy = y0 + dy
                            if yy < 0 or yy >= height:
                                continue
                            base = (c * height + yy) * width
                            for dx in range(kw):
                                xx = x0 + dx
                                if 0 <= xx < width:
                                    r = rank[base + xx]
                                    if r < n_g:
                                        bits[r >> 6] |= one << np.uint64(r & 63)
                n_act = 0
                shift = y0 * kw + x0
                for wi in range(words):
                    m = bits[wi]
                    while m:
                        r = wi * 64 + np.int64(_cttz(m))
                        order[n_act] = gk[r] - shift
                        n_act += 1
                        m &= m - one
                walk_patch(vals, order, n_act, wT, s_all, p, w_acc, t_acc, g2, t_buf, w_buf)
                for o in range(n_o):
                    t_out[b, o, y, x] = t_buf[o]
                    wsum[b, o, y, x] = w_buf[o]


@njit(cache=True, nogil=True)
def min_pool_backward(grad_out, t_out, idx, g_in, task, lo, hi):
    """Planes bc in [lo, hi) of [B*C]: g_in[b, c].flat[idx] += grad_out where the window has
    a spike (a silent window passes no gradient)."""
    n_c = grad_out.shape[1]
    oh, ow = grad_out.shape[2], grad_out.shape[3]
    width = g_in.shape[3]
    for bc in range(lo, hi):
        b, c = bc // n_c, bc % n_c
        for y in range(oh):
            for x in range(ow):
                if t_out[b, c, y, x] < np.inf:
                    i = idx[b, c, y, x]
                    g_in[b, c, i // width, i % width] += grad_out[b, c, y, x]
