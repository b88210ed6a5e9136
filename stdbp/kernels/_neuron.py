"""Serial numba building blocks of the CPU kernels: the event walk of one input vector, a fast
argsort, and the receptive-field gather. All are `nogil`, so `stdbp.kernels.cpu` runs them on
several threads at once; none uses numba's parallel mode (whose compile time is several seconds
per kernel and dtype, paid again on every cold cache).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stdbp.kernels._simd import prefer_512


@njit(cache=True, nogil=True)
def walk(vals, order, n_act, wT, s_all, p, w_acc, t_acc, g_acc, t_out, wsum):
    """Fire the outputs fed by the inputs vals[order[:n_act]] (sorted, all before t_max).

    wT[i, j] is the weight from input i to output j; p = [theta, t_max, +inf] in the working
    dtype. Writes t_out[j] (+inf if silent) and wsum[j] = W_C (0 if silent); w_acc, t_acc,
    g_acc are scratch of length n_out. After each group of simultaneous inputs V_j is linear
    up to e = min(next input, t_max); an unfired output whose END value reaches the threshold,
    W_j e - T_j >= theta (never true for W_j <= 0), fires at (theta + T_j) / W_j clamped into
    (t_group, e], so that the mask t_i < t_j recomputed by backward is the set used here.
    A group of m > 1 simultaneous inputs (pixel times take 256 values) is summed first,
    G = sum w, then W += G, T += t G: one accumulator per input instead of two.

    The last group, when it has m > 1 inputs and every input spikes (n_act = len(vals)), is
    not summed row by row: s_all[j] = sum_i wT[i, j] (`column_sums`, sequential in i) is W
    after it, so its sum is G = s_all - W (then W += G, T += t G as for any group). MNIST:
    80 % of the pixels are black, all at alpha, and this is their group. The rounding is
    that of a sequential sum, not bit for bit the same sum.
    """
    prefer_512()
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
    g_row = g_acc.reshape(1, n_out)  # a group's sum as row 0 of a 2-D source
    while k < n_act and remaining > 0:
        i = order[k]
        ti = vals[i]
        k0 = k
        k += 1
        if full and k < n_act and vals[order[n_act - 1]] == ti:
            for j in range(n_out):  # the last group, every input spiking: see above
                g_acc[j] = s_all[j] - w_acc[j]
            k = n_act
        elif k < n_act and vals[order[k]] == ti:
            for j in range(n_out):
                g_acc[j] = wT[i, j]
            while k < n_act and vals[order[k]] == ti:
                i2 = order[k]
                for j in range(n_out):
                    g_acc[j] += wT[i2, j]
                k += 1
        grouped = k - k0 > 1
        e = vals[order[k]] if k < n_act else t_max
        if e == inf:
            if grouped:
                for j in range(n_out):
                    w_acc[j] += g_acc[j]
                    t_acc[j] += g_acc[j] * ti
            else:
                for j in range(n_out):
                    w = wT[i, j]
                    w_acc[j] += w
                    t_acc[j] += w * ti
            # unbounded last interval: V reaches any threshold iff its slope W is positive
            lo = np.nextafter(ti, inf)
            for j in range(n_out):
                if t_out[j] == inf and w_acc[j] > 0:
                    t_out[j] = max((thr + t_acc[j]) / w_acc[j], lo)
                    wsum[j] = w_acc[j]
                    remaining -= 1
            continue
        # W += G, T += t G and the end-of-interval test in one pass; the firing pass runs
        # only when someone fires
        if grouped:
            hits = add_and_test(g_row, 0, w_acc, t_acc, t_out, ti, e, thr, inf)
        else:
            hits = add_and_test(wT, i, w_acc, t_acc, t_out, ti, e, thr, inf)
        if hits:
            remaining -= fire_in_interval(w_acc, t_acc, t_out, wsum, ti, e, thr, inf)


@njit(cache=True, nogil=True, inline="always")
def add_and_test(src, r, w_acc, t_acc, t_out, ti, e, thr, inf):
    """W += g, T += ti g for g = src[r] (a weight row, or a group's sum), and whether some
    unfired output's value at the interval's end reaches theta: W e - T >= theta. One pass
    (a bool "or" reduction vectorises at full width). Shared by both forward kernels so
    that their arithmetic is the same, operation for operation."""
    hits = False
    for j in range(t_out.shape[0]):
        g = src[r, j]
        wn = w_acc[j] + g
        tn = t_acc[j] + g * ti
        w_acc[j] = wn
        t_acc[j] = tn
        hits |= (wn * e - tn >= thr) & (t_out[j] == inf)
    return hits


@njit(cache=True, nogil=True, inline="always")
def fire_in_interval(w_acc, t_acc, t_out, wsum, ti, e, thr, inf):
    """Fire every unfired output whose END value reaches theta, W e - T >= theta (W > 0), at
    (theta + T) / W clamped into (ti, e]; returns how many fired. The branchy pass that runs
    only after a vectorised test found a hit (np.nextafter is a libm call)."""
    lo = np.nextafter(ti, inf)
    fired = 0
    for j in range(t_out.shape[0]):
        wj = w_acc[j]
        if t_out[j] == inf and wj > 0 and wj * e - t_acc[j] >= thr:
            t_out[j] = min(max((thr + t_acc[j]) / wj, lo), e)
            wsum[j] = wj
            fired += 1
    return fired


@njit(cache=True, nogil=True)
def column_sums(wT):
    """(s, finite): s[j] = sum_i wT[i, j], summed sequentially in increasing i (the order
    `walk` and the blocked kernel both rely on, so that their results agree bit for bit),
    and whether every weight is finite (the NaN check, in the same pass)."""
    s = np.zeros(wT.shape[1], wT.dtype)
    hi = np.inf
    bad = False
    for i in range(wT.shape[0]):
        for j in range(wT.shape[1]):
            x = wT[i, j]
            s[j] += x
            bad |= not (abs(x) < hi)
    return s, not bad


@njit(cache=True, nogil=True)
def sort_keys(vals):
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
def radix_order(keys, n_bytes):
    """Stable LSD radix argsort of uint64 keys, 8-bit digits; a pass whose digit is the same
    for every key moves nothing and is skipped. Dtype independent: compiled once."""
    n = keys.shape[0]
    order = np.arange(n)
    k2 = np.empty(n, np.uint64)
    o2 = np.empty(n, np.int64)
    count = np.empty(256, np.int64)
    for byte in range(n_bytes):
        shift = np.uint64(8 * byte)
        count[:] = 0
        for i in range(n):
            count[(keys[i] >> shift) & np.uint64(255)] += 1
        if count.max() == n:
            continue
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
def argsort(vals):
    """Stable argsort of a 1-D float array (see argsort_into)."""
    order = np.empty(vals.shape[0], np.int64)
    argsort_into(vals, order)
    return order


@njit(cache=True, nogil=True)
def insertion_order(keys, order, m):
    """order[:m] = stable argsort of keys[:m] by insertion (short arrays)."""
    for a in range(m):
        order[a] = a
    for a in range(1, m):
        o = order[a]
        k = keys[o]
        c = a - 1
        while c >= 0 and keys[order[c]] > k:
            order[c + 1] = order[c]
            c -= 1
        order[c + 1] = o


@njit(cache=True, nogil=True)
def argsort_into(vals, order):
    """order[:] = stable argsort of a 1-D float array: insertion sort for short arrays, radix
    sort otherwise (about 4x faster than np.argsort on a 784-pixel image).

    The inputs equal to the largest value (often most of them: black pixels at alpha, or
    silent +inf inputs) go last in index order without being sorted; only the rest is
    radix sorted. Same permutation as radix sorting everything (it is stable)."""
    n = vals.shape[0]
    if n <= 48:
        insertion_order(vals, order, n)
        return
    keys = sort_keys(vals)
    k_max = keys.max()
    m = 0
    for i in range(n):
        m += keys[i] != k_max
    sub_keys = np.empty(m, np.uint64)
    sub_idx = np.empty(m, np.int64)
    a = 0
    c = m
    for i in range(n):
        if keys[i] != k_max:
            sub_keys[a] = keys[i]
            sub_idx[a] = i
            a += 1
        else:
            order[c] = i
            c += 1
    if m <= 48:  # stable insertion sort of the few others, by key
        insertion_order(sub_keys, order, m)
        for a in range(m):
            order[a] = sub_idx[order[a]]
    else:
        perm = radix_order(sub_keys, vals.itemsize)
        for a in range(m):
            order[a] = sub_idx[perm[a]]


@njit(cache=True, nogil=True)
def active(vals, t_max):
    """argsort of vals and the number of inputs that spike before t_max (finite ones only;
    an input at exactly t_max adds nothing to V(t_max))."""
    order = argsort(vals)
    n_act = 0
    while n_act < vals.shape[0] and vals[order[n_act]] < t_max:
        n_act += 1
    return order, n_act


@njit(cache=True, nogil=True)
def gather_patch(t_in, b, y0, x0, kh, kw, vals, inf):
    """vals[c*kh*kw + dy*kw + dx] = t_in[b, c, y0+dy, x0+dx]; +inf (no spike) outside."""
    n_c, height, width = t_in.shape[1], t_in.shape[2], t_in.shape[3]
    k = 0
    if y0 >= 0 and x0 >= 0 and y0 + kh <= height and x0 + kw <= width:
        for c in range(n_c):  # interior window: no bounds tests
            for dy in range(kh):
                row = t_in[b, c, y0 + dy]
                for dx in range(kw):
                    vals[k] = row[x0 + dx]
                    k += 1
        return
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


@njit(cache=True, nogil=True, inline="always")
def scatter_add_patch(g_t, b, y0, x0, kh, kw, g_p):
    """g_t[b, c, y0+dy, x0+dx] += g_p[c*kh*kw + dy*kw + dx] inside the image (the transpose of
    `gather_patch`); in (c, dy, dx) order, one add per element."""
    n_c, height, width = g_t.shape[1], g_t.shape[2], g_t.shape[3]
    k = 0
    if y0 >= 0 and x0 >= 0 and y0 + kh <= height and x0 + kw <= width:
        for c in range(n_c):  # interior window: no bounds tests
            for dy in range(kh):
                row = g_t[b, c, y0 + dy]
                for dx in range(kw):
                    row[x0 + dx] += g_p[k]
                    k += 1
        return
    for c in range(n_c):
        for dy in range(kh):
            yy = y0 + dy
            for dx in range(kw):
                xx = x0 + dx
                if 0 <= yy < height and 0 <= xx < width:
                    g_t[b, c, yy, xx] += g_p[k]
                k += 1
