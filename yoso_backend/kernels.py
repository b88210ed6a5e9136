"""The emulator's compiled kernel: one frame = data path (integer, bit-exact) + timing (cycles).

Data path: docs/yoso-spec.md section 4, on one global time base. At every step k, for every layer
c (in order) with ``k <= window_c``:

    1. integrate  V_j <- sat_V(V_j + A_j)         every neuron not fired       (sweep)
    2. fire       V_j >= theta_j -> fires at k    (not in softmax mode for the output layer)
    3. deliver    the spikes with step k into layer c (inputs, or layer c-1's rule-2 spikes),
                  ascending input index i:  A_j <- sat_A(A_j + w_ji)  for every neuron j of each
                  destination PE (fired or not)

Exactness without a loop over idle steps: between two deliveries A is constant, and with a
constant A the per-step saturating sum equals one clipped product, ``sat_V(V + n A)`` (the sum is
monotone in n). So each PE keeps ``synced[p]`` (the step through which its V is integrated) and
``next_fire[p]``: for every unfired neuron with A > 0, the first step at which
``V + n A >= theta``, ``n = ceil((theta - V) / A)`` (upper saturation never delays a fire:
theta <= V_max). A PE's neurons are touched only at deliveries and at its predicted fire steps; a
``record`` run integrates every step instead, and the tests check both give the same bits.

Timing (cycles; it reads the events but never changes them). A global clock; step k starts at
S_k after a barrier. Every PE of an active layer sweeps its neurons, one per cycle per lane, from
S_k; a neuron that fires emits its packets at its sweep slot. A spike becomes one packet per
destination PE (X-Y route, per-hop latency, link contention, router input buffers of
``router.fifo_depth`` flits with credit back-pressure: ``noc.py``); the destination's
router-interface FIFO of ``core.fifo_depth`` packets blocks the ejection port when full; its load stage takes a packet at
``max(in FIFO, load free, own sweep done)``, spends ``load_cycles + ceil(n / lanes)`` cycles issuing
reads (decoupled access-execute: compute and store overlap the next packet's loads) and the last
write lands ``pipe_cycles`` later. ``S_{k+1} = max(end of every PE's work, last result flit out of
the mesh) + step_barrier_cycles``. A step with no packets costs ``max_p(sweep) + barrier``: runs of
such steps (the spec lets a controller skip them; this model charges them, as a chip that sweeps
every step) are added in one go, with their SRAM and adder counts.

Modelling choices (assumptions, not YOSO facts; each can be revisited without touching the data):
- Packets claim links in the order the data path produces them (a step's spikes by ascending
  source index, then destination order), each at its own injection cycle: a fixed-priority
  arbitration rather than a cycle-by-cycle simulation of every router, so two packets that meet
  are ordered by that sequence, not by who came first. Latency, contention, credits and
  back-pressure are otherwise exact for that order.
- Counters per PE: a delivered packet costs n weight reads, n A reads, n adds, n A writes (every
  neuron of the PE, fired or not: spec section 8), 2 router-FIFO operations and 2n compute->store
  FIFO operations; a sweep costs, per unfired neuron, one A read, one neuron-word read (V and
  theta), one add and one neuron-word write, and one cycle per lane for every neuron; a firing
  neuron reads its flit template and its destination words from the spike-address SRAM.
- The host injects one flit per cycle; result flits leave the mesh at the host port at once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from yoso_backend import counters as CN
from yoso_backend.noc import N_PORTS, eject, leave, n_links, route_buffered

# cfg indices (int64 vector, so the kernel signature stays short)
(CFG_A_LO, CFG_A_HI, CFG_V_LO, CFG_V_HI, CFG_WIDTH, CFG_NPE, CFG_HOP, CFG_FLITS, CFG_FIFO, CFG_DECODE,
 CFG_PIPE, CFG_SWEEP_LAT, CFG_STEP_OVH, CFG_HOST, CFG_SOFTMAX, CFG_EARLY_STOP, CFG_RECORD, CFG_LANES,
 CFG_RBUF) = range(19)
N_CFG = 19

NEVER = -1
FAR = 1 << 62  # "no predicted fire"
DENSE, CONV, POOL = 0, 1, 2  # layer kinds (artifact.LAYER_KINDS order)

_BUSY, _W_R, _A_R, _A_W, _V_R, _V_W, _S_R, _ADDS, _FIFO = (
    CN.BUSY, CN.W_R, CN.A_R, CN.A_W, CN.V_R, CN.V_W, CN.S_R, CN.ADDS, CN.FIFO)
_PK_INJ, _PK_RX, _FLIT_HOPS, _ROUTER, _NOC_STALL, _FIFO_STALL, _SPIKES = (
    CN.PK_INJ, CN.PK_RX, CN.FLIT_HOPS, CN.ROUTER, CN.NOC_STALL, CN.FIFO_STALL, CN.SPIKES)


@njit(cache=True, inline="always")
def _send(src, inj, dst, t_inj, issue, hop, flits, pipe, n_pe, link_free, link_flits, ring, ring_pos, load_free,
          done, rx, cnt, links, n_hops, buf, bpos):
    """Route one spike packet from router ``src`` (entering by link ``inj``) to ``dst`` and let its
    load stage take it (``issue`` cycles). Per-packet PE counters are booked at the end of the frame
    from ``rx`` (packets received per PE); stalls here."""
    t_ready, hops, stall, last = route_buffered(src * n_pe + dst, t_inj, hop, flits, link_free, link_flits, inj,
                                                links, n_hops, buf, bpos)
    # FIFO room: the packet `depth` places earlier in this FIFO must have left it (started loading);
    # the ring starts at 0, so the first `depth` packets always find room
    slot = ring_pos[dst]
    t_fifo, port_stall, fifo_stall = eject(dst * N_PORTS, t_ready, ring[dst, slot], hop, flits, link_free,
                                           link_flits)
    leave(last, t_fifo - hop, buf, bpos, buf.shape[1])
    start = max(t_fifo, load_free[dst])
    ring[dst, slot] = start
    slot += 1
    ring_pos[dst] = 0 if slot == ring.shape[1] else slot
    load_free[dst] = start + issue
    fin = start + issue + pipe
    if fin > done[dst]:
        done[dst] = fin
    rx[dst] += 1
    cnt[dst, _BUSY] += issue
    cnt[src, _FLIT_HOPS] += hops * flits
    cnt[src, _NOC_STALL] += stall + port_stall
    cnt[dst, _FIFO_STALL] += fifo_stall
    return fin


@njit(cache=True, inline="always")
def _to_host(src, t_inj, cfg, link_free, link_flits, cnt, links, n_hops, buf, bpos):
    """Route a result flit (output spike or potential) to the host on the west port of router
    ``cfg[CFG_HOST]``; the host drains it at once. Returns the cycle it leaves the mesh."""
    hop = cfg[CFG_HOP]
    flits = cfg[CFG_FLITS]
    n_pe = cfg[CFG_NPE]
    t_ready, hops, stall, last = route_buffered(src * n_pe + cfg[CFG_HOST], t_inj, hop, flits, link_free,
                                                link_flits, n_pe * N_PORTS + src, links, n_hops, buf, bpos)
    t, port_stall, _ = eject(n_pe * (N_PORTS + 1) + 1, t_ready, 0, hop, flits, link_free, link_flits)
    leave(last, t - hop, buf, bpos, buf.shape[1])
    cnt[src, _PK_INJ] += 1
    cnt[src, _FLIT_HOPS] += hops * flits
    cnt[src, _NOC_STALL] += stall + port_stall
    return t


@njit(cache=True, inline="always")
def _sync(p, k, pe_lo, pe_hi, n_in, fire, A, V, synced, v_lo, v_hi):
    """Integrate PE p's unfired neurons through step k with their constant A (no fire possible)."""
    n = k - synced[p]
    if n <= 0:
        return
    for j in range(pe_lo[p], pe_hi[p]):
        if fire[j] == NEVER:
            a = j - n_in
            v = V[a] + A[a] * n
            V[a] = min(max(v, v_lo), v_hi)
    synced[p] = k


@njit(cache=True, inline="always")
def _predict(p, pe_lo, pe_hi, n_in, fire, A, V, theta, synced, next_fire):
    """Earliest step > synced[p] at which an unfired neuron of p reaches theta with its current A."""
    k = synced[p]
    best = FAR
    for j in range(pe_lo[p], pe_hi[p]):
        if fire[j] == NEVER:
            a = j - n_in
            if A[a] > 0:
                s = k + (theta[a] - V[a] + A[a] - 1) // A[a]
                if s < best:
                    best = s
    next_fire[p] = best


@njit(cache=True)
def _sort_events(ev, ev_t, lo, hi):
    """Insertion sort of events lo..hi-1 by node index (a pool layer's spikes of one step arrive
    in delivery order; the next layer takes them in ascending index, rule 3)."""
    for a in range(lo + 1, hi):
        j, t = ev[a], ev_t[a]
        b = a - 1
        while b >= lo and ev[b] > j:
            ev[b + 1] = ev[b]
            ev_t[b + 1] = ev_t[b]
            b -= 1
        ev[b + 1] = j
        ev_t[b + 1] = t


@njit(cache=True)
def frame_kernel(in_step, cfg, window, dense, kind, links, n_hops, node_off, node_pe, pe_lo, pe_hi, pe_layer,
                 layer_pe_off, layer_pes, dests, in_dests, nd0, nd1, seg_base, seg_lo, seg_hi, tgt_a, tgt_w, w_flat,
                 w_off, theta, fire, v_out, cnt, step_start, v_trace):
    """Run one frame. ``in_step[n_in]``: input spike steps (-1 = silent); ``window[c]``: last step of
    compute layer c (index 0 unused); ``kind[c]``: DENSE, CONV or POOL. A node's packets go to
    ``dests[nd0[i]:nd1[i]]`` (inputs: ``in_dests``); into a conv or pool layer, the packet to its
    d-th destination updates targets ``tgt_a/tgt_w[seg_lo[s]:seg_hi[s]]``, s = seg_base[i] + d.
    Outputs in place: ``fire[n_nodes]`` (fire step or -1; inputs included), ``v_out[n_out]`` (output
    V at the end), ``cnt[n_pe, K]``; with record, ``step_start[k]`` and ``v_trace[k, n_out]`` for
    every step run. Returns ``(cycles, steps_run)``."""
    n_pe = cfg[CFG_NPE]
    L = node_off.shape[0] - 2
    n_nodes = node_off[L + 1]
    n_in = node_off[1]
    a_lo, a_hi, v_lo, v_hi = cfg[CFG_A_LO], cfg[CFG_A_HI], cfg[CFG_V_LO], cfg[CFG_V_HI]
    softmax = cfg[CFG_SOFTMAX] == 1
    record = cfg[CFG_RECORD] == 1
    early = cfg[CFG_EARLY_STOP] == 1 and not softmax
    lanes = cfg[CFG_LANES]
    sweep_lat = cfg[CFG_SWEEP_LAT]
    ovh = cfg[CFG_STEP_OVH]
    n_neur = n_nodes - n_in
    out_off = node_off[L]
    n_out = n_nodes - out_off
    k_end = 0
    for c in range(1, L + 1):
        k_end = max(k_end, window[c])
    A = np.zeros(n_neur, np.int64)
    V = np.zeros(n_neur, np.int64)
    for i in range(n_nodes):
        fire[i] = NEVER
    # ---- events per node layer in (step, index) order; inputs by a counting sort ------------------
    ev = np.empty(n_nodes, np.int64)
    ev_t = np.zeros(n_nodes, np.int64)       # emission cycle
    ev_n = np.zeros(L + 1, np.int64)
    ptr = np.zeros(L + 1, np.int64)
    w1 = window[1]
    counts = np.zeros(w1 + 2, np.int64)
    for i in range(n_in):
        s = in_step[i]
        if 0 <= s <= w1:  # later spikes are never delivered (spec section 4)
            counts[s + 1] += 1
    for s in range(w1 + 1):
        counts[s + 1] += counts[s]
    for i in range(n_in):
        s = in_step[i]
        if s >= 0:
            fire[i] = s
            if s <= w1:
                ev[counts[s]] = i
                counts[s] += 1
    ev_n[0] = counts[w1]
    # ---- per-PE state ------------------------------------------------------------------------------
    synced = np.zeros(n_pe, np.int64)
    next_fire = np.full(n_pe, FAR, np.int64)
    active = np.zeros(n_pe, np.int64)       # unfired neurons
    sweep_cyc = np.zeros(n_pe, np.int64)
    syn = np.zeros(n_pe, np.int64)          # neurons updated by received packets (conv)
    for p in range(n_pe):
        active[p] = pe_hi[p] - pe_lo[p]
        if pe_layer[p] > 0 and kind[pe_layer[p]] != POOL:  # a pool neuron keeps no potential: no sweep
            sweep_cyc[p] = (pe_hi[p] - pe_lo[p] + lanes - 1) // lanes
    layer_sweep = np.zeros(L + 1, np.int64)  # longest sweep of a layer's PEs, incl. pipeline fill
    for c in range(1, L + 1):
        for q in range(layer_pe_off[c], layer_pe_off[c + 1]):
            if kind[c] != POOL:
                layer_sweep[c] = max(layer_sweep[c], sweep_cyc[layer_pes[q]] + sweep_lat)
    dirty = np.zeros(n_pe, np.bool_)
    # ---- timing state ------------------------------------------------------------------------------
    n_l = n_links(n_pe)
    link_free = np.zeros(n_l, np.int64)
    link_flits = np.zeros(n_l, np.int64)
    depth = cfg[CFG_FIFO]
    ring = np.zeros((n_pe, depth), np.int64)
    ring_pos = np.zeros(n_pe, np.int64)
    buf = np.zeros((n_l, cfg[CFG_RBUF]), np.int64)  # router input buffers (credits)
    bpos = np.zeros(n_l, np.int64)
    rx = np.zeros(n_pe, np.int64)
    hop = cfg[CFG_HOP]
    flits = cfg[CFG_FLITS]
    pipe = cfg[CFG_PIPE]
    issue_cyc = np.zeros(n_pe, np.int64)
    for p in range(n_pe):
        issue_cyc[p] = cfg[CFG_DECODE] + (pe_hi[p] - pe_lo[p] + lanes - 1) // lanes
    load_free = np.zeros(n_pe, np.int64)
    done = np.zeros(n_pe, np.int64)
    now = 0
    steps_run = 0
    k = 0
    while k <= k_end:
        # ---- a run of quiet steps: no delivery, no fire, nothing recorded ------------------------
        if not record:
            nk = k_end + 1
            for c in range(1, L + 1):
                if k > window[c]:
                    continue
                if ptr[c - 1] < ev_n[c - 1]:
                    s = fire[ev[node_off[c - 1] + ptr[c - 1]]]
                    if s <= window[c] and s < nk:
                        nk = s
                for q in range(layer_pe_off[c], layer_pe_off[c + 1]):
                    s = next_fire[layer_pes[q]]
                    if s <= window[c] and s < nk:
                        nk = s
            if nk > k:
                t = k
                while t < nk:  # split at window ends: the set of sweeping layers changes there
                    seg = nk
                    q_len = 0
                    for c in range(1, L + 1):
                        if t <= window[c]:
                            seg = min(seg, window[c] + 1)
                            q_len = max(q_len, layer_sweep[c])
                    n = seg - t
                    for c in range(1, L + 1):
                        if t <= window[c] and kind[c] != POOL:
                            for q in range(layer_pe_off[c], layer_pe_off[c + 1]):
                                p = layer_pes[q]
                                cnt[p, _BUSY] += n * sweep_cyc[p]
                                cnt[p, _A_R] += n * active[p]
                                cnt[p, _V_R] += n * active[p]
                                cnt[p, _V_W] += n * active[p]
                                cnt[p, _ADDS] += n * active[p]
                    now += n * (q_len + ovh)
                    steps_run += n
                    t = seg
                k = nk
                continue
        # ---- a full step -------------------------------------------------------------------------
        if record:
            step_start[k] = now
        steps_run += 1
        host_done = now  # the barrier also waits for result flits to leave the mesh
        for p in range(n_pe):
            done[p] = now
            load_free[p] = now
        for c in range(1, L + 1):
            if k > window[c]:
                continue
            fires_c = not (softmax and c == L)
            pool = kind[c] == POOL
            # (1) integrate and (2) fire: every PE of layer c sweeps (a pool layer has nothing to sweep)
            for q in range(layer_pe_off[c] if not pool else 0, layer_pe_off[c + 1] if not pool else 0):
                p = layer_pes[q]
                j0 = pe_lo[p]
                sweep_end = now + sweep_cyc[p] + sweep_lat
                done[p] = sweep_end
                load_free[p] = sweep_end
                cnt[p, _BUSY] += sweep_cyc[p]
                cnt[p, _A_R] += active[p]
                cnt[p, _V_R] += active[p]
                cnt[p, _V_W] += active[p]
                cnt[p, _ADDS] += active[p]
                if not (record or next_fire[p] == k):
                    continue
                n = k - synced[p]
                best = FAR
                for j in range(j0, pe_hi[p]):
                    if fire[j] != NEVER:
                        continue
                    a = j - n_in
                    v = min(max(V[a] + A[a] * n, v_lo), v_hi)
                    V[a] = v
                    if fires_c and v >= theta[a]:
                        fire[j] = k
                        active[p] -= 1
                        t_emit = now + sweep_lat + (j - j0) // lanes
                        e = node_off[c] + ev_n[c]
                        ev[e] = j
                        ev_t[e] = t_emit
                        ev_n[c] += 1
                        cnt[p, _SPIKES] += 1
                        cnt[p, _S_R] += 1 + nd1[j] - nd0[j]
                        for d in range(nd0[j], nd1[j]):
                            if dests[d] < 0:
                                t_out = _to_host(p, t_emit, cfg, link_free, link_flits, cnt, links, n_hops, buf, bpos)
                                if t_out > host_done:
                                    host_done = t_out
                    elif A[a] > 0:
                        s = k + (theta[a] - v + A[a] - 1) // A[a]
                        if s < best:
                            best = s
                synced[p] = k
                next_fire[p] = best if fires_c else FAR
            # (3) deliver the spikes of step k into layer c, ascending input index
            lo_prev = node_off[c - 1]
            n_c = node_off[c + 1] - node_off[c]
            wo = w_off[c - 1] - node_off[c]
            any_dirty = False
            whole = dense[c] == 1
            sparse = kind[c] != DENSE
            ev_first = ev_n[c]  # a pool layer's spikes of this step start here
            while ptr[c - 1] < ev_n[c - 1]:
                e = lo_prev + ptr[c - 1]
                i = ev[e]
                if fire[i] != k:
                    break
                ptr[c - 1] += 1
                d0 = nd0[i]
                d1 = nd1[i]
                if c == 1:
                    src = cfg[CFG_HOST]
                    inj = n_pe * (N_PORTS + 1)  # the host's input port
                    t_inj = now
                else:
                    src = node_pe[i]
                    inj = n_pe * N_PORTS + src
                    t_inj = ev_t[e]
                if sparse:
                    for d in range(d0, d1):
                        p = in_dests[d] if c == 1 else dests[d]
                        if c > 1:
                            cnt[src, _PK_INJ] += 1
                        sg = seg_base[i] + d - d0
                        t0 = seg_lo[sg]
                        t1 = seg_hi[sg]
                        issue = cfg[CFG_DECODE] + (1 if pool else (t1 - t0 + lanes - 1) // lanes)
                        fin = _send(src, inj, p, t_inj, issue, hop, flits, pipe, n_pe, link_free, link_flits, ring,
                                    ring_pos, load_free, done, rx, cnt, links, n_hops, buf, bpos)
                        if pool:  # rule 4b: the first delivered spike of a window fires the pooled neuron
                            for t in range(t0, t1):
                                j = tgt_a[t] + n_in
                                if fire[j] == NEVER:
                                    fire[j] = k
                                    e2 = node_off[c] + ev_n[c]
                                    ev[e2] = j
                                    ev_t[e2] = fin
                                    ev_n[c] += 1
                                    cnt[p, _SPIKES] += 1
                                    cnt[p, _V_W] += 1
                                    cnt[p, _S_R] += 1 + nd1[j] - nd0[j]
                            continue
                        syn[p] += t1 - t0
                        if not dirty[p]:
                            _sync(p, k, pe_lo, pe_hi, n_in, fire, A, V, synced, v_lo, v_hi)
                            dirty[p] = True
                            any_dirty = True
                        for t in range(t0, t1):
                            a = tgt_a[t]
                            A[a] = min(max(A[a] + tgt_w[t], a_lo), a_hi)
                    continue
                row = wo + (i - lo_prev) * n_c
                if whole and not any_dirty:
                    # every source feeds every PE of the layer: integrate all of it through k once
                    for q in range(layer_pe_off[c], layer_pe_off[c + 1]):
                        p = layer_pes[q]
                        _sync(p, k, pe_lo, pe_hi, n_in, fire, A, V, synced, v_lo, v_hi)
                        dirty[p] = True
                    any_dirty = True
                for d in range(d0, d1):
                    p = in_dests[d] if c == 1 else dests[d]
                    if p < 0:
                        continue
                    if c > 1:
                        cnt[src, _PK_INJ] += 1
                    j0 = pe_lo[p]
                    j1 = pe_hi[p]
                    syn[p] += j1 - j0
                    _send(src, inj, p, t_inj, issue_cyc[p], hop, flits, pipe, n_pe, link_free, link_flits, ring,
                          ring_pos, load_free, done, rx, cnt, links, n_hops, buf, bpos)
                    if whole:
                        continue
                    if not dirty[p]:
                        _sync(p, k, pe_lo, pe_hi, n_in, fire, A, V, synced, v_lo, v_hi)
                        dirty[p] = True
                        any_dirty = True
                    for j in range(j0, j1):
                        a = j - n_in
                        A[a] = min(max(A[a] + w_flat[row + j], a_lo), a_hi)
                if whole:  # the same updates, as one contiguous row (same order per neuron)
                    a0 = node_off[c] - n_in
                    r0 = row + node_off[c]
                    for x in range(n_c):
                        v = A[a0 + x] + w_flat[r0 + x]
                        A[a0 + x] = min(max(v, a_lo), a_hi)
            if pool and ev_n[c] - ev_first > 1:
                _sort_events(ev, ev_t, node_off[c] + ev_first, node_off[c] + ev_n[c])
            if any_dirty:
                for q in range(layer_pe_off[c], layer_pe_off[c + 1]):
                    p = layer_pes[q]
                    if dirty[p]:
                        dirty[p] = False
                        if fires_c:
                            _predict(p, pe_lo, pe_hi, n_in, fire, A, V, theta, synced, next_fire)
        if record:
            for o in range(n_out):
                v_trace[k, o] = V[out_off - n_in + o]
        nxt = host_done
        for p in range(n_pe):
            nxt = max(nxt, done[p], load_free[p])
        now = nxt + ovh
        k += 1
        if early and ev_n[L] > 0:
            break
    # ---- end of frame: potentials through the last step, softmax read-out -------------------------
    k_last = k - 1
    for c in range(1, L + 1):
        for q in range(layer_pe_off[c], layer_pe_off[c + 1]):
            _sync(layer_pes[q], min(k_last, window[c]), pe_lo, pe_hi, n_in, fire, A, V, synced, v_lo, v_hi)
    for o in range(n_out):
        v_out[o] = V[out_off - n_in + o]
    if softmax:
        last = now
        for q in range(layer_pe_off[L], layer_pe_off[L + 1]):
            p = layer_pes[q]
            for j in range(pe_lo[p], pe_hi[p]):
                cnt[p, _V_R] += 1
                cnt[p, _S_R] += 1
                last = max(last, _to_host(p, now + (j - pe_lo[p]) // lanes, cfg, link_free, link_flits, cnt,
                                             links, n_hops, buf, bpos))
        now = last
    if record:
        step_start[steps_run] = now
    for p in range(n_pe):
        fan = syn[p]  # neurons updated by this PE's packets (dense: all of them, per packet)
        cnt[p, _PK_RX] += rx[p]
        cnt[p, _FIFO] += 2 * rx[p] + 2 * fan  # router FIFO push+pop; compute->store FIFO per neuron
        if pe_layer[p] > 0 and kind[pe_layer[p]] == POOL:
            cnt[p, _V_R] += rx[p]  # a pool packet reads its neuron's fired bit (the fire writes it)
        cnt[p, _W_R] += fan
        cnt[p, _A_R] += fan
        cnt[p, _A_W] += fan
        cnt[p, _ADDS] += fan
        s = 0
        for o in range(N_PORTS):
            s += link_flits[p * N_PORTS + o]
        cnt[p, _ROUTER] += s
    cnt[cfg[CFG_HOST], _ROUTER] += link_flits[n_pe * (N_PORTS + 1) + 1]  # the host's output port
    return now, steps_run


@njit(cache=True, nogil=True)
def run_frames(lo, hi, in_steps, cfg, window, dense, kind, links, n_hops, node_off, node_pe, pe_lo, pe_hi, pe_layer,
               layer_pe_off, layer_pes, dests, in_dests, nd0, nd1, seg_base, seg_lo, seg_hi, tgt_a, tgt_w, w_flat,
               w_off, theta, fire, v_out, cnt, cycles, steps, step_start, v_trace):
    """``frame_kernel`` over frames ``lo .. hi-1`` of ``in_steps[N, n_in]``. Releases the GIL: the
    emulator runs disjoint frame ranges on a thread pool (frames are independent)."""
    rec = cfg[CFG_RECORD]
    for f in range(lo, hi):
        fi = f * rec
        c, s = frame_kernel(in_steps[f], cfg, window, dense, kind, links, n_hops, node_off, node_pe, pe_lo, pe_hi,
                            pe_layer, layer_pe_off, layer_pes, dests, in_dests, nd0, nd1, seg_base, seg_lo, seg_hi,
                            tgt_a, tgt_w, w_flat, w_off, theta, fire[f], v_out[f], cnt[f], step_start[fi], v_trace[fi])
        cycles[f] = c
        steps[f] = s
