"""stdbp.kernels: the numpy kernels (as ONNX Runtime calls them), CPU vs torch path, properties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stdbp.kernels import cpu, torch_path
from tests.stdbp.reference import dense_reference


def _mnist_like(rng, batch, n_in, silent=0.0, dtype=np.float32):
    t = (rng.integers(0, 256, (batch, n_in)) / 255.0).astype(dtype)
    t[rng.random(t.shape) < silent] = np.inf
    return t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_api_dtypes_and_layouts(dtype):
    rng = np.random.default_rng(0)
    t = _mnist_like(rng, 5, 20, 0.3, dtype)
    w = rng.normal(0.1, 0.2, (7, 20)).astype(dtype)
    t_out, wsum = cpu.dense_forward(t, w, 1.0, math.inf)
    assert t_out.dtype == dtype and wsum.dtype == dtype and t_out.shape == (5, 7)
    # non-contiguous / other-dtype inputs are converted, results unchanged
    t2, _ = cpu.dense_forward(np.asfortranarray(t), w.astype(np.float64).astype(dtype), 1.0)
    np.testing.assert_array_equal(t2, t_out)
    g_t, g_w = cpu.dense_backward(np.ones_like(t_out), t, w, t_out, wsum)
    assert g_t.shape == t.shape and g_w.shape == w.shape and g_t.dtype == dtype
    assert (wsum[np.isinf(t_out)] == 0).all()


def test_empty_batch_and_bad_threshold():
    w = np.ones((3, 4), np.float32)
    t_out, wsum = cpu.dense_forward(np.zeros((0, 4), np.float32), w, 1.0)
    assert t_out.shape == (0, 3)
    with pytest.raises(ValueError):
        cpu.dense_forward(np.zeros((1, 4), np.float32), w, 0.0)
    with pytest.raises(ValueError):
        cpu.dense_forward(np.zeros((1, 5), np.float32), w, 1.0)


@pytest.mark.parametrize("silent,t_max", [(0.0, math.inf), (0.8, math.inf), (0.3, 0.9)])
def test_cpu_kernel_agrees_with_torch_path_dense(silent, t_max):
    rng = np.random.default_rng(1)
    t = _mnist_like(rng, 16, 120, silent, np.float64)
    w = rng.normal(0.02, 0.05, (40, 120))
    t_c, w_c = cpu.dense_forward(t, w, 1.0, t_max)
    t_t, w_t = torch_path.dense_forward(torch.tensor(t), torch.tensor(w), 1.0, t_max,
                                        chunk_elems=5000)  # several chunks
    assert 0.05 < np.isfinite(t_c).mean() < 1.0 or silent == 0.0
    np.testing.assert_array_equal(np.isinf(t_c), torch.isinf(t_t).numpy())
    np.testing.assert_allclose(t_c, t_t.numpy(), rtol=1e-10)
    np.testing.assert_allclose(w_c, w_t.numpy(), rtol=1e-10, atol=1e-12)
    g = rng.normal(size=t_c.shape)
    gt_c, gw_c = cpu.dense_backward(g, t, w, t_c, w_c)
    gt_t, gw_t, _ = torch_path.dense_backward(torch.tensor(g), torch.tensor(t), torch.tensor(w),
                                              t_t, w_t, chunk_elems=5000)
    np.testing.assert_allclose(gt_c, gt_t.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gw_c, gw_t.numpy(), rtol=1e-9, atol=1e-9)


def test_cpu_kernel_agrees_with_torch_path_float32():
    rng = np.random.default_rng(2)
    t = _mnist_like(rng, 32, 200, 0.2)
    w = rng.normal(0.015, 0.04, (60, 200)).astype(np.float32)
    t_c, _ = cpu.dense_forward(t, w, 1.0, 1.5)
    t_t, _ = torch_path.dense_forward(torch.tensor(t), torch.tensor(w), 1.0, 1.5)
    same = np.isinf(t_c) == torch.isinf(t_t).numpy()
    assert same.mean() > 0.999  # float32 knife edges may flip a rare neuron at t_max
    both = np.isfinite(t_c) & same
    np.testing.assert_allclose(t_c[both], t_t.numpy()[both], rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (2, 1))])
def test_cpu_kernel_agrees_with_torch_path_conv(stride, padding):
    rng = np.random.default_rng(3)
    t = rng.integers(0, 256, (3, 2, 9, 8)) / 255.0
    t[rng.random(t.shape) < 0.3] = np.inf
    w = rng.normal(0.1, 0.2, (4, 2, 3, 3))
    t_c, w_c = cpu.conv2d_forward(t, w, stride, padding, 1.0, 2.0)
    t_t, w_t = torch_path.conv2d_forward(torch.tensor(t), torch.tensor(w), stride, padding,
                                         1.0, 2.0)
    np.testing.assert_allclose(t_c, t_t.numpy(), rtol=1e-10)
    g = rng.normal(size=t_c.shape)
    gt_c, gw_c = cpu.conv2d_backward(g, t, w, t_c, w_c, stride, padding)
    gt_t, gw_t, _ = torch_path.conv2d_backward(torch.tensor(g), torch.tensor(t),
                                               torch.tensor(w), t_t, w_t, stride, padding)
    np.testing.assert_allclose(gt_c, gt_t.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gw_c, gw_t.numpy(), rtol=1e-9, atol=1e-9)


def test_min_pool_kernel_matches_torch():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 5, (2, 3, 7, 6)).astype(np.float32)
    t[rng.random(t.shape) < 0.3] = np.inf
    for kernel, stride, padding in [((2, 2), None, (0, 0)), ((3, 3), (2, 1), (1, 1))]:
        out, idx = cpu.min_pool2d_forward(t, kernel, stride, padding)
        ref, ref_idx = torch_path.min_pool2d_forward(torch.tensor(t), kernel, stride, padding)
        np.testing.assert_array_equal(out, ref.numpy())
        flat = t.reshape(2, 3, -1)
        picked = np.take_along_axis(flat, idx.reshape(2, 3, -1), axis=2).reshape(out.shape)
        np.testing.assert_array_equal(picked, out)  # the index points at the minimum
        assert idx.dtype == np.int64 and (idx >= 0).all()


# --------------------------------------------------------------------------------------------
# properties (hypothesis)
times = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0, math.inf]),
                  st.floats(-2.0, 4.0, allow_nan=False), st.just(math.inf))
weights = st.one_of(st.floats(-3.0, 3.0, allow_nan=False), st.sampled_from([0.0, 1.0, -1.0]))


@st.composite
def neuron_layer(draw):
    n_in = draw(st.integers(1, 7))
    n_out = draw(st.integers(1, 4))
    t = draw(arrays(np.float64, (2, n_in), elements=times))
    w = draw(arrays(np.float64, (n_out, n_in), elements=weights))
    t_max = draw(st.sampled_from([math.inf, 0.5, 1.0, 3.0]))
    theta = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return t, w, t_max, theta


@settings(max_examples=60)
@given(neuron_layer())
def test_property_matches_reference_and_never_nan(case):
    t, w, t_max, theta = case
    t_out, wsum = cpu.dense_forward(t, w, theta, t_max)
    ref, _ = dense_reference(t, w, theta, t_max)
    assert not np.isnan(t_out).any() and not np.isnan(wsum).any()
    np.testing.assert_array_equal(np.isinf(t_out), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(t_out[fin], ref[fin], rtol=1e-9, atol=1e-9)
    # a spike lies after its earliest input and within the window; W_C > 0
    assert (t_out[fin] <= t_max).all() and (wsum[fin] > 0).all()
    first = np.min(t, axis=1, keepdims=True)
    assert (t_out > first)[fin].all()
    g_t, g_w = cpu.dense_backward(np.ones_like(t_out), t, w, t_out, wsum)
    assert np.isfinite(g_t).all() and np.isfinite(g_w).all()
    tt_out, tt_wsum = torch_path.dense_forward(torch.tensor(t), torch.tensor(w), theta, t_max)
    np.testing.assert_array_equal(np.isinf(tt_out.numpy()), np.isinf(t_out))
    gt2, gw2, _ = torch_path.dense_backward(torch.ones_like(tt_out), torch.tensor(t),
                                            torch.tensor(w), tt_out, tt_wsum)
    assert torch.isfinite(gt2).all() and torch.isfinite(gw2).all()


@settings(max_examples=50)
@given(neuron_layer(), st.floats(0.01, 2.0), st.data())
def test_property_raising_a_weight_never_delays_a_spike(case, bump, data):
    # V_j(t) grows pointwise when any w_ij grows, so the first threshold crossing cannot move later
    t, w, t_max, theta = case
    j = data.draw(st.integers(0, w.shape[0] - 1))
    i = data.draw(st.integers(0, w.shape[1] - 1))
    before, _ = cpu.dense_forward(t, w, theta, t_max)
    w2 = w.copy()
    w2[j, i] += bump
    after, _ = cpu.dense_forward(t, w2, theta, t_max)
    assert (after[:, j] <= before[:, j] * (1 + 1e-12) + 1e-12).all()
    others = np.arange(w.shape[0]) != j
    np.testing.assert_array_equal(after[:, others], before[:, others])


@settings(max_examples=30)
@given(neuron_layer(), st.floats(0.1, 10.0))
def test_property_threshold_and_weights_scale_together(case, scale):
    t, w, t_max, theta = case
    a, _ = cpu.dense_forward(t, w, theta, t_max)
    b, _ = cpu.dense_forward(t, w * scale, theta * scale, t_max)
    fin = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_allclose(a[fin], b[fin], rtol=1e-9, atol=1e-9)
    # rounding may flip only neurons that reach theta exactly at t_max
    flip = np.isfinite(a) != np.isfinite(b)
    assert np.all(np.abs(np.where(np.isfinite(a), a, b)[flip] - t_max) < 1e-9)


def test_nan_or_infinite_inputs_are_rejected():
    w = np.ones((2, 3), np.float32)
    for bad in (np.nan, -np.inf):
        with pytest.raises(ValueError):
            cpu.dense_forward(np.array([[0.0, bad, 1.0]], np.float32), w)
    with pytest.raises(ValueError):
        cpu.dense_forward(np.zeros((1, 3), np.float32), np.array([[1, np.inf, 0]] * 2, np.float32))
    with pytest.raises(ValueError):
        cpu.conv2d_forward(np.full((1, 1, 3, 3), np.nan), np.ones((1, 1, 2, 2)))
    # +inf inputs are fine: no spike
    t_out, _ = cpu.dense_forward(np.full((1, 3), np.inf, np.float32), w)
    assert np.isinf(t_out).all()


# --------------------------------------------------------------------------------------------
# the blocked forward and the two backward paths (all-causal products / masked event kernel)
def _walk_per_sample(t, w, theta, t_max):
    """The unblocked event walk of `_neuron`, one sample at a time (the pre-blocking kernel)."""
    from stdbp.kernels._neuron import active, column_sums, walk

    p = np.array([theta, t_max, np.inf], t.dtype)
    wT = np.ascontiguousarray(w.T)
    s_all, _ = column_sums(wT)
    n_out = w.shape[0]
    t_out = np.empty((t.shape[0], n_out), t.dtype)
    wsum = np.empty_like(t_out)
    scratch = [np.empty(n_out, t.dtype) for _ in range(3)]
    for b in range(t.shape[0]):
        order, n_act = active(t[b], p[1])
        walk(t[b], order, n_act, wT, s_all, p, *scratch, t_out[b], wsum[b])
    return t_out, wsum


@pytest.mark.parametrize("n_out,t_max", [(300, math.inf), (130, 0.9), (40, 1.2), (5, 1.2)])
def test_blocked_forward_is_bit_identical_to_the_event_walk(n_out, t_max, monkeypatch):
    # several output blocks, a partial last block, ties (256 pixel levels) and silent inputs
    from stdbp.kernels._dense import pack_blocks

    monkeypatch.setattr(cpu, "FORWARD_PATH", "blocked")
    rng = np.random.default_rng(5)
    t = _mnist_like(rng, 9, 150, 0.3)
    t[:3] = np.round(t[:3] * 4) / 4  # big tie groups
    t[3, :] = np.inf  # a sample without any input spike
    t[4, :40:2], t[4, 1:40:2] = -0.0, 0.0  # one group of mixed zeros (radix: -0 before +0)
    w = rng.normal(0.02, 0.05, (n_out, 150)).astype(np.float32)
    got, got_w = cpu.dense_forward(t, w, 1.0, t_max)
    ref, ref_w = _walk_per_sample(t, w, 1.0, t_max)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got_w, ref_w)
    assert np.isfinite(got).any() and np.isinf(got).any()
    if n_out == 300:
        assert pack_blocks(w).shape[0] >= 2  # several output blocks


@pytest.mark.parametrize("products", ["always", "never"])
@pytest.mark.parametrize("need_t,need_w", [(True, True), (False, True), (True, False)])
def test_backward_mixes_all_causal_and_masked_pairs_exactly(need_t, need_w, products, monkeypatch):
    from tests.stdbp.reference import dense_grad_reference

    monkeypatch.setattr(cpu, "BACKWARD_PRODUCTS", products)
    rng = np.random.default_rng(6)
    t = _mnist_like(rng, 6, 30, 0.2, np.float64)
    t[0] = np.round(t[0] * 2) / 2  # ties
    t[1, :] = np.inf  # no input: every output silent
    t[2, :] = rng.integers(0, 256, 30) / 255.0  # no silent input: the rank-1 branch
    w = rng.normal(0.05, 0.1, (25, 30))
    t_out, wsum = cpu.dense_forward(t, w, 1.0, 2.0)
    last = np.where(np.isfinite(t), t, -np.inf).max(axis=1, keepdims=True)
    fired = np.isfinite(t_out)
    assert (fired & (t_out > last)).any() and (fired & (t_out <= last)).any()  # both paths
    g = rng.normal(size=t_out.shape)
    g_t, g_w, _ = cpu.dense_backward_counted(g, t, w, t_out, wsum, None, need_t, need_w)
    ref_t, ref_w = dense_grad_reference(g, t, w, 1.0, 2.0)
    if need_t:
        np.testing.assert_allclose(g_t, ref_t, rtol=1e-9, atol=1e-12)
        assert (g_t[~np.isfinite(t)] == 0).all()
    else:
        assert (g_t == 0).all()
    if need_w:
        np.testing.assert_allclose(g_w, ref_w, rtol=1e-9, atol=1e-12)
    else:
        assert (g_w == 0).all()


def test_weight_product_leaves_out_inputs_that_never_spike(monkeypatch):
    # inputs silent in every sample get exactly zero gradient; those spiking in one sample
    # only still get theirs
    from tests.stdbp.reference import dense_grad_reference

    monkeypatch.setattr(cpu, "BACKWARD_PRODUCTS", "always")
    rng = np.random.default_rng(8)
    t = _mnist_like(rng, 5, 40, 0.3, np.float64)
    t[:, 30:] = np.inf
    t[1:, 20:24] = np.inf
    w = rng.normal(0.05, 0.1, (12, 40))
    t_out, wsum = cpu.dense_forward(t, w, 1.0, math.inf)
    g = rng.normal(size=t_out.shape)
    g_t, g_w = cpu.dense_backward(g, t, w, t_out, wsum)
    ref_t, ref_w = dense_grad_reference(g, t, w, 1.0, math.inf)
    np.testing.assert_allclose(g_w, ref_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g_t, ref_t, rtol=1e-9, atol=1e-12)
    assert (g_w[:, 30:] == 0).all() and (g_w[:, 20:24] != 0).any()


def test_blas_threads_restores_the_thread_count():
    from stdbp.kernels import _blas

    with _blas.blas_threads(1):
        pass
    if _blas._FUNCS:  # numpy's OpenBLAS found: the count is limited inside, restored after
        get = _blas._FUNCS[0]
        before = get()
        with _blas.blas_threads(1):
            assert get() == 1
        assert get() == before


@pytest.mark.parametrize("n", [5, 48, 49, 140, 784])
def test_argsort_is_the_stable_argsort(n):
    from stdbp.kernels._neuron import argsort

    rng = np.random.default_rng(n)
    for case in range(12):
        v = (rng.integers(0, 8, n) / 7).astype(np.float32)  # ties; most equal to the max
        v[rng.random(n) < 0.6] = v.max()
        if case % 3 == 1:
            v = rng.normal(size=n)  # distinct
        elif case % 3 == 2:
            v[rng.random(n) < 0.9] = np.inf  # mostly silent
        np.testing.assert_array_equal(argsort(v), np.argsort(v, kind="stable"))


@st.composite
def wide_layer(draw):
    # more than 32 outputs: the blocked kernel (group sums, horizon skipping, 4-input passes)
    n_in = draw(st.integers(1, 60))
    n_out = draw(st.integers(33, 150))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    levels = draw(st.sampled_from([3, 17, 256, 0]))  # ties or (0) distinct times
    t = rng.uniform(-0.5, 2.0, (3, n_in))
    if levels:
        t = np.round(t * levels) / levels
    t[rng.random(t.shape) < draw(st.sampled_from([0.0, 0.3]))] = np.inf
    scale = draw(st.sampled_from([0.05, 0.3, 2.0]))
    w = rng.normal(draw(st.sampled_from([0.0, 0.5])) * scale, scale, (n_out, n_in))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    t_max = draw(st.sampled_from([math.inf, 0.7, 1.5]))
    theta = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return t.astype(dtype), w.astype(dtype), t_max, theta


class _forward_path:
    """Force cpu.FORWARD_PATH inside a hypothesis test (no function-scoped fixtures there)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.old, cpu.FORWARD_PATH = cpu.FORWARD_PATH, self.path

    def __exit__(self, *exc):
        cpu.FORWARD_PATH = self.old


@settings(max_examples=60, deadline=None)
@given(wide_layer())
def test_property_blocked_forward_is_bit_identical_to_the_event_walk(case):
    t, w, t_max, theta = case
    with _forward_path("blocked"):
        got, got_w = cpu.dense_forward(t, w, theta, t_max)
    ref, ref_w = _walk_per_sample(t, w, theta, t_max)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got_w, ref_w)


SAMPLE = Path(__file__).resolve().parents[2] / "models" / "sample" / "mnist-test-sample.npz"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_forward_on_mnist_digits_is_bit_identical(dtype, monkeypatch):
    # real digits: black backgrounds, one big tie group per image. t_max = inf: the last
    # group, taken from the column sums; with one silent pixel it is summed instead (sharing
    # work between images with the same black rows so far); t_max = 1: it never spikes.
    monkeypatch.setattr(cpu, "FORWARD_PATH", "blocked")
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} not present")
    with np.load(SAMPLE) as z:
        img = z["images"][:96].reshape(96, 784).astype(np.int64)
    rng = np.random.default_rng(7)
    t = ((255 - img) / 255.0).astype(dtype)
    w = rng.normal(0.0026, 0.003, (300, 784)).astype(dtype)
    one_silent = t.copy()
    one_silent[:, 0] = np.inf
    for t, scale, t_max in ((t, 1.0, math.inf), (one_silent, 1.0, math.inf), (t, 6.0, 1.0)):
        got, got_w = cpu.dense_forward(t, w * scale, 1.0, t_max)
        ref, ref_w = _walk_per_sample(t, w * scale, 1.0, t_max)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got_w, ref_w)


@pytest.mark.parametrize("path", ["walk", "blocked"])
@pytest.mark.parametrize("dtype,bound", [(np.float32, 1e-5), (np.float64, 1e-13)])
def test_last_group_from_column_sums_matches_the_float64_reference(path, dtype, bound, monkeypatch):
    # every pixel spikes, 80 % of them black at alpha = 1: that last group is taken as
    # s_all - W. Error bound relative to the conditioning kappa = sum_C |w| / |W_C| of each
    # spike (outputs whose causal weights nearly cancel fire late and are ill-conditioned).
    monkeypatch.setattr(cpu, "FORWARD_PATH", path)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (40, 784))
    img[rng.random(img.shape) < 0.8] = 0
    t = (255 - img) / 255.0
    for mean in (0.0, 0.002, 0.01):  # outputs firing after the last group / before it
        w = rng.normal(mean, 0.03, (50, 784))
        got, got_w = cpu.dense_forward(t.astype(dtype), w.astype(dtype))
        ref, ref_w = dense_reference(t, w)
        fin = np.isfinite(ref)
        np.testing.assert_array_equal(np.isfinite(got), fin)
        causal = t[:, None, :] < ref[:, :, None]
        kappa = (np.abs(w)[None] * causal).sum(-1)[fin] / np.abs(ref_w[fin])
        rel = np.abs(got[fin] - ref[fin]) / np.abs(ref[fin])
        assert (rel <= bound * np.maximum(1.0, kappa)).all()
        assert (ref[fin] > 1.0).any()  # some fire after the last group


def test_forward_path_choice_follows_the_tie_groups():
    """The blocked kernel for inputs mostly in big groups of equal times that must be summed
    (MNIST's black pixels at alpha when some inputs never spike), the per-sample walk for
    jittered or continuous times, and for a last group of every-input-spiking samples (both
    kernels take that one from the column sums)."""
    rng = np.random.default_rng(11)
    t = _mnist_like(rng, 32, 784, 0.8)
    t[np.isinf(t)] = 1.0  # black pixels spike at alpha: one big group per sample, the last
    assert cpu._tied_share(t, np.float32(4.0), 16, 32) < 0.3 and not cpu._use_blocked(t, 4.0)
    t[:, :4] = np.inf  # now not every input spikes: the black group is summed row by row
    assert cpu._tied_share(t, np.float32(4.0), 16, 32) > 0.7 and cpu._use_blocked(t, 4.0)
    # an estimate from the first rows: about the same share
    share_8 = cpu._tied_share(t, np.float32(4.0), 16, 8)
    assert abs(share_8 - cpu._tied_share(t, np.float32(4.0), 16, 32)) < 0.1
    jittered = np.maximum(t + rng.normal(0, 0.1, t.shape).astype(np.float32), 0)
    assert cpu._tied_share(jittered, np.float32(4.0), 16, 32) < 0.1
    assert not cpu._use_blocked(jittered, 4.0)
    assert cpu._tied_share(np.full((2, 5), np.inf, np.float32), np.float32(4.0), 16, 16) == 0.0
    # either path, the same spike times
    w = rng.normal(0.01, 0.05, (64, 784)).astype(np.float32)
    a = cpu.dense_forward(t, w, 1.0, 4.0)
    ref = _walk_per_sample(t, w, 1.0, 4.0)
    np.testing.assert_array_equal(a[0], ref[0])
