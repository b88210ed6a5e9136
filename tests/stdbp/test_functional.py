"""stdbp.functional and stdbp.nn against the float64 event-loop reference (tests/stdbp/reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stdbp import functional as SF
from stdbp import nn as snn
from tests.stdbp.cases import T_MAX_CHOICES, dense_case
from tests.stdbp.reference import (conv2d_reference, dense_grad_reference, dense_reference,
                                   min_pool_reference)

BACKENDS = ["numba", "torch"]
DTYPES = [torch.float64, torch.float32]


def assert_times(got, ref, rtol):
    got = np.asarray(got, dtype=np.float64)
    assert not np.isnan(got).any()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_forward_matches_reference(backend, dtype):
    rng = np.random.default_rng(0)
    for trial in range(25):
        t, w = dense_case(rng)
        t_max = T_MAX_CHOICES[trial % len(T_MAX_CHOICES)]
        ref, ref_w = dense_reference(t, w, 1.0, t_max)
        out, wsum = SF.relpsp_dense(torch.tensor(t, dtype=dtype), torch.tensor(w, dtype=dtype),
                                    1.0, t_max, backend=backend, return_wsum=True)
        assert out.dtype == dtype
        rtol = 1e-10 if dtype == torch.float64 else 1e-4
        assert_times(out, ref, rtol)
        np.testing.assert_allclose(wsum.numpy(), ref_w, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_threshold_scaling_and_all_silent(backend):
    t = np.array([[0.0, 0.5, np.inf], [np.inf, np.inf, np.inf]])
    w = np.array([[0.5, 1.0, 3.0], [-1.0, 4.0, 1.0]])
    for theta in (0.25, 1.0, 2.5):
        ref, _ = dense_reference(t, w, theta)
        out = SF.relpsp_dense(torch.tensor(t), torch.tensor(w), theta, backend=backend)
        assert_times(out, ref, 1e-12)
    assert torch.isinf(out[1]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_t_max_is_inclusive_and_strict_causality(backend):
    # input 0 at t=0 (w=1) alone reaches theta=1 exactly at t=1; input 1 also arrives at t=1
    t = torch.tensor([[0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[1.0, 5.0]], dtype=torch.float64, requires_grad=True)
    out, wsum = SF.relpsp_dense(t, w, 1.0, 1.0, backend=backend, return_wsum=True)
    assert out.item() == 1.0 and wsum.item() == 1.0  # fires at t_max, input 1 not causal
    out.sum().backward()
    assert w.grad[0, 1].item() == 0.0 and t.grad[0, 1].item() == 0.0
    assert w.grad[0, 0].item() == pytest.approx(-1.0) and t.grad[0, 0].item() == pytest.approx(1)
    just_before = math.nextafter(1.0, 0.0)
    silent = SF.relpsp_dense(t.detach(), w.detach(), 1.0, just_before, backend=backend)
    assert math.isinf(silent.item())


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_gradient_matches_eq13_14(backend):
    rng = np.random.default_rng(1)
    for trial in range(10):
        t, w = dense_case(rng)
        t_max = T_MAX_CHOICES[trial % len(T_MAX_CHOICES)]
        g = rng.normal(size=(t.shape[0], w.shape[0]))
        tt = torch.tensor(t, requires_grad=True)
        ww = torch.tensor(w, requires_grad=True)
        out = SF.relpsp_dense(tt, ww, 1.0, t_max, backend=backend)
        out.backward(torch.tensor(g))
        ref_t, ref_w = dense_grad_reference(g, t, w, 1.0, t_max)
        assert not torch.isnan(tt.grad).any() and not torch.isnan(ww.grad).any()
        np.testing.assert_allclose(tt.grad.numpy(), ref_t, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ww.grad.numpy(), ref_w, rtol=1e-9, atol=1e-9)


def _finite_difference(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        grad[idx] = (f(xp) - f(xm)) / (2 * eps)
    return grad


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_gradient_matches_finite_differences(backend):
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 1, (3, 6))  # continuous times: no knife edges within eps
    t[0, 2] = np.inf
    w = rng.normal(0.4, 0.4, (4, 6))
    coef = rng.normal(size=(3, 4))
    base = SF.relpsp_dense(torch.tensor(t), torch.tensor(w), backend=backend).numpy()
    fired = np.isfinite(base)
    assert fired.sum() >= 6

    def loss(t_, w_):
        out = SF.relpsp_dense(torch.tensor(t_), torch.tensor(w_), backend=backend).numpy()
        assert np.array_equal(np.isfinite(out), fired)  # eps never switches a neuron
        return float((np.where(fired, out, 0) * coef).sum())

    tt = torch.tensor(t, requires_grad=True)
    ww = torch.tensor(w, requires_grad=True)
    out = SF.relpsp_dense(tt, ww, backend=backend)
    out.backward(torch.tensor(np.where(fired, coef, 0.0)))
    fd_w = _finite_difference(lambda x: loss(t, x), w)
    np.testing.assert_allclose(ww.grad.numpy(), fd_w, rtol=1e-5, atol=1e-6)
    fin = np.isfinite(t)
    fd_t = _finite_difference(lambda x: loss(np.where(fin, x, np.inf), w), np.where(fin, t, 0))
    np.testing.assert_allclose(tt.grad.numpy()[fin], fd_t[fin], rtol=1e-5, atol=1e-6)
    assert (tt.grad.numpy()[~fin] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,padding,t_max", [((1, 1), (0, 0), math.inf),
                                                  ((2, 1), (1, 2), 1.5), ((1, 2), (2, 1), 0.75)])
def test_conv2d_matches_reference(backend, dtype, stride, padding, t_max):
    rng = np.random.default_rng(3)
    t = rng.integers(0, 8, (2, 2, 6, 7)) / 4.0
    t[rng.random(t.shape) < 0.2] = np.inf
    w = rng.normal(0.3, 0.5, (3, 2, 3, 3))
    ref, ref_w = conv2d_reference(t, w, stride, padding, 1.0, t_max)
    out, wsum = SF.relpsp_conv2d(torch.tensor(t, dtype=dtype), torch.tensor(w, dtype=dtype),
                                 stride, padding, 1.0, t_max, backend=backend, return_wsum=True)
    rtol = 1e-10 if dtype == torch.float64 else 1e-4
    assert_times(out, ref, rtol)
    np.testing.assert_allclose(wsum.numpy(), ref_w, rtol=rtol, atol=rtol)


def _conv_as_dense(t, w, stride, padding):
    """Unrolled patches -> dense problem, so the conv gradient can use the dense reference."""
    import torch.nn.functional as F
    tt = F.pad(torch.tensor(t), (padding[1], padding[1], padding[0], padding[0]), value=math.inf)
    cols = F.unfold(tt, w.shape[2:], stride=stride)  # [B, CKK, L]
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]).numpy()


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_gradient_matches_reference(backend):
    rng = np.random.default_rng(4)
    stride, padding = (2, 1), (1, 1)
    t = rng.integers(0, 8, (2, 2, 5, 6)) / 4.0
    t[rng.random(t.shape) < 0.2] = np.inf
    w = rng.normal(0.3, 0.5, (3, 2, 3, 3))
    tt = torch.tensor(t, requires_grad=True)
    ww = torch.tensor(w, requires_grad=True)
    out = SF.relpsp_conv2d(tt, ww, stride, padding, 1.0, 2.0, backend=backend)
    g = rng.normal(size=out.shape)
    out.backward(torch.tensor(g))
    # the weight gradient equals the dense gradient over all receptive fields
    cols = _conv_as_dense(t, w, stride, padding)
    g_cols = g.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])
    _, ref_w = dense_grad_reference(g_cols, cols, w.reshape(w.shape[0], -1), 1.0, 2.0)
    np.testing.assert_allclose(ww.grad.numpy(), ref_w.reshape(w.shape), rtol=1e-9, atol=1e-9)
    # the input gradient: compare the two backends' patch scatter with a direct sum
    ref_t = np.zeros_like(t)
    ref_cols_t, _ = dense_grad_reference(g_cols, cols, w.reshape(w.shape[0], -1), 1.0, 2.0)
    oh, ow = out.shape[2:]
    ref_cols_t = ref_cols_t.reshape(t.shape[0], oh, ow, t.shape[1], 3, 3)
    for b in range(t.shape[0]):
        for y in range(oh):
            for x in range(ow):
                for c in range(t.shape[1]):
                    for dy in range(3):
                        for dx in range(3):
                            yy, xx = y * stride[0] - padding[0] + dy, x * stride[1] - padding[1] + dx
                            if 0 <= yy < t.shape[2] and 0 <= xx < t.shape[3]:
                                ref_t[b, c, yy, xx] += ref_cols_t[b, y, x, c, dy, dx]
    np.testing.assert_allclose(tt.grad.numpy(), ref_t, rtol=1e-9, atol=1e-9)


def test_min_pool_value_and_gradient():
    rng = np.random.default_rng(5)
    t = rng.integers(0, 6, (2, 3, 6, 7)).astype(np.float64)
    t[rng.random(t.shape) < 0.3] = np.inf
    t[0, 0, :2, :2] = np.inf  # a window with no spike
    tt = torch.tensor(t, requires_grad=True)
    out = SF.spike_min_pool2d(tt, 2)
    np.testing.assert_array_equal(out.detach().numpy(), min_pool_reference(t, (2, 2), (2, 2)))
    g = torch.tensor(rng.normal(size=out.shape))
    out.backward(g)
    grad = tt.grad.numpy()
    assert not np.isnan(grad).any()
    assert (grad[0, 0, :2, :2] == 0).all()  # silent window: no gradient
    # each finite window passes its gradient to exactly one input that holds the minimum
    for b, c, y, x in np.ndindex(out.shape):
        win = grad[b, c, 2 * y:2 * y + 2, 2 * x:2 * x + 2]
        if np.isfinite(out[b, c, y, x].item()):
            nz = np.flatnonzero(win)
            assert len(nz) == 1 and win.flat[nz[0]] == g[b, c, y, x].item()
            assert t[b, c, 2 * y:2 * y + 2, 2 * x:2 * x + 2].flat[nz[0]] == out[b, c, y, x]
    out2 = SF.spike_min_pool2d(torch.tensor(t), 3, stride=1, padding=1)
    padded = np.pad(t, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=np.inf)
    np.testing.assert_array_equal(out2.numpy(), min_pool_reference(padded, (3, 3), (1, 1)))


def test_encode_intensity():
    s = torch.tensor([[0, 1, 128, 255]], dtype=torch.uint8)
    t = SF.encode_intensity(s)
    assert t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), (255 - s.numpy()) / 255, rtol=1e-7)
    t2 = SF.encode_intensity(s, alpha=2.0, silent_zero=True, dtype=torch.float64)
    assert math.isinf(t2[0, 0].item()) and t2[0, 3].item() == 0.0
    assert t2[0, 1].item() == pytest.approx(2 * 254 / 255)
    enc = snn.SpikeEncoder(alpha=2.0, silent_zero=True)
    assert enc.alpha == 2.0 and enc.silent_zero
    assert torch.equal(enc(s), SF.encode_intensity(s, 2.0, True))


def test_nn_modules_expose_hyperparameters_and_stats():
    torch.manual_seed(0)
    lin = snn.RelPspLinear(12, 5, threshold=1.0, t_max=2.0)
    conv = snn.RelPspConv2d(1, 3, 3, stride=2, padding=1, threshold=1.0, t_max=3.0)
    pool = snn.SpikeMinPool2d(2)
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    assert [n for n, _ in conv.named_parameters()] == ["weight"]
    assert conv.stride == (2, 2) and conv.padding == (1, 1) and conv.kernel_size == (3, 3)
    assert lin.threshold == 1.0 and lin.t_max == 2.0 and pool.kernel_size == (2, 2)
    x = torch.rand(4, 1, 8, 8)
    y = pool(conv(x))
    assert y.shape == (4, 3, 2, 2)
    z = lin(y.flatten(1))
    assert 0.0 <= lin.last_fired_fraction <= 1.0 and conv.last_fired_fraction is not None
    assert lin.stats["n_outputs"] == 20
    z.masked_fill(torch.isinf(z), 0).sum().backward()
    assert not torch.isnan(lin.weight.grad).any() and not torch.isnan(conv.weight.grad).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_delta_clip_counts_and_bounds(backend):
    # W_C = 0.01 -> delta = g / 0.01 = 100 > clip 5
    t = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([[0.005, 0.005]], dtype=torch.float64, requires_grad=True)
    stats: dict = {}
    out = SF.relpsp_dense(t, w, 1.0, backend=backend, delta_clip=5.0, stats=stats)
    assert out.item() == pytest.approx(100.0)
    out.sum().backward()
    assert stats["n_clipped"] == 1 and stats["fired_fraction"] == 1.0
    assert w.grad[0, 0].item() == pytest.approx((0.0 - 100.0) * 5.0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        SF.relpsp_dense(torch.zeros(2, 3), torch.zeros(4, 5))
    with pytest.raises(ValueError):
        SF.relpsp_conv2d(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 3, 3))
    with pytest.raises(TypeError):
        SF.relpsp_dense(torch.zeros(2, 3, dtype=torch.int32), torch.zeros(4, 3))
    with pytest.raises(ValueError):
        SF.relpsp_dense(torch.zeros(2, 3), torch.zeros(4, 3), backend="cuda-magic")


def test_backend_selection_by_device():
    from stdbp.kernels import backend_for, numba_adapter, torch_path

    assert backend_for("cpu") is numba_adapter
    assert backend_for("cuda") is torch_path  # GPU tensors take the vectorised path
    assert backend_for("cpu", "torch") is torch_path
    with pytest.raises(ValueError):
        backend_for("cuda", "numba")


def test_input_layer_gets_no_input_gradient_and_weights_still_learn():
    rng = np.random.default_rng(6)
    t = torch.tensor(rng.uniform(0, 1, (3, 8)))
    w = torch.tensor(rng.normal(0.4, 0.3, (4, 8)), requires_grad=True)
    out = SF.relpsp_dense(t, w)
    out.masked_fill(torch.isinf(out), 0).sum().backward()
    assert t.grad is None and w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_tensors_match_the_cpu_kernels(dtype):
    # runs where a GPU is present: CUDA tensors take the vectorised torch path, which must
    # agree with the compiled CPU kernels (values, silent outputs and both gradients)
    rng = np.random.default_rng(12)
    t, w = dense_case(rng, batch=8, n_in=30, n_out=12)
    rtol = 1e-9 if dtype == torch.float64 else 1e-4
    outs = {}
    for device in ("cpu", "cuda"):
        tt = torch.tensor(t, dtype=dtype, device=device, requires_grad=True)
        ww = torch.tensor(w, dtype=dtype, device=device, requires_grad=True)
        out = SF.relpsp_dense(tt, ww, 1.0, 2.0)
        assert out.device.type == device
        torch.where(torch.isfinite(out), out, torch.zeros_like(out)).sum().backward()
        outs[device] = (out.detach().cpu().numpy(), tt.grad.cpu().numpy(), ww.grad.cpu().numpy())
        x = torch.tensor(t.reshape(8, 1, 5, 6), dtype=dtype, device=device)
        k = torch.tensor(rng.normal(0.2, 0.3, (3, 1, 3, 3)), dtype=dtype, device=device)
        outs[device + "-conv"] = SF.relpsp_conv2d(x, k, padding=1).cpu().numpy()
    for got, ref in zip(outs["cuda"], outs["cpu"]):
        np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
        fin = np.isfinite(ref)
        np.testing.assert_allclose(got[fin], ref[fin], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(outs["cuda-conv"], outs["cpu-conv"], rtol=rtol, atol=rtol)
