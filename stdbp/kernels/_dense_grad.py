"""Numba kernels of the dense backward (Eq. 13-14), used by `stdbp.kernels.cpu`.

Per pair (b, j) of a fired output with delta_bj = g_bj / W_C and the causal mask t_bi < t_bj:
    dL/dw_ji = sum_b delta_bj (t_bi - t_bj) [t_bi < t_bj],
    dL/dt_bi = sum_j w_ji delta_bj [t_bi < t_bj].
`causal_split` sorts the pairs into "all-causal" ones (the output fires after every input
of its sample: the mask is just "input b,i spikes") and the others. The others go through the
masked event kernel `masked_block`; the all-causal ones through two matrix products (BLAS).
(A kernel visiting only the spiking inputs of the all-causal pairs, a fifth of the product's
multiply-adds for MNIST with silent black pixels, measured slower than OpenBLAS on one thread:
it streams two rows of d_aug from L2 per spiking input.)
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def masked_block(delta, t_in, weight, t_out, g_w, g_t_parts, need_t, need_w, task, lo, hi):
    """Outputs j in [lo, hi): this task owns rows j of g_w and its private g_t_parts[task].
    j outer / b inner keeps w[j] and g_w[j] in L1 while the samples stream through.
    (t_i - t_j) is evaluated as min(t_i, t_j) - t_j: 0 for non-causal or silent inputs, so no
    infinite time is ever multiplied."""
    batch, n_in = t_in.shape
    for j in range(lo, hi):
        wj = weight[j]
        gwj = g_w[j]
        for b in range(batch):
            d = delta[b, j]
            if d == 0:
                continue  # silent output (or zero upstream gradient)
            tj = t_out[b, j]
            tb = t_in[b]
            if need_w and need_t:  # one pass: t_i is loaded once
                gtb = g_t_parts[task, b]
                for i in range(n_in):
                    ti = tb[i]
                    gwj[i] += (min(ti, tj) - tj) * d
                    gtb[i] += wj[i] * d * (ti < tj)
            elif need_w:
                for i in range(n_in):
                    gwj[i] += (min(tb[i], tj) - tj) * d
            elif need_t:
                gtb = g_t_parts[task, b]
                for i in range(n_in):
                    gtb[i] += wj[i] * d * (tb[i] < tj)


@njit(cache=True, nogil=True)
def causal_split(grad_out, wsum, clip, t_in, t_out):
    """delta (exactly as `cpu.dense_delta`, clip < 0: none) split by the causal mask of its pair.

    Returns d_aug [K, out], d_mixed [B, out], mu [B], every, n_all, n_mixed, n_clipped:
      mu_b = the last input time of sample b (times are taken relative to it: t_i - t_j =
          (t_i - mu) - (t_j - mu) has smaller terms, less cancellation in the products);
      every: every input of every sample spikes;
      d_aug[:B] = the all-causal deltas d, and the second term of Eq. 13:
          K = B + 1 if every input spikes: d_aug[B] = c, c_j = sum_b d_bj (t_bj - mu_b),
          K = 2 B otherwise: d_aug[B + b] = d_b * (t_out_b - mu_b);
      d_mixed: the other deltas (masked event kernel).
    delta != 0 only for fired outputs, so t_out is finite wherever it is multiplied."""
    batch, n_in = t_in.shape
    n_out = t_out.shape[1]
    inf = np.inf
    last = np.empty(batch)
    every = True
    for b in range(batch):
        m = -inf
        for i in range(n_in):
            x = t_in[b, i]
            if x < inf:
                m = max(m, x)
            else:
                every = False
        last[b] = m
    mu = np.zeros(batch, t_in.dtype)
    for b in range(batch):
        if last[b] > -inf:
            mu[b] = last[b]
    k = batch + 1 if every else 2 * batch
    d_aug = np.zeros((k, n_out), t_out.dtype)
    d_mixed = np.zeros((batch, n_out), t_out.dtype)
    n_all = 0
    n_mixed = 0
    n_clipped = 0
    for b in range(batch):
        for j in range(n_out):
            tj = t_out[b, j]
            ws = wsum[b, j]
            if not (tj < inf and tj > -inf and ws != 0):
                continue  # silent: delta 0
            d = grad_out[b, j] / ws
            if clip >= 0 and abs(d) > clip:
                n_clipped += 1
                d = min(max(d, -clip), clip)
            if d == 0:
                continue
            if tj > last[b]:
                d_aug[b, j] = d
                n_all += 1
                if every:
                    d_aug[batch, j] += d * (tj - mu[b])
                else:
                    d_aug[batch + b, j] = d * (tj - mu[b])
            else:
                d_mixed[b, j] = d
                n_mixed += 1
    return d_aug, d_mixed, mu, every, n_all, n_mixed, n_clipped


@njit(cache=True, nogil=True)
def spiking_columns(t_in):
    """The inputs that spike in at least one sample, increasing. The others get no gradient
    at all (an input that never spikes is causal for nothing), so the weight gradient's
    matrix product can leave them out (MNIST, silent black pixels: about 520 of 784 inputs
    spike somewhere in a batch of 128: a third of the product saved)."""
    batch, n_in = t_in.shape
    seen = np.zeros(n_in, np.bool_)
    for b in range(batch):
        for i in range(n_in):
            seen[i] |= t_in[b, i] < np.inf
    return np.flatnonzero(seen)


@njit(cache=True, nogil=True)
def augmented_times(t_in, mu, every, cols):
    """t_aug with g_w[:, cols] = d_aug.T @ t_aug (see `causal_split`), for the input columns
    cols: [t_in - mu; -1] when every input spikes, else [(t_in - mu) f; -f] with
    f = [t_in finite]."""
    batch = t_in.shape[0]
    n_c = cols.shape[0]
    if every:
        t_aug = np.empty((batch + 1, n_c), t_in.dtype)
        for b in range(batch):
            for k in range(n_c):
                t_aug[b, k] = t_in[b, cols[k]] - mu[b]
        for k in range(n_c):
            t_aug[batch, k] = -1.0
        return t_aug
    t_aug = np.empty((2 * batch, n_c), t_in.dtype)
    for b in range(batch):
        for k in range(n_c):
            x = t_in[b, cols[k]]
            fin = x < np.inf
            t_aug[b, k] = x - mu[b] if fin else 0.0
            t_aug[batch + b, k] = -1.0 if fin else 0.0
    return t_aug


@njit(cache=True, nogil=True)
def scatter_columns(src, cols, n_in):
    """out [rows, n_in]: out[:, cols] = src, 0 elsewhere."""
    out = np.zeros((src.shape[0], n_in), src.dtype)
    for j in range(src.shape[0]):
        for k in range(cols.shape[0]):
            out[j, cols[k]] = src[j, k]
    return out


@njit(cache=True, nogil=True)
def zero_silent(g_t, t_in):
    """g_t[b, i] = 0 where input i of sample b never spikes (it is causal for no output)."""
    for b in range(t_in.shape[0]):
        for i in range(t_in.shape[1]):
            if t_in[b, i] == np.inf:
                g_t[b, i] = 0.0
