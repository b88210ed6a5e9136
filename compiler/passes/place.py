"""Pass 4: place PEs on the mesh and build the destination (spike-address) tables for X-Y routing.

Deterministic greedy, layer by layer in neuron order: each PE goes to the free router that
minimises its traffic-weighted X-Y hop count
    cost(r) = sum_{PE s of the previous layer} count_s * hops(s, r)      (each neuron spikes once,
            + [layer 0]    n_inputs * hops(host, r)                       one flit per destination PE)
            + [last layer] count_r * hops(r, host)
hops = |dx| + |dy| (X-Y routing is minimal); ties -> the lowest PE id (pe = y * width + x). Heavier
traffic therefore gets fewer hops. For conv and pool layers count_s is replaced by the packets
from s to r (`traffic`: the sources of s whose window reaches a neuron of r), so only connected
PEs pull each other close. Destinations (emit): the PEs of the next layer that a neuron's spike
reaches (all of them for a dense layer), the host for the last layer.
"""

from __future__ import annotations

import numpy as np

from compiler.ir import CompileState


def hops(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def traffic(state: CompileState, k: int) -> np.ndarray:
    """Packets per frame from each source of layer k (its inputs' slices; layer 0: one row, the
    host) to each slice of layer k, if every source neuron spikes once: [n_src, n_dst]."""
    off, dst = state.fanout[k]
    n_dst = len(state.layer_slices(k))
    inp = np.repeat(np.arange(len(off) - 1), np.diff(off))
    if k == 0:
        src, n_src = np.zeros(len(inp), np.int64), 1
    else:
        starts = np.array([s.neuron_start for s in state.layer_slices(k - 1)], np.int64)
        src, n_src = np.searchsorted(starts, inp, side="right") - 1, len(starts)
    return np.bincount(src * n_dst + dst, minlength=n_src * n_dst).reshape(n_src, n_dst).astype(np.int64)


def place(state: CompileState) -> None:
    hw, g = state.hw, state.graph
    host = np.array([hw.host_x, hw.host_y])
    xy = np.array([hw.pe_xy(pe) for pe in range(hw.n_pe)], np.int64)
    free = np.ones(hw.n_pe, bool)
    n_layers = len(g.layers)
    flows = [traffic(state, k) for k in range(n_layers)]
    total_cost = 0
    for k in range(n_layers):
        prev = state.layer_slices(k - 1) if k > 0 else []
        src_xy = np.array([xy[s.pe] for s in prev], np.int64).reshape(-1, 2) if k > 0 else host[None, :]
        for q, sl in enumerate(state.layer_slices(k)):
            ids = np.nonzero(free)[0]
            cand = xy[ids]
            d = np.abs(src_xy[:, None, :] - cand[None, :, :]).sum(axis=2)   # [n_src, n_free]
            cost = flows[k][:, q] @ d
            if k == n_layers - 1:
                cost = cost + sl.neuron_count * np.abs(cand - host).sum(axis=1)
            best = int(np.argmin(cost))  # first minimum: the lowest free PE id
            sl.pe = int(ids[best])
            free[sl.pe] = False
            total_cost += int(cost[best])
    # traffic if every input and every neuron spikes once: flits and flit-hops
    flits = flit_hops = 0
    for k in range(n_layers):
        dst_xy = np.array([xy[s.pe] for s in state.layer_slices(k)], np.int64)
        src_xy = host[None, :] if k == 0 else np.array([xy[s.pe] for s in state.layer_slices(k - 1)], np.int64)
        d = np.abs(src_xy[:, None, :] - dst_xy[None, :, :]).sum(axis=2)
        flits += int(flows[k].sum())
        flit_hops += int((flows[k] * d).sum())
    last = state.layer_slices(n_layers - 1)
    for sl in last:
        flits += sl.neuron_count
        flit_hops += sl.neuron_count * hops(hw.pe_xy(sl.pe), (hw.host_x, hw.host_y))
    state.placement_report = {"max_flits_per_frame": flits, "max_flit_hops_per_frame": flit_hops,
                              "mean_hops_per_flit": flit_hops / flits if flits else 0.0}
