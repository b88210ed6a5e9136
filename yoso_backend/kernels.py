"""The emulator's compiled kernel: one frame = data path (integer, bit-exact) + timing (cycles).

Data path (what the SRAMs hold; never depends on timing). Nodes are numbered layer by layer:
node layer 0 = the input pixels, node layer c >= 1 = compute layer c. For time step k = 0..T-1,
for each compute layer c in order::

    deliver: for each spike of node layer c-1 due at step k (fire step + delay == k), in ascending
             source index, for each PE p of layer c (ascending), for each neuron j of p:
                 A_j <- sat_A(A_j + w_ji)                       (load -> compute -> store)
    sweep:   for each neuron j of layer c that has not fired:
                 V_j <- sat_V(V_j + A_j);  if V_j >= theta_j: j fires at step k (emits its spike)

(``deliver_before_sweep = 0`` swaps the two phases.) The output layer does not fire in softmax
mode: its potentials at the end of the window are read out. Saturation is a clip to the signed
range of the SRAM word; the order above is canonical, so saturation is deterministic.

Timing (cycles; it reads the events above but never changes them). A global clock; step k starts
at S_k. A spike becomes one packet per destination PE (``noc.route_to_eject``: X-Y, per-hop
latency, link contention); the destination's FIFO of depth D applies back-pressure
(``noc.eject``); the load stage starts a packet at ``max(in FIFO, load free, S_k)``, spends
``decode + fanout`` cycles issuing reads (decoupled access-execute: compute and store overlap the
next packet's loads), the last write lands ``pipe_latency`` cycles later. A PE's sweep starts when
its deliveries are written and every upstream PE (same step) has finished its sweep plus the
network latency to it; it takes one cycle per local neuron plus ``sweep_latency``; a neuron that
fires emits its packets at its sweep slot. ``S_{k+1} = max_p(end_p) + step_overhead``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from yoso_backend import counters as CN
from yoso_backend.noc import N_PORTS, eject, n_links, route_to_eject

# cfg indices (int64 vector, so the kernel signature stays short)
(CFG_STEPS, CFG_DELIVER_FIRST, CFG_DELAY, CFG_A_LO, CFG_A_HI, CFG_V_LO, CFG_V_HI, CFG_WIDTH,
 CFG_NPE, CFG_HOP, CFG_FLITS, CFG_FIFO, CFG_DECODE, CFG_PIPE, CFG_SWEEP_LAT, CFG_STEP_OVH,
 CFG_HOST, CFG_SOFTMAX, CFG_EARLY_STOP, CFG_RECORD, CFG_OUT_TO_HOST, CFG_LANES) = range(22)
N_CFG = 22

NEVER = -1

_BUSY, _W_R, _A_R, _A_W, _V_R, _V_W, _S_R, _ADDS, _FIFO = CN.BUSY, CN.W_R, CN.A_R, CN.A_W, CN.V_R, CN.V_W, CN.S_R, CN.ADDS, CN.FIFO
_PK_INJ, _PK_RX, _FLIT_HOPS, _ROUTER, _NOC_STALL, _FIFO_STALL, _SPIKES = (
    CN.PK_INJ, CN.PK_RX, CN.FLIT_HOPS, CN.ROUTER, CN.NOC_STALL, CN.FIFO_STALL, CN.SPIKES)


@njit(cache=True, inline="always")
def _sat(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@njit(cache=True)
def _send(src, from_host, dst, t_inj, k_start, fanout, cfg, link_free, link_flits, ring, ring_n, load_free,
          done, cnt):
    """Route one spike packet and let ``dst``'s load stage take it; update timing and counters."""
    width = cfg[CFG_WIDTH]
    n_pe = cfg[CFG_NPE]
    hop = cfg[CFG_HOP]
    flits = cfg[CFG_FLITS]
    depth = cfg[CFG_FIFO]
    inj = n_pe * (N_PORTS + 1) if from_host else n_pe * N_PORTS + src
    t_ready, hops, stall = route_to_eject(src, dst, t_inj, width, n_pe, hop, flits, link_free, link_flits, inj)
    # FIFO room: the packet `depth` places earlier in this FIFO must have left it (started loading)
    slot = ring_n[dst] % depth
    room = ring[dst, slot] if ring_n[dst] >= depth else 0
    t_fifo, port_stall, fifo_stall = eject(dst * N_PORTS, t_ready, room, hop, flits, link_free, link_flits)
    start = max(t_fifo, load_free[dst], k_start)
    ring[dst, slot] = start
    ring_n[dst] += 1
    issue = (fanout + cfg[CFG_LANES] - 1) // cfg[CFG_LANES]
    load_free[dst] = start + cfg[CFG_DECODE] + issue
    fin = load_free[dst] + cfg[CFG_PIPE]
    if fin > done[dst]:
        done[dst] = fin
    cnt[src, _PK_INJ] += 1
    cnt[src, _FLIT_HOPS] += hops * flits
    cnt[src, _NOC_STALL] += stall + port_stall
    cnt[dst, _FIFO_STALL] += fifo_stall
    cnt[dst, _PK_RX] += 1
    cnt[dst, _FIFO] += 2 + 2 * fanout  # router FIFO push+pop; compute->store FIFO per target
    cnt[dst, _BUSY] += cfg[CFG_DECODE] + issue
    return t_fifo


@njit(cache=True)
def _to_host(src, t_inj, cfg, link_free, link_flits, cnt):
    """Route a result packet (output spike or potential) to the host port at PE ``cfg[CFG_HOST]``;
    the host drains it at once (no FIFO, no core). Returns the cycle it leaves the mesh."""
    hop = cfg[CFG_HOP]
    flits = cfg[CFG_FLITS]
    n_pe = cfg[CFG_NPE]
    t_ready, hops, stall = route_to_eject(src, cfg[CFG_HOST], t_inj, cfg[CFG_WIDTH], n_pe, hop,
                                          flits, link_free, link_flits, n_pe * N_PORTS + src)
    t, port_stall, _ = eject(n_pe * (N_PORTS + 1) + 1, t_ready, 0, hop, flits, link_free, link_flits)
    cnt[src, _PK_INJ] += 1
    cnt[src, _FLIT_HOPS] += hops * flits
    cnt[src, _NOC_STALL] += stall + port_stall
    return t


@njit(cache=True)
def frame_kernel(in_step, cfg, node_off, node_pe, node_local, pe_lo, pe_hi, pe_layer, layer_pe_off,
                 layer_pes, w_flat, w_off, theta, fire, v_out, cnt, step_start, v_trace):
    """Run one frame. ``in_step[n_in]``: input spike steps (-1 = silent). Outputs written in place:
    ``fire[n_nodes]`` (fire step or -1; inputs included), ``v_out[n_out]`` (output potentials at
    the end of the window), ``cnt[n_pe, K]``; with record: ``step_start[T+1]``, ``v_trace[T, n_out]``.
    Returns ``(cycles, steps_run)``."""
    T = cfg[CFG_STEPS]
    n_pe = cfg[CFG_NPE]
    width = cfg[CFG_WIDTH]
    hop = cfg[CFG_HOP]
    L = node_off.shape[0] - 2  # compute layers
    n_nodes = node_off[L + 1]
    n_in = node_off[1]
    a_lo, a_hi, v_lo, v_hi = cfg[CFG_A_LO], cfg[CFG_A_HI], cfg[CFG_V_LO], cfg[CFG_V_HI]
    softmax = cfg[CFG_SOFTMAX]
    delay = cfg[CFG_DELAY]
    host = cfg[CFG_HOST]
    lanes = cfg[CFG_LANES]
    n_neur = n_nodes - n_in
    A = np.zeros(n_neur, np.int64)
    V = np.zeros(n_neur, np.int64)
    for i in range(n_nodes):
        fire[i] = NEVER
    # --- event lists per node layer, in (step, index) order: inputs by counting sort --------------
    ev = np.empty(n_nodes, np.int64)       # node ids, grouped by node layer (layer c at node_off[c]..)
    ev_n = np.zeros(L + 1, np.int64)       # events so far per node layer
    ptr = np.zeros(L + 1, np.int64)        # next event to deliver per node layer
    ev_t = np.empty(n_nodes, np.int64)     # emission cycle of each event (same slots as ev)
    counts = np.zeros(T + 1, np.int64)
    for i in range(n_in):
        s = in_step[i]
        if s >= 0 and s < T:
            counts[s + 1] += 1
    for s in range(T):
        counts[s + 1] += counts[s]
    for i in range(n_in):
        s = in_step[i]
        if s >= 0 and s < T:
            ev[counts[s]] = i
            counts[s] += 1
            fire[i] = s
    ev_n[0] = counts[T - 1] if T > 0 else 0
    # --- timing state ----------------------------------------------------------------------------
    n_l = n_links(n_pe)
    link_free = np.zeros(n_l, np.int64)
    link_flits = np.zeros(n_l, np.int64)
    depth = cfg[CFG_FIFO]
    ring = np.zeros((n_pe, depth), np.int64)
    ring_n = np.zeros(n_pe, np.int64)
    load_free = np.zeros(n_pe, np.int64)
    done = np.zeros(n_pe, np.int64)
    sweep_end = np.zeros(n_pe, np.int64)
    up_ready = np.zeros(L + 2, np.int64)   # per node layer: latest sweep end (+ network) this step
    now = 0
    steps_run = 0
    out_off = node_off[L]
    n_out = node_off[L + 1] - out_off
    for k in range(T):
        if cfg[CFG_RECORD]:
            step_start[k] = now
        steps_run += 1
        for p in range(n_pe):
            done[p] = now
            sweep_end[p] = now
        for c in range(1, L + 1):
            lo_c = node_off[c]
            lo_prev = node_off[c - 1]
            n_prev = lo_c - lo_prev
            n_c = node_off[c + 1] - lo_c
            wo = w_off[c - 1]
            fires_out = not (softmax and c == L)
            for phase in range(2):
                deliver = (phase == 0) == (cfg[CFG_DELIVER_FIRST] == 1)
                if deliver:
                    # spikes of node layer c-1 due now
                    base = node_off[c - 1]
                    while ptr[c - 1] < ev_n[c - 1]:
                        e = base + ptr[c - 1]
                        i = ev[e]
                        if fire[i] + (delay if c > 1 else 0) > k:
                            break
                        ptr[c - 1] += 1
                        src = node_pe[i] if c > 1 else host
                        t_inj = ev_t[e] if c > 1 else now
                        il = i - lo_prev
                        for q in range(layer_pe_off[c], layer_pe_off[c + 1]):
                            p = layer_pes[q]
                            j0 = pe_lo[p]
                            j1 = pe_hi[p]
                            fan = j1 - j0
                            _send(src, c == 1, p, t_inj, now, fan, cfg, link_free, link_flits, ring, ring_n,
                                  load_free, done, cnt)
                            row = wo + il * n_c - lo_c
                            for j in range(j0, j1):
                                a = j - n_in
                                A[a] = _sat(A[a] + w_flat[row + j], a_lo, a_hi)
                            cnt[p, _W_R] += fan
                            cnt[p, _A_R] += fan
                            cnt[p, _A_W] += fan
                            cnt[p, _ADDS] += fan
                else:
                    # sweep of every PE of layer c
                    ready = up_ready[c - 1] if c > 1 else now
                    last = now
                    for q in range(layer_pe_off[c], layer_pe_off[c + 1]):
                        p = layer_pes[q]
                        j0 = pe_lo[p]
                        j1 = pe_hi[p]
                        start = max(done[p], now)
                        if c > 1 and cfg[CFG_DELIVER_FIRST] == 1 and delay == 0:
                            # wait for the upstream layer's sweep, plus the network to reach p
                            start = max(start, ready + (width + n_pe // width) * hop)
                        slot0 = start + cfg[CFG_SWEEP_LAT]
                        for j in range(j0, j1):
                            if fire[j] != NEVER:
                                continue
                            a = j - n_in
                            V[a] = _sat(V[a] + A[a], v_lo, v_hi)
                            cnt[p, _A_R] += 1
                            cnt[p, _V_R] += 1
                            cnt[p, _V_W] += 1
                            cnt[p, _ADDS] += 1
                            if fires_out and V[a] >= theta[a]:
                                fire[j] = k
                                e = node_off[c] + ev_n[c]
                                ev[e] = j
                                ev_t[e] = slot0 + (j - j0) // lanes
                                ev_n[c] += 1
                                cnt[p, _SPIKES] += 1
                                cnt[p, _S_R] += 1
                                if c == L and cfg[CFG_OUT_TO_HOST]:
                                    _to_host(p, slot0 + (j - j0) // lanes, cfg, link_free, link_flits, cnt)
                        sweep = (j1 - j0 + lanes - 1) // lanes
                        end = start + sweep + cfg[CFG_SWEEP_LAT]
                        cnt[p, _BUSY] += sweep
                        sweep_end[p] = end
                        if end > last:
                            last = end
                    up_ready[c] = last
        if cfg[CFG_RECORD]:
            for o in range(n_out):
                v_trace[k, o] = V[out_off - n_in + o]
        nxt = now
        for p in range(n_pe):
            if done[p] > nxt:
                nxt = done[p]
            if sweep_end[p] > nxt:
                nxt = sweep_end[p]
            if load_free[p] > nxt:
                nxt = load_free[p]
        now = nxt + cfg[CFG_STEP_OVH]
        if cfg[CFG_EARLY_STOP] and not softmax and ev_n[L] > 0:
            break
    # read-out of the output potentials (softmax) = one packet per output neuron to the host
    for o in range(n_out):
        v_out[o] = V[out_off - n_in + o]
    if softmax and cfg[CFG_OUT_TO_HOST]:
        last_out = now
        for o in range(n_out):
            p = node_pe[out_off + o]
            cnt[p, _V_R] += 1
            t = _to_host(p, now + node_local[out_off + o], cfg, link_free, link_flits, cnt)
            if t > last_out:
                last_out = t
        now = max(now, last_out)
    if cfg[CFG_RECORD]:
        step_start[steps_run] = now
    for p in range(n_pe):
        s = 0
        for o in range(N_PORTS):
            s += link_flits[p * N_PORTS + o]
        if p == host:
            s += link_flits[n_pe * (N_PORTS + 1) + 1]
        cnt[p, _ROUTER] += s
    return now, steps_run


@njit(cache=True, parallel=True)
def run_frames(in_steps, cfg, node_off, node_pe, node_local, pe_lo, pe_hi, pe_layer, layer_pe_off,
               layer_pes, w_flat, w_off, theta, fire, v_out, cnt, cycles, steps, step_start, v_trace):
    """``frame_kernel`` over frames ``in_steps[N, n_in]`` in parallel (each frame is independent)."""
    N = in_steps.shape[0]
    rec = cfg[CFG_RECORD]
    for f in prange(N):
        fi = f if rec else 0
        c, s = frame_kernel(in_steps[f], cfg, node_off, node_pe, node_local, pe_lo, pe_hi, pe_layer,
                            layer_pe_off, layer_pes, w_flat, w_off, theta, fire[f], v_out[f], cnt[f],
                            step_start[fi], v_trace[fi])
        cycles[f] = c
        steps[f] = s
