"""Slow, obviously-correct float64 event-loop reference of the alpha-PSP neuron (tests only).

For one neuron: walk the distinct input times in order. On each interval [t_k, t_(k+1)) the
causal set is fixed and V(t) = sum_C w_i K(t - t_i) is evaluated directly from that sum (no
running recursion). Its only extremum on the interval is where dV/dt = 0; the neuron fires on
the first interval whose maximum reaches theta, at the root found by plain bisection of the
directly evaluated V. Plain Python loops on purpose: this is the spec, not a fast path.
"""

from __future__ import annotations

import math

import numpy as np


def kernel(x: float, tau: float) -> float:
    return x / tau * math.exp(1.0 - x / tau) if x > 0 else 0.0


def potential(t: float, t_in, w, causal, tau: float) -> float:
    return sum(w[i] * kernel(t - t_in[i], tau) for i in causal)


def neuron_reference(t_in, w, threshold=1.0, t_max=math.inf, tau=1.0):
    """One neuron -> (t_out, causal indices); +inf = no spike."""
    t_in = [float(x) for x in t_in]
    w = [float(x) for x in w]
    times = sorted({t for t in t_in if t < t_max})
    for k, t0 in enumerate(times):
        causal = [i for i in range(len(t_in)) if t_in[i] <= t0]
        end = times[k + 1] if k + 1 < len(times) else t_max
        # dV/dt at t0 + s is proportional to (a tau - b) - a s, a and b from the direct sums
        a = sum(w[i] * math.exp((t_in[i] - t0) / tau) for i in causal)
        b = sum(-w[i] * (t_in[i] - t0) * math.exp((t_in[i] - t0) / tau) for i in causal)
        if a <= 0:
            continue
        s_peak = min(max(tau - b / a, 0.0), end - t0)
        if potential(t0 + s_peak, t_in, w, causal, tau) < threshold:
            continue
        lo, hi = t0, t0 + s_peak
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            if potential(mid, t_in, w, causal, tau) < threshold:
                lo = mid
            else:
                hi = mid
        return hi, causal
    return math.inf, []


def dense_reference(t_in, weight, threshold=1.0, t_max=math.inf, tau=1.0):
    """[B, in], [out, in] -> t_out [B, out] in float64."""
    t_in = np.asarray(t_in, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    t_out = np.full((t_in.shape[0], weight.shape[0]), np.inf)
    for b in range(t_in.shape[0]):
        for j in range(weight.shape[0]):
            t_out[b, j] = neuron_reference(t_in[b], weight[j], threshold, t_max, tau)[0]
    return t_out


def peak_margin(t_in, w, t_out, threshold=1.0, t_max=math.inf, tau=1.0) -> float:
    """How far the neuron is from changing its firing interval: min over intervals before the
    spike (and the spike's own) of |max V - theta| / theta. Cases within 1e-6 are knife-edge
    (the spike time then depends on rounding as sqrt(eps)) and are left out of exact checks."""
    t_in = [float(x) for x in t_in]
    w = [float(x) for x in w]
    times = sorted({t for t in t_in if t < t_max})
    margin = math.inf
    for k, t0 in enumerate(times):
        if t0 >= t_out:
            break
        causal = [i for i in range(len(t_in)) if t_in[i] <= t0]
        end = times[k + 1] if k + 1 < len(times) else t_max
        a = sum(w[i] * math.exp((t_in[i] - t0) / tau) for i in causal)
        b = sum(-w[i] * (t_in[i] - t0) * math.exp((t_in[i] - t0) / tau) for i in causal)
        s_peak = min(max(tau - b / a, 0.0), end - t0) if a > 0 else 0.0
        v = potential(t0 + s_peak, t_in, w, causal, tau)
        margin = min(margin, abs(v - threshold) / threshold)
    return margin


def max_potential(t_in, w, t_max=math.inf, tau=1.0) -> float:
    """max over 0 <= t <= t_max of V(t) (the largest interval peak)."""
    t_in = [float(x) for x in t_in]
    w = [float(x) for x in w]
    times = sorted({t for t in t_in if t < t_max})
    best = 0.0
    for k, t0 in enumerate(times):
        causal = [i for i in range(len(t_in)) if t_in[i] <= t0]
        end = times[k + 1] if k + 1 < len(times) else t_max
        a = sum(w[i] * math.exp((t_in[i] - t0) / tau) for i in causal)
        b = sum(-w[i] * (t_in[i] - t0) * math.exp((t_in[i] - t0) / tau) for i in causal)
        s_peak = min(max(tau - b / a, 0.0), end - t0) if a > 0 else 0.0
        best = max(best, potential(t0 + s_peak, t_in, w, causal, tau))
    return best
