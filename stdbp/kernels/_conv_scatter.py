"""Event-driven conv forward (`conv_forward_scatter`): one pass over a sample's input spikes in
time order, each spike added to every receptive field that holds it.

`_conv.conv_forward_ranked` walks each receptive field on its own: it gathers the field's
C*kh*kw times, finds its active inputs in a bitmap and replays them through the event walk.
Here the sample's active inputs are argsorted once (stable: ties in flat (c, y, x) order) and
streamed; every output position P keeps the walk's state (W, T, the pending group's sum G and
time, how many inputs it has seen, how many outputs are unfired). An input at time t reaching
P either joins P's pending group (same time: G += w) or closes it: W += G, T += t_G G and the
test "W e - T >= theta" on the interval (t_G, e], e = t, by the same `add_and_test` /
`fire_in_interval` as the walk, then opens a new group with G = w. After the last input every
pending group closes with e = t_max. The inputs reach P in P's own stable time order, so each
field sees the walk's groups, sums and tests in the walk's order: the spike times are bit for
bit those of the per-patch kernel. Also as in the walk: a field whose outputs have all fired
takes no more input, and a field whose C*kh*kw inputs all spike closes its last group of m > 1
inputs with G = s_all - W.

Per sample this does the walk's own additions and nothing else: no gather of C*kh*kw values,
no bitmap per field (the CNN's conv2 sees about 146 of its 400 inputs spike).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stdbp.kernels._neuron import add_and_test, argsort_into, fire_in_interval
from stdbp.kernels._simd import prefer_512


@njit(cache=True, nogil=True, inline="always")
def close_group(src, r, q, w_acc, t_acc, t_out, wsum, ti, e, thr, inf):
    """Add the group src[r] (spikes at ti: a weight row, or a group's sum) to field q and fire
    its outputs in (ti, e]; returns how many fired. The walk's own `add_and_test` and
    `fire_in_interval` on row q of the state. e = +inf (t_max = +inf, after the last group):
    the walk's unbounded interval, where an output fires iff its slope W is positive."""
    if e == inf:
        for j in range(t_out.shape[1]):
            gj = src[r, j]
            w_acc[q, j] += gj
            t_acc[q, j] += gj * ti
        lo = np.nextafter(ti, inf)
        fired = 0
        for j in range(t_out.shape[1]):
            if t_out[q, j] == inf and w_acc[q, j] > 0:
                t_out[q, j] = max((thr + t_acc[q, j]) / w_acc[q, j], lo)
                wsum[q, j] = w_acc[q, j]
                fired += 1
        return fired
    if add_and_test(src, r, w_acc[q], t_acc[q], t_out[q], ti, e, thr, inf):
        return fire_in_interval(w_acc[q], t_acc[q], t_out[q], wsum[q], ti, e, thr, inf)
    return 0


@njit(cache=True, nogil=True)
def conv_forward_scatter(t_in, wT, s_all, kh, kw, sh, sw, ph, pw, p, t_out, wsum, task, lo,
                         hi):
    """Samples b in [lo, hi) (see the module docstring); same outputs as
    `cpu._conv2d_forward_rows`, bit for bit."""
    prefer_512()
    n_c, height, width = t_in.shape[1], t_in.shape[2], t_in.shape[3]
    n_k, n_o = wT.shape
    oh, ow = t_out.shape[2], t_out.shape[3]
    n_pos = oh * ow
    n_flat = n_c * height * width
    thr, t_max, inf = p[0], p[1], p[2]
    dt = t_in.dtype
    gorder = np.empty(n_flat, np.int64)
    w_acc = np.empty((n_pos, n_o), dt)
    t_acc = np.empty((n_pos, n_o), dt)
    g = np.empty((n_pos, n_o), dt)
    t_f = np.empty((n_pos, n_o), dt)
    w_f = np.empty((n_pos, n_o), dt)
    g_time = np.empty(n_pos, dt)
    g_size = np.empty(n_pos, np.int64)  # inputs in the pending group (0: none)
    seen = np.empty(n_pos, np.int64)
    unfired = np.empty(n_pos, np.int64)
    for b in range(lo, hi):
        for q in range(n_pos):
            for j in range(n_o):
                w_acc[q, j] = 0.0
                t_acc[q, j] = 0.0
                t_f[q, j] = inf
                w_f[q, j] = 0.0
            g_size[q] = 0  # no pending group
            seen[q] = 0
            unfired[q] = n_o
        flat = t_in[b].reshape(n_flat)
        argsort_into(flat, gorder)
        for r in range(n_flat):
            f = gorder[r]
            ti = flat[f]
            if not ti < t_max:
                break  # the rest are at or after t_max: they add nothing
            c = f // (height * width)
            yy = (f // width) % height
            xx = f % width
            # the output rows y whose field holds row yy: 0 <= yy + ph - y*sh < kh
            y_hi = min(oh - 1, (yy + ph) // sh)
            y_lo = max(0, -((kh - 1 - yy - ph) // sh))
            x_hi = min(ow - 1, (xx + pw) // sw)
            x_lo = max(0, -((kw - 1 - xx - pw) // sw))
            for y in range(y_lo, y_hi + 1):
                dy = yy + ph - y * sh
                for x in range(x_lo, x_hi + 1):
                    q = y * ow + x
                    if unfired[q] == 0:
                        continue
                    row = (c * kh + dy) * kw + xx + pw - x * sw
                    seen[q] += 1
                    if g_size[q] and g_time[q] == ti:
                        for j in range(n_o):
                            g[q, j] += wT[row, j]
                        g_size[q] += 1
                        continue
                    if g_size[q]:
                        unfired[q] -= close_group(g, q, q, w_acc, t_acc, t_f, w_f, g_time[q], ti,
                                                  thr, inf)
                        if unfired[q] == 0:
                            g_size[q] = 0
                            continue
                    for j in range(n_o):
                        g[q, j] = wT[row, j]
                    g_time[q] = ti
                    g_size[q] = 1
        for q in range(n_pos):
            if g_size[q]:
                if seen[q] == n_k and g_size[q] > 1:
                    for j in range(n_o):
                        g[q, j] = s_all[j] - w_acc[q, j]
                close_group(g, q, q, w_acc, t_acc, t_f, w_f, g_time[q], t_max, thr, inf)
            y, x = q // ow, q % ow
            for o in range(n_o):
                t_out[b, o, y, x] = t_f[q, o]
                wsum[b, o, y, x] = w_f[q, o]
