"""Counters and cycles, checked by hand on small cases (hardware yoso-6x7: 1-stage routers, 2 cycles
per hop; core load 1, SRAM read 1, compute 1, store 1 cycles; 1 lane; step barrier 1 cycle)."""

from __future__ import annotations

import numpy as np

from yoso_backend import counters as CN
from yoso_backend.emulator import Emulator
from yoso_backend.synth import make_program
from tests.yoso_backend.test_emulator import small_hw


def test_one_spike_one_hop_by_hand():
    # host on router 0; the single neuron (w = 10, theta = 10) on PE 1, one hop east; input step 0
    prog = make_program([np.array([[10]])], [np.array([10])], windows=3, placement=[1])
    res = Emulator(prog).run(np.array([[255]], np.uint8), record=True)
    assert res.fire[1][0, 0] == 1  # V(1) = 10
    # step 0: sweep 1 neuron (+3 fill) = 4; packet host->PE1: 2 cycles/hop + ejection -> in FIFO at 4,
    #         load 4..6 (decode 1 + 1 neuron), last write at 9; barrier -> step 1 starts at 10
    # step 1: sweep 10..14, the neuron fires at 13: PE 1 -> router 0 at 15 -> out of the host port
    #         at 17; step 2 starts at 18; steps 2, 3: 4 + 1 cycles each
    assert res.step_start[0, :5].tolist() == [0, 10, 18, 23, 28]
    assert res.cycles[0] == 28 and res.steps[0] == 4
    pe1 = dict(zip(CN.NAMES, res.pe_counters[1].tolist()))
    assert pe1 == {
        "busy_cycles": 2 + 4 * 1,     # one packet (decode + 1 neuron) + 4 sweeps of 1 neuron
        "w_reads": 1, "w_writes": 0,
        "a_reads": 1 + 2, "a_writes": 1,  # delivery read-modify-write; sweeps of steps 0, 1 read A
        "v_reads": 2, "v_writes": 2,      # the neuron integrates at steps 0 and 1, then is disabled
        "s_reads": 2, "s_writes": 0,      # its flit template + one destination (the host)
        "adds": 1 + 2,
        "fifo_ops": 2 + 2,                # router FIFO push/pop + compute->store FIFO push/pop
        "packets_injected": 1, "packets_received": 1,
        "flit_hops": 1,                   # the output spike: router 1 -> router 0 -> host port
        "router_flits": 2,                # ejection into PE 1, west towards the host
        "noc_stall_cycles": 0, "fifo_stall_cycles": 0, "spikes": 1,
    }
    pe0 = dict(zip(CN.NAMES, res.pe_counters[0].tolist()))
    assert pe0["flit_hops"] == 1 and pe0["router_flits"] == 2  # the input spike; east + the host port
    assert res.pe_counters[2:].sum() == 0
    assert res.layer_counters.sum(axis=0).tolist() == res.pe_counters.sum(axis=0).tolist()


def test_known_fan_out():
    hw = small_hw()  # 8 neurons per PE: 20 neurons -> 3 PEs of 7, 7, 6
    prog = make_program([np.ones((20, 4), np.int64), np.ones((2, 20), np.int64)], [np.full(20, 500), np.full(2, 500)],
                        hw=hw, windows=5)
    pes = prog.layers[0].pes
    assert len(pes) == 3
    px = np.array([[255, 0, 0, 0]], np.uint8)  # zero pixels spike at step 255 > window: never delivered
    res = Emulator(prog).run(px)
    c = res.pe_counters
    assert c[pes, CN.IDX["packets_received"]].tolist() == [1, 1, 1]
    assert c[pes, CN.IDX["w_reads"]].tolist() == [7, 7, 6]
    hops = sum(prog.hw.pe_xy(p)[0] + prog.hw.pe_xy(p)[1] for p in pes)  # X-Y from the host at (0, 0)
    assert c[0, CN.IDX["flit_hops"]] == hops
    assert res.frame_counters[0, CN.IDX["spikes"]] == 0


def test_xy_hops_of_every_destination():
    # one input spike to a layer on each of several PEs: flit hops = sum of Manhattan distances
    hw = small_hw(neurons=1, weights=4)
    n = 12
    prog = make_program([np.ones((n, 1), np.int64)], [np.full(n, 10 ** 2)], hw=hw, windows=2)
    res = Emulator(prog).run(np.array([[255]], np.uint8))
    want = sum(abs(hw.pe_xy(p)[0] - hw.host_x) + abs(hw.pe_xy(p)[1] - hw.host_y) for p in prog.layers[0].pes)
    assert res.pe_counters[hw.pe_id(hw.host_x, hw.host_y), CN.IDX["flit_hops"]] == want
    assert res.frame_counters[0, CN.IDX["packets_received"]] == n


def test_download_is_counted_apart():
    prog = make_program([np.ones((20, 4), np.int64), np.ones((2, 20), np.int64)], [np.full(20, 500), np.full(2, 500)],
                        hw=small_hw(), windows=5)
    emu = Emulator(prog)
    init = emu.init
    assert init["sram_writes"] == {"w": 20 * 4 + 2 * 20, "v": 22, "a": 0, "s": 22 + 3 * 1 + 1 * 1}
    assert init["flits"] == sum(init["sram_writes"].values())
    assert init["cycles"] >= init["flits"]  # one flit per cycle through the host port
    res = emu.run(np.zeros((1, 4), np.uint8))
    assert res.frame_counters[0, CN.IDX["w_reads"]] == 0 and res.cycles[0] > 0


def test_packet_trace_in_the_spec_flit_format():
    from yoso_backend.hardware import KIND_SPIKE, KIND_TO_HOST
    from yoso_backend.synth import random_program

    prog = random_program([30, 20, 5], seed=1, windows=300, hw=small_hw(neurons=8, weights=256, tbits=9))
    emu = Emulator(prog)
    res = emu.run(np.random.default_rng(0).integers(0, 256, (2, 30)).astype(np.uint8), record=True)
    pk = emu.packets(res, 1)
    c = res.frame_pe_counters[1]
    to_host = (res.fire[-1][1] >= 0).sum()
    assert len(pk) == c[:, CN.IDX["packets_received"]].sum() + to_host
    assert (np.diff(pk["step"]) >= 0).all()
    flit = prog.hw.flit
    for row in pk:
        f = flit.unpack(int(row["flit"]))
        assert f["step"] == row["step"] and f["index"] == row["index"]
        if row["dst_pe"] >= 0:
            assert (f["x"], f["y"], f["kind"]) == (*prog.hw.pe_xy(int(row["dst_pe"])), KIND_SPIKE)
        else:
            assert f["kind"] == KIND_TO_HOST


def test_inconsistent_spike_address_sram_is_a_user_error():
    import pytest

    from stdbp.errors import UserError
    from yoso_backend.synth import random_program

    prog = random_program([30, 20, 5], seed=1, windows=300)
    p = prog.layers[0].pes[0]
    prog.sram[p]["spike_addr"][prog.hw.neurons_per_pe] ^= 1 << 29  # flip the destination's x
    with pytest.raises(UserError, match="spike-address"):
        Emulator(prog)
