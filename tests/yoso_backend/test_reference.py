"""Integer reference: equals a pure-Python transcription of the spec, the closed form without
saturation, and the documented boundaries (window end, saturation at both ends, ties, early stop)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yoso_backend.reference import NO_SPIKE, input_steps, run, run_layer, ttfs_prediction

BIG = ((-(1 << 40), 1 << 40), (-(1 << 50), 1 << 50))  # ranges that never saturate in these tests


def literal_layer(steps, w, theta, window, acc_range, v_range, fires=True):
    """docs/yoso-spec.md section 4, rule by rule, in plain Python (slow, obviously the spec)."""
    out_steps, out_v = [], []
    n, m = len(w), len(w[0])
    sat = lambda x, r: min(max(x, r[0]), r[1])  # noqa: E731
    for row in steps:
        a, v, fired, fs = [0] * n, [0] * n, [False] * n, [NO_SPIKE] * n
        for k in range(window + 1):
            for j in range(n):
                if not fired[j]:
                    v[j] = sat(v[j] + a[j], v_range)
            if fires:
                for j in range(n):
                    if not fired[j] and v[j] >= theta[j]:
                        fired[j], fs[j] = True, k
            for i in range(m):  # ascending input index
                if row[i] == k:
                    for j in range(n):
                        a[j] = sat(a[j] + w[j][i], acc_range)
        out_steps.append(fs)
        out_v.append(v)
    return np.array(out_steps), np.array(out_v)


@st.composite
def layer_case(draw):
    m, n, b = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    window = draw(st.integers(0, 25))
    steps = draw(st.lists(st.lists(st.integers(-1, 27), min_size=m, max_size=m), min_size=b, max_size=b))
    w = draw(st.lists(st.lists(st.integers(-9, 9), min_size=m, max_size=m), min_size=n, max_size=n))
    theta = draw(st.lists(st.integers(1, 600), min_size=n, max_size=n))  # some above V_max: never fire
    a_bits, v_bits = draw(st.integers(4, 8)), draw(st.integers(5, 10))
    acc = (-(1 << (a_bits - 1)), (1 << (a_bits - 1)) - 1)
    vr = (-(1 << (v_bits - 1)), (1 << (v_bits - 1)) - 1)
    fires = draw(st.booleans())
    return steps, w, theta, window, acc, vr, fires


@settings(max_examples=250)
@given(layer_case())
def test_kernels_equal_literal_spec_with_saturation(case):
    steps, w, theta, window, acc, vr, fires = case
    lfs, lv = literal_layer(steps, w, theta, window, acc, vr, fires)
    for method in ("steps", "segments"):
        fs, v = run_layer(np.array(steps), np.array(w), np.array(theta), window, acc_range=acc, v_range=vr,
                          fires=fires, method=method)
        assert np.array_equal(fs, lfs), method
        assert np.array_equal(v, lv), method


@settings(max_examples=30)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 300, 4095]))
def test_segment_kernel_equals_step_kernel_on_larger_layers(seed, window):
    rng = np.random.default_rng(seed)
    steps = rng.integers(-1, 300, (8, 60))
    w = rng.integers(-127, 128, (40, 60))
    theta = rng.integers(1, 40000, 40)
    kw = dict(acc_range=(-(1 << 11), (1 << 11) - 1), v_range=(-(1 << 17), (1 << 17) - 1))
    a = run_layer(steps, w, theta, window, method="steps", **kw)
    b = run_layer(steps, w, theta, window, method="segments", **kw)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@settings(max_examples=100)
@given(st.integers(0, 2**32 - 1))
def test_closed_form_without_saturation(seed):
    """V(k) = sum_{k_i <= k} w_i (k - k_i) exactly; fire step = first k with V(k) >= theta."""
    rng = np.random.default_rng(seed)
    m, n, window = 12, 6, 60
    steps = rng.integers(-1, 50, (4, m))
    w = rng.integers(-30, 40, (n, m))
    theta = rng.integers(1, 400, n)
    fs, _ = run_layer(steps, w, theta, window, acc_range=BIG[0], v_range=BIG[1])
    k = np.arange(window + 1)
    dt = np.where(steps[:, None, :] >= 0, np.maximum(k[None, :, None] - steps[:, None, :], 0), 0)  # [B, K, m]
    v = np.einsum("bkm,nm->bkn", dt, w)
    above = v >= theta
    expect = np.where(above.any(axis=1), above.argmax(axis=1), NO_SPIKE)
    assert np.array_equal(fs, expect)


def test_fires_at_the_last_step_of_the_window_not_after():
    # one input at step 0, weight 1, theta 10: V(k) = k, fires at k = 10
    for window, expect in ((10, 10), (9, NO_SPIKE), (11, 10)):
        fs, _ = run_layer(np.array([[0]]), np.array([[1]]), np.array([10]), window, acc_range=BIG[0], v_range=BIG[1])
        assert fs[0, 0] == expect, window


def test_spike_at_fire_step_is_not_causal():
    # inputs at 0 (w=2) and 3 (w=-100): V(3) = 6 >= theta 6 -> fires at 3; the step-3 input comes after the check
    fs, _ = run_layer(np.array([[0, 3]]), np.array([[2, -100]]), np.array([6]), 50, acc_range=BIG[0], v_range=BIG[1])
    assert fs[0, 0] == 3
    fs, _ = run_layer(np.array([[0, 2]]), np.array([[2, -100]]), np.array([6]), 50, acc_range=BIG[0], v_range=BIG[1])
    assert fs[0, 0] == NO_SPIKE


def test_accumulated_weight_saturates_per_spike_in_index_order():
    # A in [-8, 7]; three spikes at step 0 with w = 7, 7, -7: in index order 7 -> 7 (sat) -> 0, so never fires.
    fs, v = run_layer(np.array([[0, 0, 0]]), np.array([[7, 7, -7]]), np.array([1]), 20, acc_range=(-8, 7), v_range=BIG[1])
    assert fs[0, 0] == NO_SPIKE and v[0, 0] == 0
    # order -7, 7, 7: -7 -> 0 -> 7: A = 7, fires at step 1
    fs, _ = run_layer(np.array([[0, 0, 0]]), np.array([[-7, 7, 7]]), np.array([1]), 20, acc_range=(-8, 7), v_range=BIG[1])
    assert fs[0, 0] == 1
    # low end: A clamps at -8
    fs, v = run_layer(np.array([[0, 0]]), np.array([[-7, -7]]), np.array([1]), 3, acc_range=(-8, 7), v_range=BIG[1])
    assert v[0, 0] == -8 * 3


def test_potential_saturates_at_both_ends():
    # low end: V in [-16, 15]: A = -5 for 10 steps -> V clamps at -16; then A = +5 (from step 10): V(k) = -16 + 5 (k - 10)
    fs, _ = run_layer(np.array([[0, 10, 10]]), np.array([[-5, 5, 5]]), np.array([4]), 40, acc_range=BIG[0], v_range=(-16, 15))
    assert fs[0, 0] == 10 + 4  # -16 + 5*4 = 4 >= 4; without the clamp V(10) = -50 and it fires at 10 + 11
    fs, _ = run_layer(np.array([[0, 10, 10]]), np.array([[-5, 5, 5]]), np.array([4]), 40, acc_range=BIG[0], v_range=BIG[1])
    assert fs[0, 0] == 10 + 11
    # high end never changes a fire step (theta <= V_max) but does clamp read-out potentials
    fs, v = run_layer(np.array([[0]]), np.array([[100]]), np.array([15]), 5, acc_range=BIG[0], v_range=(-16, 15))
    assert fs[0, 0] == 1 and v[0, 0] == 15
    _, v = run_layer(np.array([[0]]), np.array([[100]]), np.array([15]), 5, acc_range=BIG[0], v_range=(-16, 15), fires=False)
    assert v[0, 0] == 15


def test_ttfs_ties_and_silence():
    pred, first = ttfs_prediction(np.array([[5, 3, 3], [-1, -1, -1], [0, -1, 7]]))
    assert pred.tolist() == [1, -1, 0]
    assert first.tolist() == [3, NO_SPIKE, 0]


@pytest.fixture(scope="module")
def small_program():
    from compiler import CompileOptions, compile_model
    from compiler.testmodels import dense_model

    model = dense_model([784, 30, 10], seed=1, t_max=3.0)
    return {mode: compile_model(model, CompileOptions(output_mode=mode, early_stop=es)).program
            for mode, es in (("ttfs", True), ("softmax", False))} | {
        "ttfs-full": compile_model(model, CompileOptions(early_stop=False)).program}


@pytest.fixture(scope="module")
def pixels():
    d = np.load("models/sample/mnist-test-sample.npz")
    return d["images"][:64].reshape(64, -1)


def test_input_steps_exact(small_program, pixels):
    prog = small_program["ttfs"]
    steps = input_steps(prog, pixels)
    assert np.array_equal(steps, 255 - pixels.astype(np.int64))
    prog.silent_zero = True
    try:
        steps = input_steps(prog, pixels)
        assert np.array_equal(steps == NO_SPIKE, pixels == 0)
    finally:
        prog.silent_zero = False


def test_run_matches_layerwise_literal(small_program, pixels):
    prog = small_program["ttfs-full"]
    hw = prog.hw
    res = run(prog, pixels[:6])
    x = input_steps(prog, pixels[:6])
    for lay in prog.layers:
        w, th = prog.layer_weights(lay.index), prog.layer_thresholds(lay.index)
        fs, _ = literal_layer(x.tolist(), w.tolist(), th.tolist(), lay.window_steps,
                              (hw.acc_min, hw.acc_max), (hw.v_min, hw.v_max))
        assert np.array_equal(res.fire_steps[lay.index], fs)
        x = fs
    out = res.fire_steps[-1]
    assert np.array_equal(np.isinf(res.spike_times), out < 0)
    assert np.allclose(res.spike_times[out >= 0], out[out >= 0] / 255)


def test_early_stop_keeps_prediction_and_hides_later_spikes(small_program, pixels):
    full, es = run(small_program["ttfs-full"], pixels), run(small_program["ttfs"], pixels)
    assert np.array_equal(full.predictions, es.predictions)
    first = np.where(np.isfinite(full.spike_times), full.spike_times, np.inf).min(axis=1)
    expect = np.where(full.spike_times <= first[:, None], full.spike_times, np.inf)
    assert np.array_equal(es.spike_times, expect)
    assert es.counters["synaptic_events_mean"] <= full.counters["synaptic_events_mean"]
    k_star = np.where(es.predictions >= 0, es.fire_steps[-1].max(axis=1), np.iinfo(np.int32).max)
    for fs_full, fs_es in zip(full.fire_steps, es.fire_steps):
        keep = fs_full <= k_star[:, None]
        assert np.array_equal(fs_es[keep], fs_full[keep])
        assert (fs_es[~keep] == NO_SPIKE).all()


def test_softmax_reads_out_potentials(small_program, pixels):
    prog = small_program["softmax"]
    res = run(prog, pixels)
    assert res.potentials is not None and res.potentials.shape == (len(pixels), 10)
    assert np.isinf(res.spike_times).all()
    assert np.array_equal(res.predictions, np.argmax(res.potentials, axis=1))
    assert (res.fire_steps[-1] == NO_SPIKE).all()


def test_reference_imports_neither_onnx_nor_torch():
    code = ("import sys, yoso_backend.reference, yoso_backend.artifact, yoso_backend.hardware;"
            "bad = [m for m in ('onnx', 'torch', 'onnxruntime') if m in sys.modules];"
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
