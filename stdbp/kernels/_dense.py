"""Cache-blocked numba kernels of the dense ReL-PSP layer (used by `stdbp.kernels.cpu`).

Forward: the event walk of `_neuron.walk`, but over blocks of jb <= JB outputs at a time. The
weights are packed once per call into wp[block, i, jj] = w[block * jb + jj, i] (zero padding:
a zero-weight output never fires), so that one block's slab (n_in x jb) stays in L2 while the
samples walk through it, instead of every sample re-streaming the whole matrix from L3. The
argsort of every sample is computed once and reused by every block. Per output the arithmetic
is exactly `walk`'s, in the same order, so the spike times are bit-identical to it.

Three things make the walk cheaper without changing any operation:
  * big groups of simultaneous inputs (MNIST's black pixels, 80 % of them, at alpha when
    some input never spikes) are summed for all samples at once by `group_sums`, sweeping
    the slab in L1-sized chunks; when every input spikes, the last group is s_blk - W
    from the block's column sums instead, as in `walk`;
  * end-of-interval tests are skipped up to a provable horizon (`horizon`): before it no
    output can reach theta, so the tests would all fail;
  * inside the horizon four single inputs are added per pass over the accumulators.
The kernels ask LLVM for 512-bit vectors (`_simd.prefer_512`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stdbp.kernels._neuron import add_and_test, argsort_into, fire_in_interval
from stdbp.kernels._simd import prefer_512

JB = 256  # most outputs per forward block: a 784 x 208 float32 slab is 650 KB (L2)
MIN_SLOT = 16  # groups of at least this many simultaneous inputs are summed by group_sums
CHUNK_BYTES = 24576  # rows per group_sums chunk: 24 KB of the slab (48 x 128 float32, L1)


@njit(cache=True, nogil=True)
def pack_blocks(weight):
    """wp[k, i, jj] = weight[k * jb + jj, i], zero where k * jb + jj >= n_out; the block
    width jb: the fewest blocks of at most JB outputs, equally wide, rounded up to 16 lanes
    (800 outputs -> 4 x 208, 128 -> 128, 40 -> 48)."""
    n_out, n_in = weight.shape
    n_blk = (n_out + JB - 1) // JB
    jb = ((n_out + n_blk - 1) // n_blk + 15) // 16 * 16  # balanced: 800 -> 4 x 208
    n_blk = (n_out + jb - 1) // jb
    wp = np.empty((n_blk, n_in, jb), weight.dtype)
    for k in range(n_blk):
        j1 = min(jb, n_out - k * jb)
        w_k = weight[k * jb:k * jb + j1]
        for i in range(n_in):  # contiguous writes; the j1 lines read stay in L1 across i
            for jj in range(j1):
                wp[k, i, jj] = w_k[jj, i]
            for jj in range(j1, jb):
                wp[k, i, jj] = 0.0
    return wp


@njit(cache=True, nogil=True)
def sort_samples(t_in, t_max, lo, hi):
    """Per sample b in [lo, hi): order[b - lo] (argsort), sorted times, n_act, group ends."""
    n_in = t_in.shape[1]
    orders = np.empty((hi - lo, n_in), np.int64)
    svals = np.empty((hi - lo, n_in + 1), t_in.dtype)
    n_acts = np.empty(hi - lo, np.int64)
    gends = np.empty((hi - lo, n_in + 1), np.int32)
    for b in range(lo, hi):
        row = t_in[b]
        order = orders[b - lo]
        argsort_into(row, order)
        sv = svals[b - lo]
        n_act = 0
        while n_act < n_in and row[order[n_act]] < t_max:
            sv[n_act] = row[order[n_act]]
            n_act += 1
        n_acts[b - lo] = n_act
        sv[n_act] = t_max  # sentinel: the end of the last interval
        ge = gends[b - lo]  # ge[k] = end of the group of simultaneous inputs holding k
        ge[n_act] = n_act + 1
        for k in range(n_act - 1, -1, -1):
            ge[k] = ge[k + 1] if (k + 1 < n_act and sv[k + 1] == sv[k]) else k + 1
    return orders, svals, n_acts, gends


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def horizon(w_acc, t_acc, t_out, pos, absw, e0, thr, cm):
    """A time H >= e0 before which no unfired output of the block can reach theta.

    After the inputs before e0, V_j(t) = W_j t - T_j; every later input i arrives at
    t_i >= e0 and adds w_ij (t - t_i) <= max(w_ij, 0) (t - e0), so for t >= e0
        V_j(t) <= V_j(e0) + (W_j + P_j) (t - e0),   P_j = pos[jj] = sum_i max(w_ij, 0).
    The walk tests the float value fl(W e) - T of float sums; its distance to the real
    value is below margin_j = cm * absw[jj] (absw = sum_i |w_ij|, cm = 8 (n_in + 2) eps
    (max |t| + max |t_i|), about 4x the worst-case rounding of the at most n_in sums and
    the test), so every test at e <= H with
        V_j(e0) + (W_j + P_j) (H - e0) <= theta - margin_j
    fails: skipping it changes nothing. H = e0 when some output is within the margin."""
    h = np.inf
    for jj in range(w_acc.shape[0]):
        if t_out[jj] != np.inf:
            continue  # fired
        w = np.float64(w_acc[jj])
        slack = thr - cm * absw[jj] - (w * e0 - np.float64(t_acc[jj]))
        if slack <= 0:
            return e0
        rate = w + pos[jj]
        if rate > 0:
            h = min(h, e0 + slack / rate)
    return h


@njit(nogil=True, inline="always")
def add_rows(gsum, dst, wb, idx, start, end):
    """gsum[dst] += wb[idx[k]] for k = start .. end - 1, left to right, four rows per pass
    over gsum[dst] (g + a + b + c + d left to right is the sequential sum)."""
    k = start
    while k + 4 <= end:
        i0, i1, i2, i3 = idx[k], idx[k + 1], idx[k + 2], idx[k + 3]
        for jj in range(wb.shape[1]):
            gsum[dst, jj] = gsum[dst, jj] + wb[i0, jj] + wb[i1, jj] + wb[i2, jj] + wb[i3, jj]
        k += 4
    while k < end:
        i0 = idx[k]
        for jj in range(wb.shape[1]):
            gsum[dst, jj] += wb[i0, jj]
        k += 1


@njit(nogil=True, error_model="numpy", inline="always")
def _walk_impl(sv, order, n_act, ge, wb, s_blk, n_live, p, w_acc, t_acc, t_out, wsum,
               gsum, slot_k0, slot_row, s_first, s_end, pos, absw, cm, jb):
    """`_neuron.walk` for the jb outputs of one packed block wb[i, jj] (n_live of them real).

    sv[k] = time of the k-th input in time order (sv[n_act] = t_max). Same arithmetic in the
    same order as `walk`, per output; a group of simultaneous inputs is summed four rows per
    pass (g + a + b + c + d left to right is the sequential sum). The big groups, slots
    s_first..s_end-1 starting at positions slot_k0[s], come summed already in gsum[s]. The
    last group, when every input spikes, is s_blk - W as in `walk` (s_blk: the block's
    column sums).

    End-of-interval tests are skipped up to the horizon H (see `horizon`): no output can
    reach theta there, so the tests would all fail; inside it, four single inputs are added
    per pass. pos, absw, cm: see `horizon`.
    """
    thr, inf = p[0], p[2]
    gi = gsum.shape[0] - 1  # scratch row for the sum of a small group
    full = n_act == wb.shape[0]
    for jj in range(jb):
        w_acc[jj] = 0.0
        t_acc[jj] = 0.0
        t_out[jj] = inf
        wsum[jj] = 0.0
    remaining = n_live
    k = 0
    s = s_first
    if n_act == 0:
        return
    # before the first input V = 0 everywhere and every input arrives at >= sv[0]
    h = horizon(w_acc, t_acc, t_out, pos, absw, sv[0], thr, cm)
    # rows are indexed as wb[i, jj], never sliced: a slice is a new array view whose
    # reference counting costs more than the 128-wide arithmetic on it
    while k < n_act and remaining > 0:
        if (k + 4 < n_act and sv[k + 4] <= h and ge[k] == k + 1 and ge[k + 1] == k + 2
                and ge[k + 2] == k + 3 and ge[k + 3] == k + 4):
            # four single inputs, no test due before sv[k + 4] <= h: one pass, the same
            # additions in the same order as four single-input groups
            i0, i1, i2, i3 = order[k], order[k + 1], order[k + 2], order[k + 3]
            t0, t1, t2, t3 = sv[k], sv[k + 1], sv[k + 2], sv[k + 3]
            for jj in range(jb):
                w = w_acc[jj]
                t = t_acc[jj]
                x = wb[i0, jj]
                w = w + x
                t = t + x * t0
                x = wb[i1, jj]
                w = w + x
                t = t + x * t1
                x = wb[i2, jj]
                w = w + x
                t = t + x * t2
                x = wb[i3, jj]
                w = w + x
                t = t + x * t3
                w_acc[jj] = w
                t_acc[jj] = t
            k += 4
            continue
        ti = sv[k]
        end = ge[k]
        # the summed weights of the group: row r of gsum (a precomputed slot, or the
        # scratch row gi for a small group) or of wb (one input). A flag, not an array
        # variable: assigning arrays costs two atomic reference count updates per group
        if full and end == n_act and end - k > 1:
            for jj in range(jb):  # the last group, every input spiking (see `walk`)
                gsum[gi, jj] = s_blk[jj] - w_acc[jj]
            from_wb, r = False, gi
        elif s < s_end and slot_k0[s] == k:
            from_wb, r = False, slot_row[s]
            s += 1
        elif end - k > 1:
            i0 = order[k]
            for jj in range(jb):
                gsum[gi, jj] = wb[i0, jj]
            add_rows(gsum, gi, wb, order, k + 1, end)
            from_wb, r = False, gi
        else:
            from_wb, r = True, order[k]
        k = end
        e = sv[k]
        if e == inf:
            for jj in range(jb):
                g = wb[r, jj] if from_wb else gsum[r, jj]
                w_acc[jj] += g
                t_acc[jj] += g * ti
            # unbounded last interval: every unfired output with W > 0 fires (branch free;
            # the walk ends here, so `remaining` is not needed any more)
            lo = np.nextafter(ti, inf)
            for jj in range(jb):
                wj = w_acc[jj]
                fire = (t_out[jj] == inf) & (wj > 0)
                tf = max((thr + t_acc[jj]) / wj, lo)
                t_out[jj] = tf if fire else t_out[jj]
                wsum[jj] = wj if fire else wsum[jj]
            break
        elif e <= h:  # no output can reach theta by e: accumulate only
            for jj in range(jb):
                g = wb[r, jj] if from_wb else gsum[r, jj]
                w_acc[jj] += g
                t_acc[jj] += g * ti
        else:
            # W += G, T += t G and the end-of-interval test in one pass (a bool "or"
            # reduction vectorises at full width); the firing pass runs only on a hit
            if from_wb:
                hits = add_and_test(wb, r, w_acc, t_acc, t_out, ti, e, thr, inf)
            else:
                hits = add_and_test(gsum, r, w_acc, t_acc, t_out, ti, e, thr, inf)
            if hits:
                remaining -= fire_in_interval(w_acc, t_acc, t_out, wsum, ti, e, thr, inf)
            h = horizon(w_acc, t_acc, t_out, pos, absw, e, thr, cm)


@njit(cache=True, nogil=True, error_model="numpy")
def walk_block(sv, order, n_act, ge, wb, s_blk, n_live, p, w_acc, t_acc, t_out, wsum,
               gsum, slot_k0, slot_row, s_first, s_end, pos, absw, cm):
    """`_walk_impl` on 512-bit vectors (a compile-time block width measured no faster and
    doubled the compile time)."""
    prefer_512()
    _walk_impl(sv, order, n_act, ge, wb, s_blk, n_live, p, w_acc, t_acc, t_out, wsum,
               gsum, slot_k0, slot_row, s_first, s_end, pos, absw, cm, wb.shape[1])


@njit(cache=True, nogil=True)
def find_slots(svals, n_acts, orders):
    """The groups of at least MIN_SLOT simultaneous inputs of every sample, in sample and
    time order: (sample, first position, end position) arrays and each sample's first slot.
    The last group of a sample whose every input spikes is not a slot (the walk takes it
    from the column sums)."""
    n_b = n_acts.shape[0]
    n_in = orders.shape[1]
    count = 0
    for pass_ in range(2):
        if pass_ == 1:
            slot_b = np.empty(count, np.int64)
            slot_k0 = np.empty(count, np.int64)
            slot_k1 = np.empty(count, np.int64)
            first = np.empty(n_b + 1, np.int64)
            count = 0
        for b in range(n_b):
            if pass_ == 1:
                first[b] = count
            sv = svals[b]
            k = 0
            while k < n_acts[b]:
                end = k + 1
                while end < n_acts[b] and sv[end] == sv[k]:
                    end += 1
                ascending = True  # group_sums needs the members in increasing index order
                for q in range(k + 1, end):  # (only -0.0 and +0.0 together can break it)
                    ascending &= orders[b, q - 1] < orders[b, q]
                last_full = end == n_in  # (then n_acts[b] == n_in too)
                if end - k >= MIN_SLOT and ascending and not last_full:
                    if pass_ == 1:
                        slot_b[count] = b
                        slot_k0[count] = k
                        slot_k1[count] = end
                    count += 1
                k = end
    first[n_b] = count
    return slot_b, slot_k0, slot_k1, first


@njit(cache=True, nogil=True, inline="always")
def _emit(op_src, op_dst, op_ptr, op_rows, n_op, n_rows, src, dst, mask, c, chunk):
    """Append op `gsum[dst] = gsum[src] + the rows of chunk c set in mask` (in increasing
    order); returns the new (n_op, n_rows)."""
    op_src[n_op] = src
    op_dst[n_op] = dst
    for bit in range(chunk):
        if mask >> np.uint64(bit) & np.uint64(1):
            op_rows[n_rows] = c * chunk + bit
            n_rows += 1
    n_op += 1
    op_ptr[n_op] = n_rows
    return n_op, n_rows


@njit(cache=True, nogil=True)
def share_schedule(orders, slot_b, slot_k0, slot_k1, n_in, chunk):
    """The additions of `group_sums` as ops (src, dst, rows), sharing the work of slots
    with the same members so far.

    A slot's sum is the sequential sum of its rows in increasing index; the rows are swept
    in chunks. Slots whose members agree on every chunk so far have bit-identical running
    sums (the same additions in the same order), so they form a class and share one row of
    gsum; a class splits when its members differ within a chunk. (MNIST: the first rows of
    the image are black in nearly every sample.) Classes are contiguous in `perm`; each is
    sorted by its chunk mask in turn, so that equal-mask runs are contiguous too. Op o: gsum[dst] = (gsum[src], or 0 for
    src < 0) + the rows op_rows[op_ptr[o]:op_ptr[o + 1]] in order. A run whose first slot
    owns the class row updates it in place, after the class's other runs read it (a run
    with no member in the chunk then gets a copy of the old row first).
    Returns (op_src, op_dst, op_ptr, op_rows, final_row): slot q's sum ends in
    gsum[final_row[q]]."""
    n_s = slot_b.shape[0]
    n_c = (n_in + chunk - 1) // chunk
    masks = np.zeros((n_c, n_s), np.uint64)
    n_members = 0
    for q in range(n_s):
        b = slot_b[q]
        n_members += slot_k1[q] - slot_k0[q]
        c = 0
        c0 = 0
        for k in range(slot_k0[q], slot_k1[q]):
            i = orders[b, k]  # increasing: the chunk only moves forward (no division)
            while i >= c0 + chunk:
                c += 1
                c0 += chunk
            masks[c, q] |= np.uint64(1) << np.uint64(i - c0)
    perm = np.arange(n_s)
    rep = np.full(n_s, -1, np.int64)
    new_rep = np.empty(n_s, np.int64)
    n_max = n_s * n_c
    op_src = np.empty(n_max, np.int64)
    op_dst = np.empty(n_max, np.int64)
    op_ptr = np.empty(n_max + 1, np.int64)
    op_rows = np.empty(n_members, np.int64)
    n_op = 0
    n_rows = 0
    op_ptr[0] = 0
    for c in range(n_c):
        a = 0
        while a < n_s:  # one class: equal rep, contiguous in perm
            rho = rep[perm[a]]
            e = a
            while e < n_s and rep[perm[e]] == rho:
                e += 1
            for x in range(a + 1, e):  # stable insertion sort of the class by this mask
                q = perm[x]
                m = masks[c, q]
                y = x - 1
                while y >= a and masks[c, perm[y]] > m:
                    perm[y + 1] = perm[y]
                    y -= 1
                perm[y + 1] = q
            d0 = -1
            d1 = -1
            z0 = -1
            z1 = -1
            r = a
            while r < e:  # runs of equal mask within the class
                m = masks[c, perm[r]]
                r2 = r
                while r2 < e and masks[c, perm[r2]] == m:
                    r2 += 1
                u = perm[r]
                if m == 0:
                    z0, z1 = r, r2  # keeps the class row (at most one such run)
                    for x in range(r, r2):
                        new_rep[perm[x]] = rho
                elif u == rho:
                    d0, d1 = r, r2  # in place: after the other runs read rho
                else:
                    for x in range(r, r2):
                        new_rep[perm[x]] = u
                    n_op, n_rows = _emit(op_src, op_dst, op_ptr, op_rows, n_op, n_rows, rho, u,
                                         m, c, chunk)
                r = r2
            if d0 >= 0:
                if z0 >= 0:  # the no-member run still needs the old row: copy it first
                    u = perm[z0]
                    for x in range(z0, z1):
                        new_rep[perm[x]] = u
                    n_op, n_rows = _emit(op_src, op_dst, op_ptr, op_rows, n_op, n_rows, rho, u,
                                         np.uint64(0), c, chunk)
                m = masks[c, perm[d0]]
                for x in range(d0, d1):
                    new_rep[perm[x]] = rho
                n_op, n_rows = _emit(op_src, op_dst, op_ptr, op_rows, n_op, n_rows, rho, rho,
                                     m, c, chunk)
            a = e
        for q in range(n_s):
            rep[q] = new_rep[q]
    return op_src[:n_op], op_dst[:n_op], op_ptr[:n_op + 1], op_rows[:n_rows], rep


@njit(cache=True, nogil=True)
def group_sums(wb, op_src, op_dst, op_ptr, op_rows, gsum):
    """Run the ops of `share_schedule` on one block: gsum rows = sums of rows of wb, each
    summed left to right in increasing row index exactly as the walk would. Starting from
    0 instead of the first row changes at most the sign of a zero sum, which the walk
    cannot see (W += +-0 and T += +-0 leave both unchanged). The rows of an op lie in one
    L1-sized chunk of the slab, and ops run chunk by chunk."""
    prefer_512()
    jb = wb.shape[1]
    for o in range(op_src.shape[0]):
        src, dst = op_src[o], op_dst[o]
        if src < 0:
            for jj in range(jb):
                gsum[dst, jj] = 0.0
        elif src != dst:
            for jj in range(jb):
                gsum[dst, jj] = gsum[src, jj]
        add_rows(gsum, dst, wb, op_rows, op_ptr[o], op_ptr[o + 1])


@njit(cache=True, nogil=True)
def dense_forward_rows(t_in, wp, p, t_out, wsum, task, lo, hi):
    """Samples [lo, hi), all outputs: blocks outer, samples inner (the slab stays in L2)."""
    n_out = t_out.shape[1]
    orders, svals, n_acts, gends = sort_samples(t_in, p[1], lo, hi)
    slot_b, slot_k0, slot_k1, first = find_slots(svals, n_acts, orders)
    dt = t_in.dtype
    jb = wp.shape[2]
    gsum = np.empty((slot_b.shape[0] + 1, jb), dt)  # + the walk's scratch row
    chunk = min(64, max(8, CHUNK_BYTES // (jb * wp.itemsize)))  # rows of a 64-bit mask
    op_src, op_dst, op_ptr, op_rows, final_row = share_schedule(
        orders, slot_b, slot_k0, slot_k1, wp.shape[1], chunk)
    w_acc = np.empty(jb, dt)
    t_acc = np.empty(jb, dt)
    t_blk = np.empty(jb, dt)
    w_blk = np.empty(jb, dt)
    n_in = wp.shape[1]
    pos = np.empty(jb)
    absw = np.empty(jb)
    s_blk = np.empty(jb, dt)
    cms = np.empty(hi - lo)  # margin factor of `horizon` per sample
    eps = np.finfo(dt).eps
    t_lim = abs(p[1]) if p[1] < np.inf else 0.0
    for b in range(hi - lo):
        n_act = n_acts[b]
        t_abs = max(abs(svals[b, 0]), abs(svals[b, n_act - 1])) if n_act else 0.0
        cms[b] = 8.0 * (n_in + 2) * eps * (2.0 * t_abs + t_lim)
    for k in range(wp.shape[0]):
        j0 = k * jb
        n_live = min(jb, n_out - j0)
        wb = wp[k]
        pos[:] = 0.0
        absw[:] = 0.0
        s_blk[:] = 0.0
        for i in range(n_in):
            for jj in range(jb):
                s_blk[jj] += wb[i, jj]  # sequential in i, as `column_sums`
                x = np.float64(wb[i, jj])
                pos[jj] += max(x, 0.0)
                absw[jj] += abs(x)
        group_sums(wb, op_src, op_dst, op_ptr, op_rows, gsum)
        for b in range(lo, hi):
            walk_block(svals[b - lo], orders[b - lo], n_acts[b - lo], gends[b - lo], wb, s_blk,
                       n_live, p, w_acc, t_acc, t_blk, w_blk, gsum, slot_k0, final_row,
                       first[b - lo], first[b - lo + 1], pos, absw, cms[b - lo])
            for jj in range(n_live):
                t_out[b, j0 + jj] = t_blk[jj]
                wsum[b, j0 + jj] = w_blk[jj]
