"""Cache-blocked numba kernels of the dense ReL-PSP layer (used by `stdbp.kernels.cpu`).

Forward: the event walk of `_neuron.walk`, but over blocks of JB outputs at a time. The
weights are packed once per call into wp[block, i, jj] = w[block * JB + jj, i] (zero padding:
a zero-weight output never fires), so that one block's slab (n_in x JB) stays in L2 while the
samples walk through it, instead of every sample re-streaming the whole matrix from L3. The
argsort of every sample is computed once and reused by every block. Per output the arithmetic
is exactly `walk`'s, in the same order, so the spike times are bit-identical to it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stdbp.kernels._neuron import active

JB = 128  # outputs per forward block: a 784 x 128 float32 slab is 400 KB (L2)


@njit(cache=True, nogil=True)
def pack_blocks(weight):
    """wp[k, i, jj] = weight[k * JB + jj, i], zero where k * JB + jj >= n_out."""
    n_out, n_in = weight.shape
    n_blk = (n_out + JB - 1) // JB
    wp = np.zeros((n_blk, n_in, JB), weight.dtype)
    for k in range(n_blk):
        j1 = min(JB, n_out - k * JB)
        for jj in range(j1):
            row = weight[k * JB + jj]
            for i in range(n_in):
                wp[k, i, jj] = row[i]
    return wp


@njit(cache=True, nogil=True)
def sort_samples(t_in, t_max, lo, hi):
    """Per sample b in [lo, hi): order[b - lo] (argsort), sorted times and n_act."""
    n_in = t_in.shape[1]
    orders = np.empty((hi - lo, n_in), np.int64)
    svals = np.empty((hi - lo, n_in + 1), t_in.dtype)
    n_acts = np.empty(hi - lo, np.int64)
    for b in range(lo, hi):
        order, n_act = active(t_in[b], t_max)
        orders[b - lo] = order
        n_acts[b - lo] = n_act
        for k in range(n_act):
            svals[b - lo, k] = t_in[b, order[k]]
        svals[b - lo, n_act] = t_max  # sentinel: the end of the last interval
    return orders, svals, n_acts


@njit(cache=True, nogil=True)
def walk_block(sv, order, n_act, wb, n_live, p, w_acc, t_acc, g_acc, t_out, wsum):
    """`_neuron.walk` for the JB outputs of one packed block wb[i, jj] (n_live of them real).

    sv[k] = time of the k-th input in time order (sv[n_act] = t_max). Same arithmetic in the
    same order as `walk`, per output; a group of simultaneous inputs is summed four rows per
    pass (g + a + b + c + d left to right is the sequential sum).
    """
    thr, inf = p[0], p[2]
    for jj in range(JB):
        w_acc[jj] = 0.0
        t_acc[jj] = 0.0
        t_out[jj] = inf
        wsum[jj] = 0.0
    remaining = n_live
    k = 0
    # rows are indexed as wb[i, jj], never sliced: a slice is a new array view whose
    # reference counting costs more than the 128-wide arithmetic on it
    while k < n_act and remaining > 0:
        ti = sv[k]
        end = k + 1
        while end < n_act and sv[end] == ti:
            end += 1
        if end - k > 1:
            i0 = order[k]
            for jj in range(JB):
                g_acc[jj] = wb[i0, jj]
            q = k + 1
            while q + 4 <= end:
                i0, i1, i2, i3 = order[q], order[q + 1], order[q + 2], order[q + 3]
                for jj in range(JB):
                    g_acc[jj] = g_acc[jj] + wb[i0, jj] + wb[i1, jj] + wb[i2, jj] + wb[i3, jj]
                q += 4
            while q < end:
                i0 = order[q]
                for jj in range(JB):
                    g_acc[jj] += wb[i0, jj]
                q += 1
            for jj in range(JB):
                w_acc[jj] += g_acc[jj]
                t_acc[jj] += g_acc[jj] * ti
        else:
            i0 = order[k]
            for jj in range(JB):
                w = wb[i0, jj]
                w_acc[jj] += w
                t_acc[jj] += w * ti
        k = end
        e = sv[k]
        if e == inf:
            lo = np.nextafter(ti, inf)
            for jj in range(JB):
                if t_out[jj] == inf and w_acc[jj] > 0:
                    t_out[jj] = max((thr + t_acc[jj]) / w_acc[jj], lo)
                    wsum[jj] = w_acc[jj]
                    remaining -= 1
        else:
            hits = False  # a bool "or" reduction vectorises at full width
            for jj in range(JB):
                hits |= (w_acc[jj] * e - t_acc[jj] >= thr) & (t_out[jj] == inf)
            if not hits:
                continue
            lo = np.nextafter(ti, inf)
            for jj in range(JB):
                wj = w_acc[jj]
                if t_out[jj] == inf and wj > 0 and wj * e - t_acc[jj] >= thr:
                    t_out[jj] = min(max((thr + t_acc[jj]) / wj, lo), e)
                    wsum[jj] = wj
                    remaining -= 1


@njit(cache=True, nogil=True)
def dense_forward_rows(t_in, wp, p, t_out, wsum, task, lo, hi):
    """Samples [lo, hi), all outputs: blocks outer, samples inner (the slab stays in L2)."""
    n_out = t_out.shape[1]
    orders, svals, n_acts = sort_samples(t_in, p[1], lo, hi)
    dt = t_in.dtype
    w_acc = np.empty(JB, dt)
    t_acc = np.empty(JB, dt)
    g_acc = np.empty(JB, dt)
    t_blk = np.empty(JB, dt)
    w_blk = np.empty(JB, dt)
    for k in range(wp.shape[0]):
        j0 = k * JB
        n_live = min(JB, n_out - j0)
        wb = wp[k]
        for b in range(lo, hi):
            walk_block(svals[b - lo], orders[b - lo], n_acts[b - lo], wb, n_live, p,
                       w_acc, t_acc, g_acc, t_blk, w_blk)
            for jj in range(n_live):
                t_out[b, j0 + jj] = t_blk[jj]
                wsum[b, j0 + jj] = w_blk[jj]
