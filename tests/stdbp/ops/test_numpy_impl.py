"""The ops' numpy implementations against the float64 event-loop reference (tests/stdbp/reference.py).

Times and weights are dyadic (multiples of 1/8 and 1/64, few of them): every prefix sum and
end-value test is then exact in float64, so the two must agree exactly on which neurons fire and
to the last bits on when (only the final division rounds). Quantised times give many ties.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings, strategies as st

from stdbp.ops import OPS
from tests.stdbp.reference import conv2d_reference, dense_reference, min_pool_reference

dense = OPS["RelPspDense"].compute


@st.composite
def dense_case(draw):
    b, n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 17, size=(b, n_in)) / 8.0  # 0 .. 2 in steps of 1/8: ties are common
    t[rng.random(t.shape) < draw(st.floats(0, 0.6))] = np.inf  # silent inputs
    w = rng.integers(-48, 96, size=(n_out, n_in)) / 64.0
    t_max = draw(st.sampled_from([math.inf, 0.5, 1.0, 1.625, 3.0]))
    threshold = draw(st.sampled_from([1.0, 0.5, 2.0]))
    return t, w, threshold, t_max


@settings(max_examples=150, deadline=None, derandomize=True)
@given(dense_case())
def test_dense_matches_event_loop(case):
    t, w, threshold, t_max = case
    ref, _ = dense_reference(t, w, threshold, t_max)
    got = dense(t, w, threshold, t_max)
    assert np.array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(dense_case())
def test_dense_float32_close_to_float64(case):
    t, w, threshold, t_max = case
    ref = dense(t, w, threshold, t_max)
    got = dense(t.astype(np.float32), w.astype(np.float32), threshold, t_max)
    assert got.dtype == np.float32
    assert np.array_equal(np.isinf(got), np.isinf(ref))  # exact: dyadic values are exact in float32
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-5)


def test_dense_hand_example():
    # two inputs at 0 and 1 with weights 1 and 1, theta 1.5: V(1) = 1 < 1.5, then slope 2:
    # t = (1.5 + 0*1 + 1*1) / 2 = 1.25; with t_max = 1.2 it is silent; a tie at 1.25 is not causal.
    t = np.array([[0.0, 1.0, 1.25]])
    w = np.array([[1.0, 1.0, 5.0]])
    assert dense(t, w, 1.5, math.inf)[0, 0] == 1.25
    assert math.isinf(dense(t, w, 1.5, 1.2)[0, 0])
    assert dense(t, w, 1.5, 1.25)[0, 0] == 1.25  # t_max is inclusive
    assert math.isinf(dense(np.full((1, 3), np.inf), w, 1.5, math.inf)[0, 0])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(1, 1), (2, 1), (1, 2)]), st.sampled_from([(0, 0), (1, 1), (2, 0)]),
       st.sampled_from([math.inf, 1.5]))
def test_conv_matches_event_loop(seed, stride, padding, t_max):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 17, size=(2, 2, 6, 5)) / 8.0
    t[rng.random(t.shape) < 0.3] = np.inf
    w = rng.integers(-32, 96, size=(3, 2, 3, 2)) / 64.0
    ref, _ = conv2d_reference(t, w, stride, padding, 1.0, t_max)
    pads = [padding[0], padding[1], padding[0], padding[1]]
    got = OPS["RelPspConv2d"].compute(t, w, [3, 2], list(stride), pads, threshold=1.0, t_max=t_max)
    assert got.shape == ref.shape
    assert np.array_equal(np.isinf(got), np.isinf(ref))
    np.testing.assert_allclose(got[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-12)


def test_conv_asymmetric_pads_equal_explicit_inf_padding():
    rng = np.random.default_rng(3)
    t = rng.random((2, 1, 7, 6))
    w = rng.normal(0.3, 0.3, (2, 1, 3, 3))
    got = OPS["RelPspConv2d"].compute(t, w, [3, 3], [1, 1], [1, 2, 0, 1], threshold=1.0, t_max=math.inf)
    padded = np.pad(t, ((0, 0), (0, 0), (1, 0), (2, 1)), constant_values=np.inf)
    ref, _ = conv2d_reference(padded, w, (1, 1), (0, 0), 1.0, math.inf)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.sampled_from([((2, 2), (2, 2)), ((3, 2), (1, 2)), ((2, 3), (3, 1))]))
def test_min_pool_matches_reference(seed, ks):
    kernel, stride = ks
    rng = np.random.default_rng(seed)
    t = rng.random((2, 3, 7, 8))
    t[rng.random(t.shape) < 0.5] = np.inf
    got = OPS["SpikeMinPool"].compute(t, list(kernel), list(stride), [0, 0, 0, 0])
    np.testing.assert_array_equal(got, min_pool_reference(t, kernel, stride))


def test_min_pool_padding_is_inf():
    t = np.zeros((1, 1, 2, 2))
    got = OPS["SpikeMinPool"].compute(t, [2, 2], [2, 2], [1, 1, 1, 1])
    assert got.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(got, 0.0)  # every window holds one real zero: padding never wins
    t = np.full((1, 1, 2, 2), np.inf)
    assert np.isinf(OPS["SpikeMinPool"].compute(t, [2, 2], [1, 1], [1, 1, 1, 1])).all()


def test_encode_formula_and_silent_zero():
    x = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    t = OPS["SpikeEncode"].compute(x, 2.0, 0)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t, (np.float32(2.0) * (np.float32(255) - x.astype(np.float32))) / np.float32(255))
    assert t[0, 0] == 2.0 and t[0, 3] == 0.0
    t = OPS["SpikeEncode"].compute(x, 1.0, 1)
    assert math.isinf(t[0, 0]) and np.isfinite(t[0, 1:]).all()
