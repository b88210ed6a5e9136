"""Conv backward over the fired outputs only (`conv_backward_fired`, used by
`stdbp.kernels.cpu.conv2d_backward_counted`).

Eq. 13-14 for one receptive field: with delta_o = g_o / W_o for every output o that fired (0
otherwise), dL/dw[o, k] += delta_o (min(t_k, t_o) - t_o) and dL/dt_k += sum_o w[o, k] delta_o
[t_k < t_o]. After a min-pool only the earliest spike of each window gets a gradient, so in
the paper's CNN a field of conv2 has about 1.6 of its 32 outputs with delta != 0, and one of
conv1 has none about half the time. The per-field kernel (`cpu._conv2d_backward_rows`) gathers
the field and clears and scatters its C*kh*kw input gradients whatever the deltas are; here
the deltas are read first, a field without any is skipped before its gather, and a field with
one writes its input gradients without the clearing pass. The arithmetic is the per-field
kernel's, operation for operation and in the same order (every g_w and g_t element receives
the same sums in the same order), so the gradients are bit for bit the same.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stdbp.kernels._neuron import gather_patch, scatter_add_patch


@njit(cache=True, nogil=True)
def conv_backward_fired(delta, t_in, w2, kh, kw, sh, sw, ph, pw, t_out, g_t, g_w_parts, need_t,
                        task, lo, hi):
    """Samples b in [lo, hi): rows g_t[b] are this task's; weight gradient into its own
    g_w_parts[task] (summed by the caller). Same outputs as `cpu._conv2d_backward_rows`."""
    n_o, n_k = w2.shape
    oh, ow = t_out.shape[2], t_out.shape[3]
    g_w = g_w_parts[task]
    vals = np.empty(n_k, dtype=t_in.dtype)
    g_p = np.empty(n_k, dtype=t_in.dtype)
    fired = np.empty(n_o, np.int64)  # this field's outputs with a delta, in increasing o
    f_d = np.empty(n_o, dtype=t_in.dtype)  # their deltas and spike times
    f_t = np.empty(n_o, dtype=t_in.dtype)
    zero = t_in.dtype.type(0.0)
    inf = np.inf
    for b in range(lo, hi):
        for y in range(oh):
            for x in range(ow):
                m = 0
                for o in range(n_o):
                    d = delta[b, o, y, x]
                    if d != 0:
                        fired[m] = o
                        f_d[m] = d
                        f_t[m] = t_out[b, o, y, x]
                        m += 1
                if m == 0:
                    continue  # nothing flows back through this field
                y0, x0 = y * sh - ph, x * sw - pw
                gather_patch(t_in, b, y0, x0, kh, kw, vals, inf)
                for a in range(m):
                    o, d, tj = fired[a], f_d[a], f_t[a]
                    for k in range(n_k):
                        g_w[o, k] += (min(vals[k], tj) - tj) * d
                if not need_t:
                    continue
                o, d, tj = fired[0], f_d[0], f_t[0]
                for k in range(n_k):  # 0 + first term: the per-field kernel's sum, unrounded
                    g_p[k] = zero + w2[o, k] * d * (vals[k] < tj)
                for a in range(1, m):
                    o, d, tj = fired[a], f_d[a], f_t[a]
                    for k in range(n_k):
                        g_p[k] += w2[o, k] * d * (vals[k] < tj)
                scatter_add_patch(g_t, b, y0, x0, kh, kw, g_p)
