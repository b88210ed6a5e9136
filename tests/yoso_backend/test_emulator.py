"""Emulator == integer reference, bit for bit; timing never changes the data."""

from __future__ import annotations

import numpy as np
import pytest

from yoso_backend import counters as CN
from yoso_backend import reference
from yoso_backend.emulator import Emulator, Timing
from yoso_backend.hardware import from_dict, load_hardware
from yoso_backend.synth import make_program, random_program


def small_hw(neurons=8, weights=256, wbits=6, abits=7, vbits=10, tbits=9):
    """A description with tiny PEs (layers spread over several PEs) and narrow words (saturation)."""
    raw = load_hardware("yoso-6x7").to_dict()
    raw["pe"]["neurons"]["value"] = neurons
    raw["pe"]["weights"]["value"] = weights
    raw["pe"]["spike_address_depth"]["value"] = neurons + 64
    raw["bits"]["weight"]["value"] = wbits
    raw["bits"]["accumulated_weight"]["value"] = abits
    raw["bits"]["potential"]["value"] = vbits
    raw["bits"]["threshold"]["value"] = tbits
    return from_dict(raw, where="small_hw")


def assert_same(prog, pixels, mode=None, **kw):
    emu = Emulator(prog, **kw)
    res = emu.run(pixels, mode=mode)
    if mode and mode != prog.output_mode:
        prog = _with_mode(prog, mode)
    ref = reference.run(prog, pixels)
    early = prog.early_stop and prog.output_mode == "ttfs"
    for l, want in enumerate(ref.fire_steps):
        got = res.fire[l + 1]
        if early and l < len(ref.fire_steps) - 1:
            # the frame ends after the first output step: compare what happened up to then
            end = np.where(res.fire[-1].max(axis=1) >= 0, np.where(res.fire[-1] < 0, 1 << 40, res.fire[-1]).min(axis=1),
                           1 << 40)[:, None]
            want = np.where(want > end, -1, want)
        np.testing.assert_array_equal(got, want, err_msg=f"layer {l}")
    np.testing.assert_array_equal(res.predictions, ref.predictions)
    np.testing.assert_array_equal(res.spike_times, ref.spike_times)
    if prog.output_mode == "softmax":
        np.testing.assert_array_equal(res.out_potential, ref.potentials)
    return res


def _with_mode(prog, mode):
    import copy

    p = copy.copy(prog)
    p.output_mode = mode
    p.layers = [copy.copy(l) for l in prog.layers]
    p.layers[-1].fires = mode == "ttfs"
    return p


def _pixels(rng, n, m, levels=None, p_zero=0.5):
    px = rng.integers(0, 256, (n, m)) if levels is None else rng.choice(levels, (n, m))
    px[rng.random((n, m)) < p_zero] = 0
    return px.astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_random_networks_equal_reference(seed):
    rng = np.random.default_rng(seed)
    hw = small_hw()
    sizes = [int(rng.integers(12, 40)), int(rng.integers(9, 30)), int(rng.integers(2, 12))]
    ws, ths = [], []
    for m, n in zip(sizes[:-1], sizes[1:]):
        ws.append(rng.integers(-hw.w_max, hw.w_max + 1, (n, m)))  # negative weights, A saturates at +-64
        ths.append(rng.integers(1, hw.theta_max + 1, n))          # V saturates at both ends (10 bits)
    windows = [int(rng.integers(20, 300)), int(rng.integers(20, 400))]
    mode = "softmax" if seed % 3 == 2 else "ttfs"
    prog = make_program(ws, ths, hw=hw, windows=windows, output_mode=mode, early_stop=seed % 2 == 1,
                        silent_zero=bool(seed % 2))
    levels = [0, 1, 128, 200, 254, 255] if seed % 2 else None  # ties: few distinct steps
    px = _pixels(rng, 40, sizes[0], levels)
    res = assert_same(prog, px)
    assert len({p.pe for p in prog.pes if p.layer == 0}) > 1  # layers really span PEs
    assert (res.fire[1] >= 0).any() and (res.fire[1] < 0).any()


def test_saturation_at_both_ends_is_reached():
    rng = np.random.default_rng(7)
    hw = small_hw()
    ws = [np.full((6, 20), hw.w_max), rng.integers(-hw.w_max, 1, (3, 6))]  # A clips high; V clips low
    ths = [np.full(6, hw.theta_max), np.full(3, 5)]
    prog = make_program(ws, ths, hw=hw, windows=[200, 300], output_mode="softmax")
    px = np.full((3, 20), 255, np.uint8)
    res = assert_same(prog, px)
    assert (res.out_potential == hw.v_min).any()  # lower V saturation happened


def test_all_silent_input():
    prog = random_program([30, 12, 4], seed=1, windows=100, silent_zero=True)
    res = assert_same(prog, np.zeros((5, 30), np.uint8))
    assert (res.fire[1] < 0).all() and (res.predictions == -1).all()


@pytest.mark.parametrize("extra", [0, 1])
def test_fire_at_last_step_of_window(extra):
    # one input at step 0 with weight w: V(k) = w k, theta = w * window (+1) fires at the last step (never)
    window, w = 37, 5
    prog = make_program([np.array([[w]])], [np.array([w * window + extra])], windows=window)
    res = assert_same(prog, np.array([[255]], np.uint8))
    assert res.fire[1][0, 0] == (window if extra == 0 else -1)


def test_record_integrates_every_step_with_the_same_bits():
    prog = random_program([60, 25, 6], seed=3, windows=[300, 350], hw=small_hw(weights=512, tbits=9))
    rng = np.random.default_rng(3)
    px = _pixels(rng, 16, 60)
    emu = Emulator(prog)
    fast, rec = emu.run(px), emu.run(px, record=True)
    for a, b in zip(fast.fire, rec.fire):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast.cycles, rec.cycles)
    np.testing.assert_array_equal(fast.frame_counters, rec.frame_counters)
    np.testing.assert_array_equal(rec.frame_pe_counters.sum(axis=1), rec.frame_counters)
    assert rec.v_trace.shape == (16, 351, 6)
    assert (np.diff(rec.step_start[:, : fast.steps[0] + 1], axis=1) > 0).all()


def test_timing_never_changes_the_data():
    prog = random_program([80, 40, 10], seed=4, windows=400, hw=small_hw(neurons=16, weights=1024, tbits=9))
    px = _pixels(np.random.default_rng(4), 24, 80)
    base = Emulator(prog).run(px)
    for t in (Timing(fifo_depth=1), Timing(hop_cycles=7, flits_per_packet=1, load_cycles=5),
              Timing(lanes=3, pipe_cycles=9, sweep_latency=0, step_overhead=20)):
        other = Emulator(prog, timing=t).run(px)
        for a, b in zip(base.fire, other.fire):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(base.out_potential, other.out_potential)
        if t.fifo_depth == 1:  # the load stage is the bottleneck: a shallow FIFO stalls the NoC instead
            stall = CN.IDX["fifo_stall_cycles"]
            assert other.frame_counters[:, stall].sum() > base.frame_counters[:, stall].sum()
        else:
            assert not np.array_equal(base.cycles, other.cycles)


def test_modes_switch_at_run_time():
    prog = random_program([40, 20, 5], seed=5, windows=300)
    px = _pixels(np.random.default_rng(5), 10, 40)
    assert_same(prog, px, mode="softmax")
    assert_same(prog, px, mode="ttfs")


def test_early_stop_ends_the_frame_sooner():
    prog = random_program([40, 20, 5], seed=6, windows=600)
    px = _pixels(np.random.default_rng(6), 10, 40)
    emu = Emulator(prog)
    full, early = emu.run(px, early_stop=False), emu.run(px, early_stop=True)
    assert (early.cycles < full.cycles).all() and (early.steps < full.steps).all()
    np.testing.assert_array_equal(full.predictions, early.predictions)
