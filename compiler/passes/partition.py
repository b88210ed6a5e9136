"""Pass 3: partition every layer over PEs, and record where each input's spike must go.

The paper's lower bound for an m x n layer (m inputs, n neurons) is
    C = max(ceil(n / N), ceil(m * n / W))        N = pe.neurons, W = pe.weights.
A neuron lives on one PE with all m of its weights (partial sums are not combined across PEs),
so a PE holds p = min(N, floor(W / m)) neurons and the layer takes ceil(n / p) >= C PEs; the n
neurons are split as evenly as possible, in index order. A network needing more PEs than the
mesh has is refused with one line: the numbers and the options that would fit it.

Conv layers (n = C_out * H' * W' neurons in channel-major order, K = C_in * kh * kw weights per
output channel, shared by the channel's neurons) store on each PE the kernels of the channels its
neuron range touches, once. Slices are contiguous and as even as possible, the fewest such that
every slice has <= N neurons and (channels touched) x K <= W weights; the bound generalises to
    C = max(ceil(n / N), ceil(C_out * K / W)).
Pool layers hold no weights: ceil(n / N) PEs. The fan-out (`state.fanout`): for each input of a
layer, the slices holding at least one neuron whose window contains it, ascending (dense: all).
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir import CompileState, PESlice
from stdbp.errors import UserError
from yoso_backend.geometry import targets


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


def window_slices(lay, neurons: int, weights: int) -> tuple[list[tuple[int, int, int]], int]:
    """Conv or pool layer -> ([(start, count, weight words)], paper-style bound C)."""
    g = lay.window
    n, per_ch, kw = lay.n_out, g.out_shape[1] * g.out_shape[2], g.kernel_words
    bound = max(math.ceil(n / neurons), math.ceil(g.out_channels * kw / weights) if kw else 0)
    parts = math.ceil(n / neurons)
    while True:
        out, start = [], 0
        for count in split(n, parts):
            chans = (start + count - 1) // per_ch - start // per_ch + 1
            out.append((start, count, chans * kw))
            start += count
        if all(w <= weights for _s, _c, w in out):
            return out, bound
        parts += 1  # kw <= weights (design-rule check): one channel per PE always fits


def layer_fanout(lay, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR (off [n_in + 1], slice [nnz]) of the slices each input's spike goes to, ascending."""
    if lay.kind == "dense":
        m, s = lay.n_in, len(starts)
        return np.arange(m + 1, dtype=np.int64) * s, np.tile(np.arange(s, dtype=np.int64), m)
    off, tgt, _w = targets(lay.window)
    sl = np.searchsorted(starts, tgt, side="right") - 1
    inp = np.repeat(np.arange(lay.n_in), np.diff(off))
    keep = np.ones(len(sl), bool)
    keep[1:] = (inp[1:] != inp[:-1]) | (sl[1:] != sl[:-1])  # targets are sorted: runs of one slice
    inp, sl = inp[keep], sl[keep]
    out = np.zeros(lay.n_in + 1, np.int64)
    np.cumsum(np.bincount(inp, minlength=lay.n_in), out=out[1:])
    return out, sl.astype(np.int64)


def _fit_message(state: CompileState, total: int, per_layer: list[dict]) -> str:
    """Options that fit a conv network: a built-in description with enough PEs, or a larger mesh."""
    from yoso_backend.hardware import builtin_names, load_hardware

    hw = state.hw
    need_bits = max(max(lay.n_out for lay in state.graph.layers), state.graph.n_inputs) - 1
    for name in builtin_names():
        other = load_hardware(name)
        if (other.n_pe >= total and other.index_bits >= need_bits.bit_length() and other.neurons_per_pe >=
                hw.neurons_per_pe and other.weights_per_pe >= hw.weights_per_pe and name != hw.name):
            return f"use --hw {name} ({other.mesh_width} x {other.mesh_height} = {other.n_pe} PEs)"
    side = math.ceil(math.sqrt(total))
    return f"use a hardware description with a mesh of at least {total} PEs (e.g. {side} x {math.ceil(total / side)})"


def pes_needed(layers, neurons: int, weights: int) -> int:
    total = 0
    for lay in layers:
        if lay.kind == "dense":
            total += layer_pes(lay.n_in, lay.n_out, neurons, weights)[0]
        else:
            total += len(window_slices(lay, neurons, weights)[0])
    return total


def fitting_multiplex(layers, hw, most: int = 16) -> int | None:
    """The smallest number of time-multiplexed neuron groups per PE (1 = none) with which `layers`
    fit the mesh of `hw`, or None beyond `most`."""
    for groups in range(1, most + 1):
        if all(lay.kind != "dense" or lay.n_in <= hw.weights_per_pe * groups for lay in layers) and \
                pes_needed(layers, hw.neurons_per_pe * groups, hw.weights_per_pe * groups) <= hw.n_pe:
            return groups
    return None


def _multiplex_option(state: CompileState) -> str:
    """The smallest time-multiplexing factor that fits the network on this mesh (or "")."""
    groups = fitting_multiplex(state.graph.layers, state.hw)
    if groups is None or groups == 1:
        return ""
    return (f"--multiplex {groups} (time-multiplexing: {groups} neuron groups per PE served in turn, "
            f"about {groups}x the sweep cycles)")


def partition(state: CompileState) -> None:
    hw, g = state.hw, state.graph
    sizes = [(lay.n_in, lay.n_out) for lay in g.layers]
    per_layer, slices = [], []
    for k, (m, n) in enumerate(sizes):
        lay = g.layers[k]
        if lay.kind == "dense":
            used, bound = layer_pes(m, n, hw.neurons_per_pe, hw.weights_per_pe)
            start, parts = 0, []
            for count in split(n, used):
                parts.append((start, count, m * count))
                start += count
            fan, p_max = m, min(hw.neurons_per_pe, hw.weights_per_pe // m)
        else:
            parts, bound = window_slices(lay, hw.neurons_per_pe, hw.weights_per_pe)
            used, p_max = len(parts), hw.neurons_per_pe
            fan = lay.window.kernel_words if lay.kind == "conv" else lay.window.kernel[0] * lay.window.kernel[1]
        for start, count, words in parts:
            slices.append(PESlice(layer=k, neuron_start=start, neuron_count=count, fan_in=fan, weight_words=words))
        per_layer.append({"layer": k, "name": lay.name, "kind": lay.kind, "n_in": m, "n_out": n, "pes": used,
                          "paper_bound_C": bound, "neurons_per_pe_max": p_max})
    total = len(slices)
    if total > hw.n_pe:
        counts = ", ".join(f"{g.layers[r['layer']].name}: {r['pes']}" for r in per_layer)
        dense = all(lay.kind == "dense" for lay in g.layers)
        fix = (_fit_options(sizes, hw.neurons_per_pe, hw.weights_per_pe, hw.n_pe, hw.coord_bits) if dense
               else _fit_message(state, total, per_layer))
        tm = _multiplex_option(state)
        raise UserError(g.source or "model",
                        f"does not fit: needs {total} PEs ({counts}), the {hw.mesh_width} x {hw.mesh_height} mesh "
                        f"of {hw.name} has {hw.n_pe}", fix + (f", or {tm}" if tm else ""))
    state.slices = slices
    state.fanout = []
    for k, lay in enumerate(g.layers):
        starts = np.array([s.neuron_start for s in slices if s.layer == k], np.int64)
        state.fanout.append(layer_fanout(lay, starts))
    state.partition_report = {"per_layer": per_layer, "pes_used": total, "pes_available": hw.n_pe}
