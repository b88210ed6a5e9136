"""The link between the float and the integer world (docs/yoso-spec.md section 4, consequences).

For a quantised network with integer input steps and no saturation, every fire step of the
integer reference equals ceil of the exact continuous spike time that the float64 kernel
computes for the same layer (integer weights and threshold, input times = integer steps,
t_max = window). Silent in one <=> silent in the other.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from compiler import CompileOptions, compile_model
from compiler.testmodels import dense_model
from yoso_backend.hardware import from_dict, load_hardware
from yoso_backend.reference import NO_SPIKE, input_steps, run

kernels = pytest.importorskip("stdbp.kernels.cpu")


def wide_hw():
    raw = load_hardware().to_dict()
    raw["bits"]["accumulated_weight"]["value"] = 24
    raw["bits"]["potential"]["value"] = 32
    raw["bits"]["threshold"]["value"] = 30
    return from_dict(raw)


def exact_ceil(t: np.ndarray, wsum: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """ceil((theta + T_C) / W_C) in integers; T_C = t * W_C - theta is an integer (recovered by rounding)."""
    num = np.rint(t * wsum).astype(np.int64)  # theta + T_C
    den = wsum.astype(np.int64)
    return -((-num) // den)


CASES = [
    ("default-hw", None, "layer", 2.0, [784, 120, 10]),
    ("wide-hw-per-neuron", "wide", "neuron", 6.0, [784, 64, 32, 10]),
    ("default-hw-inf-window", None, "layer", math.inf, [784, 40, 10]),
]


@pytest.mark.parametrize("name,hw,scale,t_max,sizes", CASES, ids=[c[0] for c in CASES])
def test_fire_step_is_ceil_of_exact_spike_time(name, hw, scale, t_max, sizes):
    model = dense_model(sizes, seed=11, threshold=0.1, t_max=t_max)
    state = compile_model(model, CompileOptions(scale_mode=scale, early_stop=False),
                          hw=wide_hw() if hw == "wide" else None)
    if hw == "wide" or math.isfinite(t_max):
        assert not [w for w in state.warnings if "saturate" in w], state.warnings
    prog = state.program
    pixels = np.load("models/sample/mnist-test-sample.npz")["images"][:150].reshape(150, -1)
    res = run(prog, pixels)
    x = input_steps(prog, pixels)
    fired_total = 0
    for lay in prog.layers:
        w = prog.layer_weights(lay.index).astype(np.float64)
        theta = prog.layer_thresholds(lay.index)
        t_in = np.where(x >= 0, x, np.inf).astype(np.float64)
        got = res.fire_steps[lay.index]
        if not math.isfinite(t_max):
            # saturation is possible in principle (warning); check it did not happen on these inputs
            assert lay.window_steps == prog.hw.default_window_steps
        # the float kernel takes one threshold: call it per distinct threshold (per-neuron scales)
        for th in np.unique(theta):
            rows = np.flatnonzero(theta == th)
            t, wsum = kernels.dense_forward(t_in, np.ascontiguousarray(w[rows]), float(th), float(lay.window_steps))
            fin = np.isfinite(t)
            expect = np.full(t.shape, NO_SPIKE, dtype=np.int64)
            expect[fin] = np.ceil(t[fin] - 1e-7)  # |float error| << 1e-7 << 1 / W_C
            assert np.array_equal(exact_ceil(t[fin], wsum[fin], np.full(fin.sum(), th)), expect[fin])
            assert np.array_equal(got[:, rows], expect), f"layer {lay.index}"
            fired_total += int(fin.sum())
        x = got
    assert fired_total > 100  # the test exercised real spikes


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
def test_time_unit_alpha_end_to_end(alpha):
    """Integer output spike times (step * alpha / spa) track the float network's for any alpha."""
    sizes = [784, 60, 10]
    model = dense_model(sizes, seed=5, threshold=0.1, t_max=3.0 * alpha, alpha=alpha)
    state = compile_model(model, CompileOptions(early_stop=False))
    prog = state.program
    assert prog.layers[0].window_steps == 765  # 3 alpha at 255 steps per alpha
    pixels = np.load("models/sample/mnist-test-sample.npz")["images"][:100].reshape(100, -1)
    res = run(prog, pixels)
    t = (alpha * (255 - pixels.astype(np.float64)) / 255)
    for lay in state.graph.layers:
        t, _ = kernels.dense_forward(t, lay.weight, lay.threshold, lay.t_max)
    both = np.isfinite(t) & np.isfinite(res.spike_times)
    assert both.mean() > 0.5
    err = np.abs(res.spike_times[both] - t[both]) / alpha  # in alpha units
    assert np.median(err) < 5 / 255  # a few steps: step rounding + 8-bit weights
    assert (np.isfinite(t) == np.isfinite(res.spike_times)).mean() > 0.97
