"""Event counters of the emulator: one int64 vector per PE (per frame), always in this order.

The four SRAMs are named as in the paper (section IV-A): the weight SRAM (``w``), the accumulated
weight SRAM (``a``), the neuron potential SRAM (``v``) and the spike address SRAM (``s``).
"""

from __future__ import annotations

import numpy as np

SRAMS = ("w", "a", "v", "s")
SRAM_TITLES = {
    "w": "weight SRAM",
    "a": "accumulated-weight SRAM",
    "v": "neuron-potential SRAM",
    "s": "spike-address SRAM",
}

NAMES = (
    "busy_cycles",        # cycles the PE core (load or sweep) was busy
    "w_reads", "w_writes",
    "a_reads", "a_writes",
    "v_reads", "v_writes",
    "s_reads", "s_writes",
    "adds",               # saturating-adder operations (A += w and V += A)
    "fifo_ops",           # pushes + pops of the router-interface FIFO and the compute->store FIFO
    "packets_injected",   # spike packets this PE's core put on the NoC
    "packets_received",   # spike packets ejected into this PE's FIFO
    "flit_hops",          # router-to-router link traversals of flits injected by this PE
    "router_flits",       # flits passing through this PE's router (all ports, incl. ejection)
    # the two stall counters are packet-cycles: the sum over packets of the cycles each one waited.
    # Packets wait side by side (a layer's spikes fan out to every PE of the next layer at once),
    # so these sums can exceed the frame's cycles; divide by the packets for a mean wait.
    "noc_stall_cycles",   # packet-cycles packets injected here waited for busy links or ports
    "fifo_stall_cycles",  # packet-cycles packets for this PE waited because its FIFO was full
    "spikes",             # neurons of this PE that fired
)
IDX = {name: i for i, name in enumerate(NAMES)}
K = len(NAMES)

# plain ints for the numba kernels (globals are frozen at compile time)
BUSY, W_R, W_W, A_R, A_W, V_R, V_W, S_R, S_W, ADDS, FIFO, PK_INJ, PK_RX, FLIT_HOPS, ROUTER, \
    NOC_STALL, FIFO_STALL, SPIKES = range(K)


def as_dict(vec: np.ndarray) -> dict[str, int]:
    """A counter vector (or a sum of them) as {name: int}."""
    return {name: int(vec[..., i].sum()) for i, name in enumerate(NAMES)}
