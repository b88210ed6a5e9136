"""Slow, obviously-correct float64 event-loop reference of the ReL-PSP neuron (tests only).

For one neuron: walk the inputs in time order. Between two consecutive input spikes the
potential V(t) = sum_{i arrived} w_i (t - t_i) is linear; the neuron fires in the first
interval whose end value reaches theta, at t = (theta + sum w_i t_i) / sum w_i, provided
t <= t_max. Plain Python loops on purpose: this is the spec, not a fast path.
"""

from __future__ import annotations

import math

import numpy as np


def neuron_reference(t_in, w, threshold: float = 1.0, t_max: float = math.inf):
    """One neuron -> (t_out, W_C, causal indices). float64; +inf = no spike."""
    t_in = [float(x) for x in t_in]
    w = [float(x) for x in w]
    order = sorted(range(len(t_in)), key=lambda i: t_in[i])
    order = [i for i in order if math.isfinite(t_in[i])]
    w_sum = 0.0
    wt_sum = 0.0
    arrived: list[int] = []
    for pos, i in enumerate(order):
        if t_in[i] > t_max:
            break
        w_sum += w[i]
        wt_sum += w[i] * t_in[i]
        arrived.append(i)
        nxt = t_in[order[pos + 1]] if pos + 1 < len(order) else math.inf
        if nxt == t_in[i]:
            continue  # simultaneous inputs: the interval between them is empty
        end = min(nxt, t_max)
        if w_sum <= 0:
            continue  # V does not rise on this interval
        t = (threshold + wt_sum) / w_sum
        if t <= end:
            return t, w_sum, list(arrived)
    return math.inf, 0.0, []


def dense_reference(t_in, weight, threshold: float = 1.0, t_max: float = math.inf):
    """[B, in], [out, in] -> (t_out [B, out], wsum [B, out]) in float64."""
    t_in = np.asarray(t_in, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    t_out = np.full((t_in.shape[0], weight.shape[0]), np.inf)
    wsum = np.zeros_like(t_out)
    for b in range(t_in.shape[0]):
        for j in range(weight.shape[0]):
            t_out[b, j], wsum[b, j], _ = neuron_reference(t_in[b], weight[j], threshold, t_max)
    return t_out, wsum


def dense_grad_reference(grad_out, t_in, weight, threshold: float = 1.0,
                         t_max: float = math.inf):
    """Eq. 13-14 written out neuron by neuron -> (grad_t_in, grad_weight) in float64."""
    t_in = np.asarray(t_in, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    grad_out = np.asarray(grad_out, dtype=np.float64)
    g_t = np.zeros_like(t_in)
    g_w = np.zeros_like(weight)
    for b in range(t_in.shape[0]):
        for j in range(weight.shape[0]):
            t_j, w_c, causal = neuron_reference(t_in[b], weight[j], threshold, t_max)
            if not math.isfinite(t_j):
                continue
            for i in causal:
                g_w[j, i] += grad_out[b, j] * (t_in[b, i] - t_j) / w_c
                g_t[b, i] += grad_out[b, j] * weight[j, i] / w_c
    return g_t, g_w


def conv2d_reference(t_in, weight, stride=(1, 1), padding=(0, 0), threshold: float = 1.0,
                     t_max: float = math.inf):
    """Direct loops: each output neuron is the dense neuron over its (+inf padded) window."""
    t_in = np.asarray(t_in, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    (sh, sw), (ph, pw) = stride, padding
    b_n, c_n, h, w = t_in.shape
    o_n, _, kh, kw = weight.shape
    padded = np.full((b_n, c_n, h + 2 * ph, w + 2 * pw), np.inf)
    padded[:, :, ph:ph + h, pw:pw + w] = t_in
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    t_out = np.full((b_n, o_n, oh, ow), np.inf)
    wsum = np.zeros_like(t_out)
    for b in range(b_n):
        for o in range(o_n):
            for y in range(oh):
                for x in range(ow):
                    patch = padded[b, :, y * sh:y * sh + kh, x * sw:x * sw + kw].ravel()
                    t_out[b, o, y, x], wsum[b, o, y, x], _ = neuron_reference(
                        patch, weight[o].ravel(), threshold, t_max)
    return t_out, wsum


def min_pool_reference(t_in, kernel, stride):
    t_in = np.asarray(t_in, dtype=np.float64)
    (kh, kw), (sh, sw) = kernel, stride
    b_n, c_n, h, w = t_in.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.full((b_n, c_n, oh, ow), np.inf)
    for y in range(oh):
        for x in range(ow):
            out[:, :, y, x] = t_in[:, :, y * sh:y * sh + kh, x * sw:x * sw + kw].min(axis=(2, 3))
    return out
