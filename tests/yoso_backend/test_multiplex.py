"""Time-multiplexed PEs (docs/yoso-spec.md 4c): fewer PEs, the same integer results, more cycles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compiler import CompileOptions, compile_model
from compiler.testmodels import cnn_model, dense_model
from stdbp.errors import UserError
from tests.yoso_backend.test_emulator import assert_same, small_hw
from yoso_backend import counters as CN
from yoso_backend.hardware import load_hardware, multiplexed
from yoso_backend.runtime_backend import energy_description


def test_multiplexed_description_scales_the_banks_and_says_so():
    hw = load_hardware("yoso-6x7")
    tm = multiplexed(hw, 3)
    assert tm.name == "yoso-6x7-tm3"
    assert (tm.neurons_per_pe, tm.weights_per_pe) == (3 * hw.neurons_per_pe, 3 * hw.weights_per_pe)
    assert tm.spike_address_depth == 3 * hw.spike_address_depth
    for key in ("neurons", "weights", "spike_address_depth"):
        assert tm.raw["pe"][key]["source"] == "assumption"
        assert "time-multiplexed" in tm.raw["pe"][key]["note"]
    # the chip is the same: mesh, clock, words and static power do not change
    assert (tm.mesh_width, tm.mesh_height, tm.n_pe) == (hw.mesh_width, hw.mesh_height, hw.n_pe)
    assert tm.raw["clock"] == hw.raw["clock"]
    assert tm.raw["energy"]["static_power_mw"]["value"] == hw.raw["energy"]["static_power_mw"]["value"]
    assert multiplexed(hw, 1) is hw
    with pytest.raises(UserError, match="groups"):
        multiplexed(hw, 0)


def test_does_not_fit_names_the_multiplex_option_and_it_fits():
    model = dense_model([784, 2000, 10])
    with pytest.raises(UserError, match=r"--multiplex 3 \(time-multiplexing"):
        compile_model(model, CompileOptions(hw="yoso-6x7"))
    state = compile_model(model, CompileOptions(hw="yoso-6x7", multiplex=3))
    assert state.program.hw.name == "yoso-6x7-tm3"
    used = {pe for lay in state.program.layers for pe in lay.pes}
    assert 42 >= len(used) > 42 // 3  # 102 PEs' worth of neurons on at most 42 PEs


def _net():
    return cnn_model((2, 9, 9), (("conv", 4, 3, 1, 1), ("pool", 2, 2, 0), ("dense", 12), ("dense", 4)),
                     seed=5, threshold=0.3, t_max=3.0, gain=1.0)


def test_multiplexed_program_equals_reference_and_unmultiplexed_results_and_costs_cycles():
    hw = small_hw(neurons=16, weights=64, wbits=6, abits=7, vbits=11, tbits=10)
    one = compile_model(_net(), CompileOptions(steps_per_alpha=16), hw=hw).program
    two = compile_model(_net(), CompileOptions(steps_per_alpha=16, multiplex=2), hw=hw).program
    assert two.hw.name.endswith("-tm2")
    pes = lambda prog: len({pe for lay in prog.layers for pe in lay.pes})  # noqa: E731
    assert pes(two) < pes(one)
    px = np.random.default_rng(1).integers(0, 256, (40, 2, 9, 9)).astype(np.uint8)
    px[np.random.default_rng(2).random(px.shape) < 0.4] = 0
    for prog in (one, two):
        prog.early_stop = False
    r1, r2 = assert_same(one, px), assert_same(two, px)
    # the quantised network does not depend on the mapping: the same spikes on every layer
    for a, b in zip(r1.fire, r2.fire):
        np.testing.assert_array_equal(a, b)
    # each PE sweeps up to twice the neurons: its core is busier; fewer PEs also means fewer
    # fan-out packets, so the frame's cycles may go either way on a network this small
    busy = lambda r: r.pe_counters[:, CN.IDX["busy_cycles"]].max()  # noqa: E731
    assert busy(r2) > busy(r1)
    recv = lambda r: r.frame_counters[:, CN.IDX["packets_received"]].sum()  # noqa: E731
    assert recv(r2) < recv(r1)


def test_multiplexed_program_runs_on_the_calibrated_clock():
    prog_hw = multiplexed(load_hardware("yoso-6x7"), 3)
    hw = energy_description(prog_hw)
    assert hw.name == "yoso-6x7-calibrated-tm3"
    cal = load_hardware("yoso-6x7-calibrated")
    assert hw.raw["clock"]["frequency_hz"]["value"] == cal.raw["clock"]["frequency_hz"]["value"]
    assert not math.isclose(hw.raw["clock"]["frequency_hz"]["value"],
                            prog_hw.raw["clock"]["frequency_hz"]["value"])


def test_the_papers_cnn_fits_the_6x7_chip_with_a_wider_index_and_multiplexing():
    from pathlib import Path

    cnn = Path(__file__).resolve().parents[2] / "models" / "mnist-cnn" / "model.onnx"
    with pytest.raises(UserError, match=r"use --hw yoso-16x16 or --hw yoso-6x7-wide --multiplex 3"):
        compile_model(str(cnn), CompileOptions(hw="yoso-6x7"))
    with pytest.raises(UserError, match=r"needs 88 PEs.*--multiplex 3"):
        compile_model(str(cnn), CompileOptions(hw="yoso-6x7-wide"))
    prog = compile_model(str(cnn), CompileOptions(hw="yoso-6x7-wide", multiplex=3)).program
    used = {pe for lay in prog.layers for pe in lay.pes}
    assert prog.hw.name == "yoso-6x7-wide-tm3" and len(used) <= 42
