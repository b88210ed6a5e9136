"""Pass 3: partition every fully connected layer over PEs.

The paper's lower bound for an m x n layer (m inputs, n neurons) is
    C = max(ceil(n / N), ceil(m * n / W))        N = pe.neurons, W = pe.weights.
A neuron lives on one PE with all m of its weights (partial sums are not combined across PEs),
so a PE holds p = min(N, floor(W / m)) neurons and the layer takes ceil(n / p) >= C PEs; the n
neurons are split as evenly as possible, in index order. A network needing more PEs than the
mesh has is refused with one line: the numbers and the options that would fit it.
"""

from __future__ import annotations

import math

from compiler.ir import CompileState, PESlice
from stdbp.errors import UserError


def layer_pes(m: int, n: int, neurons: int, weights: int) -> tuple[int, int]:
    """(PEs used, paper bound C) for an m-input, n-neuron layer."""
    p = min(neurons, weights // m)
    bound = max(math.ceil(n / neurons), math.ceil(m * n / weights))
    return (math.ceil(n / p) if p > 0 else 10**9), bound


def split(n: int, parts: int) -> list[int]:
    """n neurons over `parts` PEs, as evenly as possible (larger slices first)."""
    return [n // parts + (1 if k < n % parts else 0) for k in range(parts)]


def _fit_options(sizes: list[tuple[int, int]], neurons: int, weights: int, n_pe: int, coord_bits: int = 8) -> str:
    total = sum(layer_pes(m, n, neurons, weights)[0] for m, n in sizes)
    side = math.ceil(math.sqrt(total))
    mesh = f"a mesh of at least {total} PEs (e.g. {side} x {math.ceil(total / side)}"
    if math.ceil(total / side) > (1 << coord_bits):  # a flit could not address it
        mesh += f", with bits.coordinate >= {math.ceil(math.log2(math.ceil(total / side)))} and a wider flit"
    opts = [mesh + ")"]
    w = weights
    while w < (1 << 26):
        w *= 2
        if sum(layer_pes(m, n, neurons, w)[0] for m, n in sizes) <= n_pe:
            opts.append(f"pe.weights >= {w}")
            break
    # the widest layer made narrower (its successor's fan-in shrinks with it)
    k = max(range(len(sizes)), key=lambda i: layer_pes(*sizes[i], neurons, weights)[0])
    for n in range(sizes[k][1] - 1, 0, -1):
        trial = list(sizes)
        trial[k] = (sizes[k][0], n)
        if k + 1 < len(trial):
            trial[k + 1] = (n, trial[k + 1][1])
        if all(m <= weights for m, _ in trial) and sum(layer_pes(m, q, neurons, weights)[0] for m, q in trial) <= n_pe:
            opts.append(f"layer {k} with at most {n} neurons")
            break
    return ", or ".join(opts)


def partition(state: CompileState) -> None:
    hw, g = state.hw, state.graph
    sizes = [(lay.n_in, lay.n_out) for lay in g.layers]
    per_layer, slices = [], []
    for k, (m, n) in enumerate(sizes):
        used, bound = layer_pes(m, n, hw.neurons_per_pe, hw.weights_per_pe)
        start = 0
        for count in split(n, used):
            slices.append(PESlice(layer=k, neuron_start=start, neuron_count=count, fan_in=m))
            start += count
        per_layer.append({"layer": k, "name": g.layers[k].name, "n_in": m, "n_out": n, "pes": used,
                          "paper_bound_C": bound, "neurons_per_pe_max": min(hw.neurons_per_pe, hw.weights_per_pe // m)})
    total = len(slices)
    if total > hw.n_pe:
        counts = ", ".join(f"{g.layers[r['layer']].name}: {r['pes']}" for r in per_layer)
        raise UserError(g.source or "model",
                        f"does not fit: needs {total} PEs ({counts}), the {hw.mesh_width} x {hw.mesh_height} mesh "
                        f"of {hw.name} has {hw.n_pe}",
                        _fit_options(sizes, hw.neurons_per_pe, hw.weights_per_pe, hw.n_pe, hw.coord_bits))
    state.slices = slices
    state.partition_report = {"per_layer": per_layer, "pes_used": total, "pes_available": hw.n_pe}
