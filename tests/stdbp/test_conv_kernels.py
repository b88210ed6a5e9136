"""Fast paths of the conv and min-pool kernels (`stdbp.kernels._conv`, `_conv_scatter`, issue
#16) against the per-patch kernel (bit for bit), the float64 event-loop reference and the torch
path."""

from __future__ import annotations

import math
from unittest import mock
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stdbp import functional as SF
from stdbp.kernels import cpu, torch_path
from tests.stdbp.reference import conv2d_reference


FAST_PATHS = ("scatter", "ranked")


def _forward(path, t, w, stride, padding, t_max, threshold=1.0):
    with mock.patch.object(cpu, "CONV_FORWARD", path):
        return cpu.conv2d_forward(t, w, stride, padding, threshold, t_max)


def _assert_fast_paths_are_the_patch_kernel(t, w, stride, padding, t_max):
    """Every fast forward gives the per-patch kernel's spike times and W_C, bit for bit;
    returns the per-patch result."""
    t_p, w_p = _forward("patch", t, w, stride, padding, t_max)
    for path in FAST_PATHS:
        t_f, w_f = _forward(path, t, w, stride, padding, t_max)
        np.testing.assert_array_equal(t_f, t_p, err_msg=path)
        np.testing.assert_array_equal(w_f, w_p, err_msg=path)
    return t_p, w_p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride,padding,t_max", [((1, 1), (0, 0), math.inf), ((2, 1), (1, 2), 1.5),
                                                  ((1, 2), (2, 1), 0.75), ((3, 3), (0, 0), 2.0)])
@pytest.mark.parametrize("all_spike", [False, True])
def test_fast_forwards_are_the_patch_kernel_and_the_reference(dtype, stride, padding, t_max,
                                                              all_spike):
    rng = np.random.default_rng(11)
    t = (rng.integers(0, 8, (3, 2, 9, 8)) / 4.0).astype(dtype)  # many ties
    if not all_spike:
        t[rng.random(t.shape) < 0.3] = np.inf
    w = rng.normal(0.2, 0.5, (5, 2, 3, 3)).astype(dtype)
    t_r, w_r = _assert_fast_paths_are_the_patch_kernel(t, w, stride, padding, t_max)
    ref, ref_w = conv2d_reference(t, w, stride, padding, 1.0, t_max)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    fin = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(t_r), fin)
    np.testing.assert_allclose(t_r[fin], ref[fin], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(w_r, ref_w, rtol=rtol, atol=rtol)


def _shipped_cnn_and_digits(n):
    """The shipped `models/mnist-cnn` and the first n MNIST test digits as [n, 1, 28, 28]."""
    model_pt = Path(__file__).resolve().parents[2] / "models" / "mnist-cnn" / "model.pt"
    if not model_pt.is_file():
        pytest.skip("models/mnist-cnn not present")
    from stdbp.data import load_dataset
    from stdbp.train.card import load_shipped

    snn, _ = load_shipped(model_pt.parent)
    images, _ = load_dataset("mnist", "test")
    return snn, torch.from_numpy(images[:n].copy()).reshape(n, 1, 28, 28)


def test_fast_forwards_on_mnist_and_a_trained_cnn_are_bit_identical():
    """The shipped CNN's conv layers on MNIST digits (jittered, silent black pixels and
    every pixel spiking), float32: the spike times of training, bit for bit."""
    from stdbp.data import SpikeJitter

    snn, pix = _shipped_cnn_and_digits(24)
    jit = SpikeJitter(0.14, torch.Generator().manual_seed(0))
    for silent in (True, False):
        with torch.no_grad():
            t0 = SF.encode_intensity(pix, silent_zero=silent)
            for t in (t0, jit(t0)):
                t1 = snn[1](t)
                p1 = SF.spike_min_pool2d(t1, 2)
                for x, layer in ((t.numpy(), snn[1]), (p1.numpy(), snn[3])):
                    w = layer.weight.detach().numpy()
                    a, _ = _assert_fast_paths_are_the_patch_kernel(x, w, 1, 0, 8.0)
                    assert np.isfinite(a).any()


times = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0, math.inf]),
                  st.floats(-2.0, 4.0, allow_nan=False, width=32), st.just(math.inf))


@st.composite
def conv_case(draw):
    c = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, wd = draw(st.integers(kh, 7)), draw(st.integers(kw, 7))
    t = draw(arrays(np.float32, (2, c, h, wd), elements=times))
    w = draw(arrays(np.float32, (draw(st.integers(1, 4)), c, kh, kw),
                    elements=st.floats(-3.0, 3.0, allow_nan=False, width=32)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))  # 3 > kernel: skipped inputs
    padding = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)))
    return t, w, stride, padding, draw(st.sampled_from([math.inf, 0.5, 1.0, 3.0]))


@settings(max_examples=80, deadline=None)
@given(conv_case())
def test_property_fast_forwards_are_bit_identical(case):
    _assert_fast_paths_are_the_patch_kernel(*case)


def test_forward_path_choice():
    path = cpu._conv_forward_path
    assert path(784, 25, 24 * 24, 16, 4) == "scatter"  # the CNN's conv1: 184 KiB of state
    assert path(16 * 12 * 12, 16 * 25, 8 * 8, 32, 4) == "scatter"  # conv2: 40 KiB
    # big images: the state would leave the cache; ranked while a field's bitmap is short
    assert path(4 * 160 * 250, 4 * 16, 158 * 248, 16, 4) == "patch"
    assert path(16 * 32 * 32, 16 * 49, 26 * 26, 128, 4) == "ranked"
    with mock.patch.object(cpu, "CONV_FORWARD", "patch"):
        assert path(784, 25, 24 * 24, 16, 4) == "patch"


@pytest.mark.parametrize("kernel,stride,padding", [((2, 2), None, (0, 0)), ((3, 3), (2, 1), (1, 1)),
                                                   ((3, 2), (1, 1), (0, 1))])
def test_min_pool_backward_matches_the_torch_path(kernel, stride, padding):
    """Overlapping windows (sums), silent windows (no gradient) and ties."""
    rng = np.random.default_rng(5)
    t = rng.integers(0, 4, (2, 3, 7, 6)).astype(np.float32)
    t[rng.random(t.shape) < 0.5] = np.inf
    t[0, 0] = np.inf  # a silent plane
    out, idx = cpu.min_pool2d_forward(t, kernel, stride, padding)
    g = rng.normal(size=out.shape).astype(np.float32)
    got = cpu.min_pool2d_backward(g, out, idx, t.shape)
    tg = torch.tensor(g)
    ref = torch_path.min_pool2d_backward(torch.where(torch.isfinite(torch.tensor(out)), tg,
                                                     torch.zeros_like(tg)),
                                         torch.from_numpy(idx), t.shape).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
    assert (got[0, 0] == 0).all()


def test_spike_min_pool2d_numba_and_torch_backends_agree():
    rng = np.random.default_rng(6)
    t = rng.integers(0, 6, (3, 4, 8, 8)).astype(np.float64) / 3
    t[rng.random(t.shape) < 0.4] = np.inf
    res = {}
    for backend in ("numba", "torch"):
        tt = torch.tensor(t, requires_grad=True)
        out = SF.spike_min_pool2d(tt, 2, backend=backend)
        g = torch.tensor(rng.normal(size=out.shape)) if not res else res["g"]
        out.backward(g)
        res.setdefault("g", g)
        res[backend] = (out.detach().numpy(), tt.grad.numpy())
    np.testing.assert_array_equal(res["numba"][0], res["torch"][0])
    np.testing.assert_array_equal(res["numba"][1], res["torch"][1])


# --- backward: the fired-output kernel (`_conv_grad`) against the per-field kernel ------------
def _backward(path, *args, **kw):
    with mock.patch.object(cpu, "CONV_BACKWARD", path):
        return cpu.conv2d_backward_counted(*args, **kw)


def _assert_fired_backward_is_the_patch_kernel(g, t, w, stride, padding, delta_clip=None):
    t_o, w_o = cpu.conv2d_forward(t, w, stride, padding, 1.0, 3.0)
    for need_t in (True, False):
        a = _backward("patch", g, t, w, t_o, w_o, stride, padding, delta_clip, need_grad_t=need_t)
        b = _backward("auto", g, t, w, t_o, w_o, stride, padding, delta_clip, need_grad_t=need_t)
        np.testing.assert_array_equal(b[0], a[0])
        np.testing.assert_array_equal(b[1], a[1])
        assert b[2] == a[2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 1), (1, 2)), ((3, 3), (0, 0))])
@pytest.mark.parametrize("density,delta_clip", [(0.1, None), (1.0, None), (0.5, 0.05)])
def test_fired_backward_is_the_patch_kernel(dtype, stride, padding, density, delta_clip):
    """Sparse gradients (as after a min-pool), dense ones, a clip; padded and strided fields."""
    rng = np.random.default_rng(5)
    t = (rng.integers(0, 12, (3, 2, 9, 8)) / 4.0).astype(dtype)
    t[rng.random(t.shape) < 0.3] = np.inf
    w = rng.normal(0.3, 0.5, (5, 2, 3, 3)).astype(dtype)
    t_o, _ = cpu.conv2d_forward(t, w, stride, padding, 1.0, 3.0)
    g = (rng.normal(0, 1, t_o.shape) * (rng.random(t_o.shape) < density)).astype(dtype)
    assert np.isfinite(t_o).any()
    _assert_fired_backward_is_the_patch_kernel(g, t, w, stride, padding, delta_clip)


@settings(max_examples=60, deadline=None)
@given(conv_case(), st.integers(0, 2**31 - 1))
def test_property_fired_backward_is_bit_identical(case, seed):
    t, w, stride, padding, _ = case
    t_o, _ = cpu.conv2d_forward(t, w, stride, padding, 1.0, 3.0)
    rng = np.random.default_rng(seed)
    g = (rng.normal(0, 1, t_o.shape) * (rng.random(t_o.shape) < 0.3)).astype(np.float32)
    _assert_fired_backward_is_the_patch_kernel(g, t, w, stride, padding)


def test_fired_backward_on_a_trained_cnn_is_bit_identical():
    """The shipped CNN on MNIST digits, with the gradients its min-pools pass back."""
    snn, pix = _shipped_cnn_and_digits(16)
    t0 = SF.encode_intensity(pix, silent_zero=True)
    with torch.no_grad():
        p1 = SF.spike_min_pool2d(snn[1](t0), 2)
    gen = torch.Generator().manual_seed(3)
    for x, layer in ((t0, snn[1]), (p1, snn[3])):
        y = layer(x).detach().requires_grad_(True)
        pooled = SF.spike_min_pool2d(y, 2)
        g = torch.where(torch.isfinite(pooled), torch.randn(pooled.shape, generator=gen),
                        torch.zeros_like(pooled))
        pooled.backward(g)
        go = y.grad.numpy()
        assert (go != 0).any()
        w = layer.weight.detach().numpy()
        t_o, w_o = cpu.conv2d_forward(x.numpy(), w, 1, 0, 1.0, 8.0)
        a = _backward("patch", go, x.numpy(), w, t_o, w_o)
        b = _backward("auto", go, x.numpy(), w, t_o, w_o)
        np.testing.assert_array_equal(b[0], a[0])
        np.testing.assert_array_equal(b[1], a[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("delta_clip", [None, 0.3])
def test_dense_delta_is_the_numpy_formula(dtype, delta_clip):
    """The compiled delta = g / W (fired outputs only, optional clamp) against the numpy
    expression it replaced, bit for bit, with its clip count."""
    rng = np.random.default_rng(8)
    t_o = rng.uniform(0, 4, (7, 3, 5, 4)).astype(dtype)
    t_o[rng.random(t_o.shape) < 0.3] = np.inf
    wsum = rng.normal(0, 1, t_o.shape).astype(dtype)
    wsum[rng.random(t_o.shape) < 0.1] = 0
    g = rng.normal(0, 1, t_o.shape).astype(dtype)
    fired = np.isfinite(t_o) & (wsum != 0)
    ref = np.zeros_like(t_o)
    np.divide(g, wsum, out=ref, where=fired)
    n_ref = 0
    if delta_clip is not None:
        n_ref = int((np.abs(ref) > delta_clip).sum())
        np.clip(ref, -delta_clip, delta_clip, out=ref)
    delta, n = cpu.dense_delta(g, t_o, wsum, delta_clip)
    assert delta.dtype == ref.dtype
    np.testing.assert_array_equal(delta, ref)
    assert n == n_ref and (delta_clip is None or n > 0)
    empty, n0 = cpu.dense_delta(g[:0], t_o[:0], wsum[:0], delta_clip)
    assert empty.shape == (0, 3, 5, 4) and n0 == 0
