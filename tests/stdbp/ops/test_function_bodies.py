"""The attached function bodies (standard ONNX ops) agree with the numpy implementations.

Run through ONNX Runtime (which inlines them) and through onnx.reference (small layers only:
its GatherElements fails on axes longer than 64). Pixel inputs give ties (256 levels) and silent
inputs (silent_zero); t_max finite and infinite. Bound: spike times within 1e-5 relative, the
same silent neurons and the same predictions.
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from stdbp.ops.reference import reference_evaluator
from tests.stdbp.ops.nets import conv_layers, dense_layers, model, numpy_forward, random_pixels


def ort_run(m, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"pixels": x})[0]


def assert_agree(got, ref, rtol=1e-5):
    assert got.shape == ref.shape
    assert np.array_equal(np.isinf(got), np.isinf(ref)), "silent neurons differ"
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=rtol)


@pytest.mark.parametrize("t_max, mean, silent_zero, levels", [
    (math.inf, 1.0, 1, None), (2.0, 2.0, 0, None), (2.0, 2.0, 1, 8)])
def test_dense_bodies_in_ort(t_max, mean, silent_zero, levels):
    rng = np.random.default_rng(11)
    layers = dense_layers(rng, (784, 48, 10), t_max=t_max, mean=mean, silent_zero=silent_zero)
    x = random_pixels(rng, 40, (784,), levels=levels)
    ref = numpy_forward(layers, x)
    assert 0 < np.isinf(ref).mean() < 1  # the case exercises silent and firing outputs
    assert_agree(ort_run(model(layers), x), ref)


@pytest.mark.parametrize("t_max, mean, pads", [(math.inf, 1.0, (0, 0, 0, 0)), (3.0, 2.0, (1, 2, 1, 0))])
def test_conv_bodies_in_ort(t_max, mean, pads):
    rng = np.random.default_rng(12)
    layers = conv_layers(rng, t_max=t_max, mean=mean, pads=pads)
    x = random_pixels(rng, 12, (1, 28, 28), p_zero=0.4)
    ref = numpy_forward(layers, x)
    assert_agree(ort_run(model(layers, (1, 28, 28)), x), ref)


def test_reference_evaluator_python_ops_and_bodies():
    rng = np.random.default_rng(13)
    layers = dense_layers(rng, (60, 20, 10), t_max=2.0, mean=2.0)  # <= 64 inputs per layer
    m = model(layers, (60,))
    x = random_pixels(rng, 16, (60,), levels=16)
    ref = numpy_forward(layers, x)
    np.testing.assert_array_equal(reference_evaluator(m).run(None, {"pixels": x})[0], ref)
    assert_agree(reference_evaluator(m, functions=True).run(None, {"pixels": x})[0], ref)


def test_reference_evaluator_conv():
    rng = np.random.default_rng(14)
    layers = conv_layers(rng, t_max=3.0, mean=2.0, pads=(1, 0, 0, 1))
    m = model(layers, (1, 28, 28))
    x = random_pixels(rng, 4, (1, 28, 28))
    np.testing.assert_array_equal(reference_evaluator(m).run(None, {"pixels": x})[0], numpy_forward(layers, x))


def test_dense_body_nextafter_clamp_matches_numpy_on_ties():
    # many tied inputs and weights that put spike times right on input times: the clamp path
    rng = np.random.default_rng(15)
    layers = dense_layers(rng, (784, 32, 10), t_max=1.0, mean=6.0, spread=2.0)
    x = random_pixels(rng, 30, (784,), p_zero=0.3, levels=4)
    assert_agree(ort_run(model(layers), x), numpy_forward(layers, x))
