"""alpha-PSP kernels: forward against the float64 event-loop reference, gradients against
finite differences (hypothesis), near-threshold (exploding-gradient) cases, torch layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stdbp.alpha import AlphaPspLinear, alpha_dense, dense_backward, dense_forward
from tests.stdbp.alpha_reference import dense_reference, max_potential, peak_margin


@st.composite
def layer_case(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_in = draw(st.integers(1, 12))
    n_out = draw(st.integers(1, 5))
    batch = draw(st.integers(1, 4))
    t_max = draw(st.sampled_from([math.inf, 1.0, 2.5, 4.0]))
    tau = draw(st.sampled_from([0.5, 1.0, 2.0]))
    theta = draw(st.sampled_from([0.5, 1.0, 2.0]))
    silent = draw(st.sampled_from([0.0, 0.3]))
    tied = draw(st.booleans())
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 3.0, (batch, n_in))
    if tied:  # pixel-like times: a few levels shared by many inputs
        t = np.round(t * 2) / 2
    t[rng.random(t.shape) < silent] = np.inf
    w = rng.normal(0.4 * theta, 1.0 * theta, (n_out, n_in)) / math.sqrt(n_in)
    return t, w, theta, t_max, tau


@settings(max_examples=80, deadline=None)
@given(layer_case())
def test_forward_equals_reference(case):
    t, w, theta, t_max, tau = case
    out, slope = dense_forward(t, w, theta, t_max, tau)
    ref = dense_reference(t, w, theta, t_max, tau)
    for b in range(t.shape[0]):
        for j in range(w.shape[0]):
            if peak_margin(t[b], w[j], min(out[b, j], ref[b, j]), theta, t_max, tau) < 1e-6:
                continue  # knife-edge: V grazes theta, firing depends on the last bit
            assert math.isfinite(out[b, j]) == math.isfinite(ref[b, j])
            if math.isfinite(ref[b, j]):
                assert abs(out[b, j] - ref[b, j]) <= 1e-9 * max(1.0, abs(ref[b, j]))
                assert slope[b, j] > 0
                assert out[b, j] <= t_max
            else:
                assert slope[b, j] == 0


def test_forward_float32_input_and_threads(monkeypatch):
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 2, (9, 40))
    w = rng.normal(0.05, 0.2, (17, 40))
    one, _ = dense_forward(t.astype(np.float32), w, 1.0, 4.0)
    monkeypatch.setenv("STDBP_NUM_THREADS", "3")
    three, _ = dense_forward(t.astype(np.float32), w, 1.0, 4.0)
    np.testing.assert_array_equal(one, three)
    ref = dense_reference(t.astype(np.float32).astype(np.float64), w, 1.0, 4.0)
    np.testing.assert_allclose(one, ref, rtol=1e-9)


def test_bad_input():
    with pytest.raises(ValueError):
        dense_forward(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        dense_forward(np.full((2, 3), np.nan), np.zeros((4, 3)))
    with pytest.raises(ValueError):
        dense_forward(np.zeros((2, 3)), np.zeros((4, 3)), tau=0.0)


def _loss(t, w, g, theta, t_max, tau):
    out, _ = dense_forward(t, w, theta, t_max, tau)
    return float(np.where(np.isfinite(out), out * g, 0.0).sum()), out


def _fd_ok(t, w, g, theta, t_max, tau, h, rtol):
    """Analytic gradients vs central differences, element by element, where the perturbation
    keeps every spike on its interval (same firing pattern, no spike crossing an input)."""
    out, slope = dense_forward(t, w, theta, t_max, tau)
    g_t, g_w, _ = dense_backward(g, t, w, out, slope, tau)
    checked = 0

    def compare(analytic, plus, minus):
        nonlocal checked
        (lp, op), (lm, om) = plus, minus
        if not (np.array_equal(np.isfinite(op), np.isfinite(out))
                and np.array_equal(np.isfinite(om), np.isfinite(out))):
            return
        for o in (op, om):  # no spike may cross an input time
            lo, hi = np.minimum(o, out), np.maximum(o, out)
            between = (t[:, None, :] > lo[:, :, None]) & (t[:, None, :] < hi[:, :, None])
            if between.any() or (np.isfinite(o) & (o >= t_max)).any():
                return
        fd = (lp - lm) / (2 * h)
        noise = 50 * np.finfo(float).eps * max(1.0, abs(lp)) / h  # rounding of the two losses
        assert abs(fd - analytic) <= rtol * max(abs(fd), abs(analytic)) + noise, (fd, analytic)
        checked += 1

    for b, i in zip(*np.nonzero(np.isfinite(t))):
        tp, tm = t.copy(), t.copy()
        tp[b, i] += h
        tm[b, i] -= h
        compare(g_t[b, i], _loss(tp, w, g, theta, t_max, tau), _loss(tm, w, g, theta, t_max, tau))
    for j, i in np.ndindex(*w.shape):
        wp, wm = w.copy(), w.copy()
        wp[j, i] += h
        wm[j, i] -= h
        compare(g_w[j, i], _loss(t, wp, g, theta, t_max, tau), _loss(t, wm, g, theta, t_max, tau))
    return checked


@settings(max_examples=40, deadline=None)
@given(layer_case(), st.integers(0, 1000))
def test_gradients_equal_finite_differences(case, gseed):
    t, w, theta, t_max, tau = case
    g = np.random.default_rng(gseed).normal(size=(t.shape[0], w.shape[0]))
    n = _fd_ok(t, w, g, theta, t_max, tau, h=1e-6, rtol=2e-4)
    assert n >= 0
    CHECKED.append(n)


CHECKED: list[int] = []


def test_finite_differences_checked_something():
    # runs after the property test (file order): most random cases must have been compared
    assert sum(CHECKED) > 50


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(1e-6, 1e-2), st.sampled_from([0.5, 1.0, 2.0]))
def test_near_threshold_gradients_explode_and_equal_fd(seed, eps, tau):
    """Scale one neuron's weights so that its potential peaks at theta (1 + eps): the slope at
    the spike goes like sqrt(eps), the gradients like 1 / sqrt(eps) (paper Section II)."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(2, 8))
    t = rng.uniform(0.0, 2.0, (1, n_in))
    w = np.abs(rng.normal(0.5, 0.5, (1, n_in)))
    peak = max_potential(t[0], w[0], math.inf, tau)
    w *= (1.0 + eps) / peak  # theta = 1
    out, slope = dense_forward(t, w, 1.0, math.inf, tau)
    assert math.isfinite(out[0, 0])
    assert 0 < slope[0, 0] < 20 * math.sqrt(eps) / tau
    g = np.ones((1, 1))
    g_t, g_w, _ = dense_backward(g, t, w, out, slope, tau)
    assert np.abs(g_w).max() > 0.01 / math.sqrt(eps)
    # a step small against the distance to the tangent: h << eps * |V| / |dV/dw|
    assert _fd_ok(t, w, g, 1.0, math.inf, tau, h=1e-4 * eps, rtol=1e-3) > 0


def test_delta_clip_and_tangent():
    t = np.array([[0.0]])
    w = np.array([[1.0]])  # V peaks at exactly theta = 1 at t = tau: a tangent, slope 0
    out, slope = dense_forward(t, w, 1.0)
    assert out[0, 0] == pytest.approx(1.0, abs=1e-7)
    g_t, g_w, n = dense_backward(np.ones((1, 1)), t, w, out, np.zeros_like(slope))
    assert n == 1 and g_w[0, 0] == 0 and g_t[0, 0] == 0
    t = np.array([[0.0, 0.5]])
    w = np.array([[0.6, 0.6]])
    out, slope = dense_forward(t, w, 1.0)
    _, g_w, n = dense_backward(np.ones((1, 1)), t, w, out, slope, delta_clip=1e-3)
    assert n == 1 and np.abs(g_w).max() <= 1e-3 * math.e


def test_torch_layer_matches_numpy_and_backprops():
    torch.manual_seed(0)
    layer = AlphaPspLinear(30, 7, t_max=4.0)
    t = torch.rand(5, 30, dtype=torch.float64, requires_grad=True)
    out = layer(t.float())
    assert out.dtype == torch.float32
    ref, _ = dense_forward(t.detach().float().numpy(), layer.weight.detach().numpy(), 1.0, 4.0)
    np.testing.assert_array_equal(out.detach().numpy(), ref.astype(np.float32))
    assert 0 < layer.last_fired_fraction <= 1
    loss = torch.where(torch.isfinite(out), out, torch.zeros_like(out)).sum()
    loss.backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    o64 = alpha_dense(t.detach(), layer.weight.detach().double(), 1.0, 4.0)
    np.testing.assert_allclose(o64.numpy(), ref, rtol=1e-6)


def test_backward_products_equal_event_kernel(monkeypatch):
    """The BLAS form of the all-causal pairs == the event kernel (MNIST-like input layer)."""
    from stdbp import alpha

    rng = np.random.default_rng(3)
    t = np.round(rng.uniform(0, 1, (6, 50)) * 8) / 8
    t[:, :10] = 1.0
    t[rng.random(t.shape) < 0.2] = np.inf
    w = rng.normal(0.06, 0.1, (30, 50))
    out, slope = dense_forward(t, w, 1.0, 4.0)
    g = rng.normal(size=out.shape)
    fast = dense_backward(g, t, w, out, slope)
    monkeypatch.setattr(alpha, "BACKWARD_PRODUCTS", "never")
    slow = dense_backward(g, t, w, out, slope)
    assert np.isfinite(out).mean() > 0.3
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-10, atol=1e-12)
    assert fast[2] == slow[2]
