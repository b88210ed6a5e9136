"""Pass 4: place PEs on the mesh and build the destination (spike-address) tables for X-Y routing.

Deterministic greedy, layer by layer in neuron order: each PE goes to the free router that
minimises its traffic-weighted X-Y hop count
    cost(r) = sum_{PE s of the previous layer} count_s * hops(s, r)      (each neuron spikes once,
            + [layer 0]    n_inputs * hops(host, r)                       one flit per destination PE)
            + [last layer] count_r * hops(r, host)
hops = |dx| + |dy| (X-Y routing is minimal); ties -> the lowest PE id (pe = y * width + x). Heavier
traffic therefore gets fewer hops. Destinations: every PE of the next layer (in neuron order), the
host for the last layer; layer 0 receives every input spike from the host.
"""

from __future__ import annotations

from compiler.ir import CompileState


def hops(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def place(state: CompileState) -> None:
    hw, g = state.hw, state.graph
    host = (hw.host_x, hw.host_y)
    free = list(range(hw.n_pe))
    n_layers = len(g.layers)
    placed: dict[int, list] = {}
    total_cost = 0
    for k in range(n_layers):
        for sl in state.layer_slices(k):
            best, best_cost = None, None
            for pe in free:
                r = hw.pe_xy(pe)
                cost = sum(s.neuron_count * hops(hw.pe_xy(s.pe), r) for s in placed.get(k - 1, []))
                if k == 0:
                    cost += g.n_inputs * hops(host, r)
                if k == n_layers - 1:
                    cost += sl.neuron_count * hops(r, host)
                if best_cost is None or cost < best_cost:
                    best, best_cost = pe, cost
            sl.pe = best
            free.remove(best)
            placed.setdefault(k, []).append(sl)
            total_cost += best_cost
    # traffic if every input and every neuron spikes once: flits and flit-hops
    flits = flit_hops = 0
    for k in range(n_layers):
        for sl in state.layer_slices(k):
            r = hw.pe_xy(sl.pe)
            if k == 0:
                flits += g.n_inputs
                flit_hops += g.n_inputs * hops(host, r)
            if k + 1 < n_layers:
                for d in state.layer_slices(k + 1):
                    flits += sl.neuron_count
                    flit_hops += sl.neuron_count * hops(r, hw.pe_xy(d.pe))
            else:
                flits += sl.neuron_count
                flit_hops += sl.neuron_count * hops(r, host)
    state.placement_report = {"max_flits_per_frame": flits, "max_flit_hops_per_frame": flit_hops,
                              "mean_hops_per_flit": flit_hops / flits if flits else 0.0}
