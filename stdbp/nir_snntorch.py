"""Run a NIR graph in snnTorch (`snntorch.import_nir.import_from_nir`), one time step per call.

Used by the interoperability tests and `docs/interop.md`: the graph is the "snntorch" variant of
`stdbp.nir_io.to_nir` (leak-free CubaLIF neurons, one snnTorch step = ``alpha / steps_per_alpha``
of stdbp time). snnTorch resets a neuron to zero after a spike, so hidden neurons may fire more
than once; the counts say how often.
"""

from __future__ import annotations

import numpy as np

from stdbp.nir_sim import SimResult


def run(graph, input_steps: np.ndarray, n_steps: int, *, step: float = 1.0) -> SimResult:
    """input_steps [N, *shape] (step index of each input spike, -1 = none) -> first spike times
    (step index x `step`) and spike counts of every snnTorch neuron layer."""
    import contextlib
    import io

    import snntorch as snn
    import torch
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its weight-scaling notes
        net = import_from_nir(graph)
    layers = [(name, m) for name, m in net.named_modules() if isinstance(m, snn.SpikingNeuron)]
    spikes = {}

    def hook(name):
        def keep(_module, _inputs, out):
            spikes[name] = out[0] if isinstance(out, tuple) else out
        return keep

    for name, m in layers:
        m.register_forward_hook(hook(name))
    steps = torch.as_tensor(np.asarray(input_steps))
    n = steps.shape[0]
    first, counts = {}, {}
    utils.reset(net)
    with torch.no_grad():
        for k in range(n_steps + 1):
            net((steps == k).to(torch.float32))
            for name, _ in layers:
                z = spikes[name] > 0
                if name not in first:
                    first[name] = torch.full(z.shape, float("inf"), dtype=torch.float64)
                    counts[name] = torch.zeros(z.shape, dtype=torch.int64)
                counts[name] += z
                first[name] = torch.where(z & torch.isinf(first[name]), torch.tensor(k * step, dtype=torch.float64),
                                          first[name])
    last = layers[-1][0]
    return SimResult(output_first=first[last].reshape(n, -1).numpy(),
                     first={k: v.numpy() for k, v in first.items()},
                     counts={k: v.numpy() for k, v in counts.items()})
