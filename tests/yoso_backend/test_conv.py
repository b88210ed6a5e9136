"""Conv and min-pool layers: emulator == integer reference on random small networks (hypothesis),
saturation included; the reference's pool equals the float op; geometry against a direct loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from compiler import CompileOptions, compile_model
from compiler.testmodels import cnn_model
from stdbp.errors import UserError
from tests.yoso_backend.test_emulator import assert_same, small_hw
from yoso_backend import geometry, reference
from yoso_backend.emulator import Emulator


@st.composite
def conv_nets(draw):
    c = draw(st.integers(1, 2))
    h = draw(st.integers(5, 9))
    w = draw(st.integers(5, 9))
    layers = []
    hh, ww = h, w
    for _ in range(draw(st.integers(1, 2))):
        k = draw(st.integers(1, min(3, hh, ww)))
        s = draw(st.integers(1, 2))
        p = draw(st.integers(0, k - 1))
        layers.append(("conv", draw(st.integers(1, 4)), k, s, p))
        hh, ww = geometry.out_size(hh, k, s, p, p), geometry.out_size(ww, k, s, p, p)
        if hh >= 2 and ww >= 2 and draw(st.booleans()):
            s2 = draw(st.integers(1, 2))
            p2 = draw(st.integers(0, 1))
            layers.append(("pool", 2, s2, p2))
            hh, ww = geometry.out_size(hh, 2, s2, p2, p2), geometry.out_size(ww, 2, s2, p2, p2)
        if hh < 3 or ww < 3:
            break
    layers += [("dense", draw(st.integers(3, 7))), ("dense", draw(st.integers(2, 4)))]
    return dict(in_shape=(c, h, w), layers=tuple(layers), seed=draw(st.integers(0, 10_000)),
                silent_zero=draw(st.integers(0, 1)), t_max=draw(st.sampled_from([math.inf, 1.5, 3.0])),
                threshold=draw(st.sampled_from([0.05, 0.2, 0.5])), gain=draw(st.sampled_from([0.5, 1.0, 3.0])))


def _compile(net, hw, spa=16):
    try:
        return compile_model(cnn_model(**net), CompileOptions(steps_per_alpha=spa), hw=hw).program
    except UserError:
        assume(False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=conv_nets(), narrow=st.booleans(), early=st.booleans(), data=st.data())
def test_emulator_equals_reference_on_random_conv_networks(net, narrow, early, data):
    # narrow words make A and V saturate; tiny PEs spread every layer over several PEs
    hw = small_hw(neurons=16, weights=64, wbits=5, abits=6 if narrow else 12, vbits=11 if narrow else 16, tbits=10)
    prog = _compile(net, hw)
    prog.early_stop = early
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    px = rng.integers(0, 256, (12, *net["in_shape"])).astype(np.uint8)
    px[rng.random(px.shape) < 0.4] = 0
    assert_same(prog, px)


def test_saturation_is_reached_and_still_equal():
    net = dict(in_shape=(2, 8, 8), layers=(("conv", 4, 3, 1, 1), ("pool", 2, 2, 0), ("dense", 6), ("dense", 3)),
               seed=3, silent_zero=0, t_max=3.0, threshold=0.5, gain=3.0)
    hw = small_hw(neurons=16, weights=64, wbits=5, abits=5, vbits=10, tbits=9)
    prog = _compile(net, hw)
    px = np.random.default_rng(0).integers(0, 256, (30, 2, 8, 8)).astype(np.uint8)
    res = assert_same(prog, px)
    # some A must hit the 5-bit bounds: replay layer 0 without saturation and see a difference
    steps = reference.input_steps(prog, px)
    w, th = prog.layer_weights(0), prog.layer_thresholds(0)
    wide = reference.run_layer(steps, w, th, prog.layers[0].window_steps, acc_range=(-1 << 40, 1 << 40),
                               v_range=(-1 << 40, 1 << 40))[0]
    assert not np.array_equal(wide, res.fire[1])


def test_pool_reference_equals_the_float_op():
    from stdbp.ops.pool import compute

    g = geometry.Window("pool", (3, 7, 6), 3, (2, 3), (2, 1), (1, 0, 1, 2))
    rng = np.random.default_rng(1)
    steps = rng.integers(-1, 40, (5, g.n_in))
    out = reference.run_pool(steps, g, 30)
    t = np.where((steps >= 0) & (steps <= 30), steps, np.inf).astype(np.float64).reshape(5, *g.in_shape)
    want = compute(t, [2, 3], [2, 1], [1, 0, 1, 2]).reshape(5, -1)
    np.testing.assert_array_equal(np.where(out < 0, np.inf, out), want)


@pytest.mark.parametrize("kind", ["conv", "pool"])
def test_targets_match_a_direct_loop(kind):
    g = geometry.Window(kind, (2, 6, 5), 3 if kind == "conv" else 2, (3, 2), (2, 1), (1, 1, 0, 1))
    c_in, h, w = g.in_shape
    o_n, oh, ow = g.out_shape
    want = set()
    for o in range(o_n):
        for y in range(oh):
            for x in range(ow):
                for c in (range(c_in) if kind == "conv" else [o]):
                    for a in range(g.kernel[0]):
                        for b in range(g.kernel[1]):
                            iy, ix = y * g.strides[0] + a - g.pads[0], x * g.strides[1] + b - g.pads[1]
                            if 0 <= iy < h and 0 <= ix < w:
                                wpos = ((o * c_in + c) * g.kernel[0] + a) * g.kernel[1] + b if kind == "conv" else -1
                                want.add(((c * h + iy) * w + ix, (o * oh + y) * ow + x, wpos))
    off, tgt, wpos = geometry.targets(g)
    got = {(i, int(t), int(p)) for i in range(g.n_in) for t, p in zip(tgt[off[i]:off[i + 1]], wpos[off[i]:off[i + 1]])}
    assert got == want
    for i in range(g.n_in):
        assert (np.diff(tgt[off[i]:off[i + 1]]) > 0).all()


def test_conv_packets_follow_the_destination_ranges():
    net = dict(in_shape=(1, 8, 8), layers=(("conv", 3, 3, 1, 0), ("pool", 2, 2, 0), ("dense", 5)), seed=1,
               silent_zero=0, t_max=math.inf, threshold=0.2, gain=1.0)
    prog = _compile(net, small_hw(neurons=16, weights=64, tbits=10, vbits=16, abits=12))
    emu = Emulator(prog)
    px = np.random.default_rng(2).integers(0, 256, (2, 1, 8, 8)).astype(np.uint8)
    res = emu.run(px, early_stop=False)
    pk = emu.packets(res, 0)
    rx = res.frame_counters[0, __import__("yoso_backend.counters", fromlist=["IDX"]).IDX["packets_received"]]
    assert len(pk) == rx + (res.fire[-1][0] >= 0).sum()
    # an input pixel goes only to the conv PEs that hold a neuron whose window contains it
    conv_pes = set(prog.layers[0].pes)
    first = pk[pk["layer"] == 0]
    assert set(first["dst_pe"]) <= conv_pes and len(first) < len(conv_pes) * (res.fire[0][0] >= 0).sum()


CNN_ONNX = __import__("pathlib").Path(__file__).resolve().parents[2] / "models" / "mnist-cnn" / "model.onnx"


@pytest.mark.slow
@pytest.mark.skipif(not CNN_ONNX.is_file(), reason="models/mnist-cnn not shipped")
def test_shipped_cnn_equals_reference_on_1000_mnist_frames():
    """The paper's CNN on yoso-16x16: zero mismatching fire steps in any layer (closing note: all 10 000)."""
    from stdbp.data import load_dataset
    from yoso_backend.check_equal import compare

    prog = compile_model(str(CNN_ONNX), CompileOptions(hw="yoso-16x16")).program
    assert [l.kind for l in prog.layers] == ["conv", "pool", "conv", "pool", "dense", "dense", "dense"]
    try:
        images, labels = load_dataset("mnist", "test")
    except UserError:
        pytest.skip("MNIST test set not available")
    rep = compare(prog, images[:1000])
    assert rep["fire_steps_checked"] == 1000 * sum(l.n_out for l in prog.layers)
    assert rep["fire_steps_differing"] == 0 and rep["predictions_differing"] == 0, rep
    late = compare(prog, images[:60], early_stop=False)  # every layer to the end of its window
    assert late["fire_steps_differing"] == 0, late
