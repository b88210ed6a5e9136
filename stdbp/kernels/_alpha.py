"""Compiled CPU kernels of the exact alpha-PSP neuron (numba; numpy in, numpy out, float64).

PSP kernel (paper Eq. 2): K(x) = (x / tau) e^(1 - x / tau) for x > 0, else 0. No leak beyond
K, no reset: a neuron fires at most once, at the first time its potential
V_j(t) = sum_i w_ij K(t - t_i) reaches theta (t <= t_max), else never (+inf).

Forward, per sample (event driven, no closed form): sort the input times and walk the intervals
between consecutive distinct input times. On an interval starting at t0 with causal set C,
with s = t - t0 >= 0 and d_i = t_i - t0 <= 0,

    V(t0 + s) = e^(1 - s/tau) / tau * (a s + b),
    a = sum_C w_i e^(d_i/tau),   b = -sum_C w_i d_i e^(d_i/tau),

the stable form relative to the interval start (every factor e^(d_i/tau) <= 1). Moving the
start on by L multiplies both by e^(-L/tau) and adds L a to b first; new inputs add w to a.
On an interval V has at most one extremum, at s* = tau - b/a: for a > 0 it rises up to s*
and falls after it; for a <= 0 it cannot reach a positive threshold from below. So the neuron
fires on the interval [0, L] iff a > 0 and V(min(max(s*, 0), L)) >= theta, and the first
crossing is the unique root of V - theta on the rising part [0, min(s*, L)]: found by
bracketed Newton with bisection fall-back, to the last bit of float64.

Backward, implicit function theorem (paper Eq. 4-7): at the spike V(t_j) = theta, so with
V'_j = dV_j/dt at t_j (saved by forward as `slope`) and x = t_j - t_i > 0 (causal inputs),

    dt_j/dw_ij = -K(x) / V'_j,    dt_j/dt_i = w_ij K'(x) / V'_j,
    K'(x) = e^(1 - x/tau) (tau - x) / tau^2.

V'_j -> 0 when V only grazes the threshold: that is the exploding gradient of the paper's
Section II. `delta_clip` (off by default) clamps delta_j = g_j / V'_j; a zero slope (an exact
tangent) gives delta 0 and counts as clipped. Per sample the exponentials factor as
e^((t_i - r)/tau) e^((r - t_j)/tau) with r the sample's earliest input, so the backward pass
needs no exponential per synapse (a sample whose times span more than 600 tau, where that
factoring could overflow, takes the direct form).

Threads: the batch is split in contiguous pieces over `stdbp.kernels.cpu`'s pool (nogil).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from stdbp.kernels._neuron import active

_E = math.e


@njit(cache=True, nogil=True, inline="always")
def _v(a, b, s, tau):
    return (a * s + b) * math.exp(1.0 - s / tau) / tau


@njit(cache=True, nogil=True)
def first_root(a, b, theta, tau, s_hi):
    """The root of V(s) = theta on [0, s_hi], where V rises, V(0) < theta <= V(s_hi)."""
    lo, hi = 0.0, s_hi
    # start from the linear interpolation: a good guess far from the tangent case
    f_lo = _v(a, b, lo, tau) - theta
    f_hi = _v(a, b, hi, tau) - theta
    if f_hi == 0.0:
        return hi
    s = lo - f_lo * (hi - lo) / (f_hi - f_lo)
    if not (lo < s < hi):
        s = 0.5 * (lo + hi)
    for _ in range(200):
        ex = math.exp(1.0 - s / tau)
        f = (a * s + b) * ex / tau - theta
        if f == 0.0:
            return s
        if f < 0.0:
            lo = s
        else:
            hi = s
        if hi - lo <= 2.0 * np.spacing(hi):
            break
        d = ex * (a * tau - b - a * s) / (tau * tau)  # V'(s) >= 0 on the rising part
        s_new = s - f / d if d > 0.0 else -1.0
        if not (lo < s_new < hi) or abs(s_new - s) > 0.5 * (hi - lo):
            s_new = 0.5 * (lo + hi)  # Newton left the bracket or crawls: bisect
        if s_new == s:
            break
        s = s_new
    return hi if _v(a, b, lo, tau) < theta else lo


@njit(cache=True, nogil=True)
def walk_alpha(vals, order, n_act, wT, theta, t_max, tau, a, bb, t_out, slope):
    """Fire the outputs fed by the inputs vals[order[:n_act]] (sorted, all < t_max).

    Writes t_out[j] (+inf if silent) and slope[j] = dV_j/dt at t_j (0 if silent); a, bb are
    scratch of length n_out."""
    n_out = t_out.shape[0]
    inf = np.inf
    for j in range(n_out):
        a[j] = 0.0
        bb[j] = 0.0
        t_out[j] = inf
        slope[j] = 0.0
    remaining = n_out
    k = 0
    c_e = _E / tau  # V <= (a s + b) e / tau: a cheap test before the exponential
    while k < n_act and remaining > 0:
        t0 = vals[order[k]]
        while k < n_act and vals[order[k]] == t0:
            i = order[k]
            for j in range(n_out):
                a[j] += wT[i, j]
            k += 1
        e = vals[order[k]] if k < n_act else t_max
        length = e - t0
        finite = length < inf
        decay = math.exp(-length / tau) if finite else 0.0
        lo = np.nextafter(t0, inf)
        for j in range(n_out):
            aj = a[j]
            bj = bb[j]
            # a s + b <= a L + b on [0, L] (a > 0) and e^(1 - s/tau) / tau <= e / tau: most
            # unfired outputs fail this bound without a division
            if t_out[j] == inf and aj > 0.0 and (not finite or (aj * length + bj) * c_e >= theta):
                sm = min(max(tau - bj / aj, 0.0), length)
                if (aj * sm + bj) * c_e >= theta and _v(aj, bj, sm, tau) >= theta:
                    s = first_root(aj, bj, theta, tau, sm)
                    t_out[j] = min(max(t0 + s, lo), e)
                    slope[j] = math.exp(1.0 - s / tau) * (aj * tau - bj - aj * s) / (tau * tau)
                    remaining -= 1
            if finite:
                a[j] = aj * decay
                bb[j] = decay * (bj + length * aj)


@njit(cache=True, nogil=True)
def forward_rows(t_in, wT, theta, t_max, tau, t_out, slope, task, lo, hi):
    n_out = wT.shape[1]
    a = np.empty(n_out)
    bb = np.empty(n_out)
    for b in range(lo, hi):
        order, n_act = active(t_in[b], t_max)
        walk_alpha(t_in[b], order, n_act, wT, theta, t_max, tau, a, bb, t_out[b], slope[b])


@njit(cache=True, nogil=True)
def deltas(grad, t_in, t_out, slope, tau, clip, dj, ex, direct, full, clipped, task, lo, hi):
    """Per sample b in [lo, hi): r = earliest input; ex[b, i] = e^((t_i - r)/tau) (0 where
    silent); dj[b, j] = delta_j e^(1 + (r - t_j)/tau) / tau (0 where silent or g = 0), with
    delta_j = g_j / V'_j (clipped to +-clip when clip > 0; a zero slope gives 0, counted);
    direct[b]: times span > 600 tau, then ex = 1 and dj = delta e / tau (the kernel below takes
    the exponential per synapse); full[b, j]: output j fires after every spiking input."""
    n_in = t_in.shape[1]
    n_out = t_out.shape[1]
    inf = np.inf
    n_clip = 0
    for b in range(lo, hi):
        r = inf
        top = -inf
        for i in range(n_in):
            ti = t_in[b, i]
            if ti < inf:
                r = min(r, ti)
                top = max(top, ti)
        last_in = top
        for j in range(n_out):
            if t_out[b, j] < inf:
                top = max(top, t_out[b, j])
        if r == inf:
            r = 0.0
        dr = (top - r) > 600.0 * tau
        direct[b] = dr
        for i in range(n_in):
            ti = t_in[b, i]
            ex[b, i] = (1.0 if dr else math.exp((ti - r) / tau)) if ti < inf else 0.0
        for j in range(n_out):
            t = t_out[b, j]
            full[b, j] = False
            dj[b, j] = 0.0
            if t < inf and grad[b, j] != 0.0:
                sl = slope[b, j]
                if sl > 0.0:
                    d = grad[b, j] / sl
                else:
                    d = 0.0
                    n_clip += 1
                if clip > 0.0 and abs(d) > clip:
                    d = clip if d > 0 else -clip
                    n_clip += 1
                dj[b, j] = d * (_E / tau if dr else _E * math.exp((r - t) / tau) / tau)
                full[b, j] = (t > last_in) and not dr
    clipped[task] = n_clip


@njit(cache=True, nogil=True)
def masked_rows(dj, ex, direct, t_in, wT, t_out, tau, need_t, need_w, g_t, g_w, task, lo, hi):
    """The event form for the pairs (b, j) with dj[b, j] != 0: g_t[b, i] += ..., and
    g_w[task] ([in, out]) += this piece's weight gradient. K(x) = x/tau e^(1-x/tau),
    K'(x) = e^(1-x/tau) (tau - x) / tau^2, x = t_j - t_i > 0 (causal inputs only)."""
    n_in, n_out = wT.shape
    inf = np.inf
    gw = g_w[task]
    js = np.empty(n_out, np.int64)
    for b in range(lo, hi):
        nj = 0
        for j in range(n_out):
            if dj[b, j] != 0.0:
                js[nj] = j
                nj += 1
        if nj == 0:
            continue
        dr = direct[b]
        for i in range(n_in):
            ti = t_in[b, i]
            if not ti < inf:
                continue
            ei = ex[b, i]
            acc = 0.0
            for jj in range(nj):
                j = js[jj]
                x = t_out[b, j] - ti
                if x > 0.0:
                    q = dj[b, j] * (math.exp(-x / tau) if dr else ei)
                    if need_w:
                        gw[i, j] -= q * x
                    acc += wT[i, j] * q * (tau - x)
            if need_t:
                g_t[b, i] += acc / tau
