"""A small time-stepped interpreter of NIR graphs: the reference consumer of `stdbp export --format nir`.

It implements NIR's equations as written in the `nir` package, by forward Euler with step ``dt``,
and knows nothing of stdbp (no metadata is read): what a generic NIR backend does. A spike is a
Dirac impulse: a spiking node's output is ``z / dt`` in the step it fires (area 1). Per step, the
nodes are updated in graph order, each from its predecessor's output of the same step:

- ``Linear`` ``W x``; ``Affine`` ``W x + b``; ``Conv2d``, ``SumPool2d`` (zero padding); ``Flatten``;
- ``I``: ``v += dt r x``, output v;
- ``IF``: ``v += dt r x``; ``z = v > v_threshold``; ``v = v_reset`` where z; output ``z / dt``;
- ``LIF``: ``v += dt / tau (v_leak - v + r x)``, then as IF;
- ``CubaLIF``: ``I += dt / tau_syn (-I + w_in x)``, ``v += dt / tau_mem (v_leak - v + r I)``, then as IF.

Inputs are spike times (seconds of the graph's time base): a time t spikes in step ``round(t / dt)``;
``inf`` never spikes. `run` returns, per spiking node, each neuron's first spike time and its
spike count, and the first spike times of the output (``inf`` = silent). The loop is over time
steps only; within a step every node is one vectorised torch operation over the batch (a linear
map of a sparse spike vector goes through a sparse product).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stdbp.errors import UserError

SUPPORTED = ("Input", "Output", "Linear", "Affine", "Conv2d", "SumPool2d", "Flatten", "I", "IF", "LIF", "CubaLIF")


@dataclass
class SimResult:
    output_first: np.ndarray            # [N, n_out] first spike time of each output neuron (inf: none)
    first: dict[str, np.ndarray]        # spiking node -> [N, ...] first spike time
    counts: dict[str, np.ndarray]       # spiking node -> [N, ...] number of spikes

    @property
    def predictions(self) -> np.ndarray:
        """The output neuron that spikes first (ties: the lowest index); -1 when none spikes."""
        first = self.output_first
        pred = np.argmin(first, axis=1)
        return np.where(np.isfinite(first).any(axis=1), pred, -1)


def _order(graph) -> list[str]:
    nxt, prev = {}, {}
    for a, b in graph.edges:
        if a in nxt or b in prev:
            raise UserError("NIR graph", f"node {a!r} or {b!r} branches", "this interpreter runs chains of nodes")
        nxt[a], prev[b] = b, a
    start = [n for n, node in graph.nodes.items() if type(node).__name__ == "Input"]
    if len(start) != 1:
        raise UserError("NIR graph", f"{len(start)} Input nodes", "pass a graph with one Input")
    order = [start[0]]
    while order[-1] in nxt:
        order.append(nxt[order[-1]])
    for name in order:
        kind = type(graph.nodes[name]).__name__
        if kind not in SUPPORTED:
            raise UserError(f"NIR node {name!r}", f"{kind} is not supported by the reference interpreter",
                            f"use {', '.join(SUPPORTED)}")
    return order


def _t(a, dtype):
    import torch

    return torch.as_tensor(np.array(a, dtype=np.float64), dtype=dtype)


def _linear_op(node, kind: str, dtype):
    import torch
    import torch.nn.functional as F

    if kind in ("Linear", "Affine"):
        w = _t(node.weight, dtype)
        b = _t(node.bias, dtype) if kind == "Affine" else None

        def linear(x):
            y = x.reshape(x.shape[0], -1) @ w.T  # dense: faster here than a sparse product of the spikes
            return y if b is None else y + b
        return linear
    if kind == "Conv2d":
        w = _t(node.weight, dtype)
        b = _t(node.bias, dtype)
        pad = node.padding if isinstance(node.padding, str) else tuple(np.broadcast_to(node.padding, (2,)).tolist())
        stride = tuple(np.broadcast_to(node.stride, (2,)).tolist())
        dil = tuple(np.broadcast_to(node.dilation, (2,)).tolist())
        return lambda x: F.conv2d(x, w, b, stride=stride, padding=pad, dilation=dil, groups=int(node.groups))
    if kind == "SumPool2d":
        k = tuple(int(v) for v in np.ravel(node.kernel_size))
        s = tuple(int(v) for v in np.ravel(node.stride))
        p = tuple(int(v) for v in np.broadcast_to(np.ravel(node.padding), (2,)))
        return lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=True, divisor_override=1)
    if kind == "Flatten":
        return lambda x: x.reshape(x.shape[0], -1) if int(node.start_dim) == 0 else torch.flatten(
            x, int(node.start_dim) + 1, int(node.end_dim) if int(node.end_dim) < 0 else int(node.end_dim) + 1)
    raise AssertionError(kind)


def run(graph, input_times: np.ndarray, *, dt: float, t_end: float, dtype=None) -> SimResult:
    """Simulate `graph` on spike times [N, *input shape] for steps 0 .. round(t_end / dt)."""
    import torch

    dtype = dtype or torch.float64
    order = _order(graph)
    times = np.asarray(input_times, np.float64)
    steps = int(round(t_end / dt))
    in_step = np.where(np.isfinite(times), np.rint(times / dt), -1).astype(np.int64)
    in_step_t = torch.as_tensor(in_step)
    n = times.shape[0]
    ops, state, first, counts = {}, {}, {}, {}
    for name in order[1:-1]:
        node, kind = graph.nodes[name], type(graph.nodes[name]).__name__
        if kind in ("I", "IF", "LIF", "CubaLIF"):
            ops[name] = (kind, {k: _t(getattr(node, k), dtype) for k in
                                ("r", "v_threshold", "v_reset", "tau", "v_leak", "tau_syn", "tau_mem", "w_in")
                                if hasattr(node, k)})
        else:
            ops[name] = (kind, _linear_op(node, kind, dtype))
    inv_dt = 1.0 / dt
    for k in range(steps + 1):
        x = (in_step_t == k).to(dtype) * inv_dt
        for name in order[1:-1]:
            kind, op = ops[name]
            if not isinstance(op, dict):
                x = op(x)
                continue
            if name not in state:
                state[name] = [torch.zeros_like(x), torch.zeros_like(x)]
            v, cur = state[name]
            if kind == "I":
                v += dt * op["r"] * x
                x = v.clone()
                continue
            if name not in first:
                first[name] = torch.full(x.shape, float("inf"), dtype=torch.float64)
                counts[name] = torch.zeros(x.shape, dtype=torch.int64)
            if kind == "IF":
                v += dt * op["r"] * x
            elif kind == "LIF":
                v += dt / op["tau"] * (op["v_leak"] - v + op["r"] * x)
            else:  # CubaLIF
                cur += dt / op["tau_syn"] * (-cur + op["w_in"] * x)
                v += dt / op["tau_mem"] * (op["v_leak"] - v + op["r"] * cur)
            z = v > op["v_threshold"]
            v.copy_(torch.where(z, op["v_reset"].expand_as(v), v))
            counts[name] += z
            first[name] = torch.where(z & torch.isinf(first[name]), torch.tensor(k * dt, dtype=torch.float64),
                                      first[name])
            x = z.to(dtype) * inv_dt
    last = [nm for nm in order[1:-1] if nm in first][-1]
    return SimResult(output_first=first[last].reshape(n, -1).numpy(),
                     first={k: v.numpy() for k, v in first.items()},
                     counts={k: v.numpy() for k, v in counts.items()})
