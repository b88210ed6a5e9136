"""The shipped models on runtimes that are not ours (docs/ops.md, "Portability"): plain onnxruntime
with no custom-op library, and onnx.reference.ReferenceEvaluator over the function bodies.

Measured bound (bench/portability.py, 500 sample images per model): the function bodies on plain
onnxruntime and on the (patched) reference evaluator are bit-identical; against the custom-op
path the predictions and silent sets are identical and spike times agree within 1.3e-5 relative."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from runtime.backends import get_backend
from stdbp.ops.portable import patched_reference_evaluator

REPO = Path(__file__).resolve().parents[3]
MODELS = {"mnist-fc800": "mnist", "fashion-fc1000": "fashion-mnist", "mnist-cnn": "mnist"}


def _sample(data, n):
    return np.load(REPO / "models" / "sample" / f"{data}-test-sample.npz")["images"][:n]


def _custom(path, x):
    b = get_backend("onnxruntime")
    b.prepare(str(path))
    return b.run(x).spike_times


def _plain(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # no stdbp, no custom ops
    inp = sess.get_inputs()[0]
    return sess.run(None, {inp.name: x.reshape(len(x), *inp.shape[1:])})[0]


def _same_decisions(a, b, rel):
    assert np.array_equal(np.argmin(a, axis=1), np.argmin(b, axis=1))
    assert np.array_equal(np.isinf(a), np.isinf(b))
    fin = np.isfinite(a)
    assert np.all(np.abs(a[fin] - b[fin]) <= rel * np.maximum(1.0, np.abs(a[fin])))


@pytest.mark.parametrize("name", MODELS)
def test_plain_onnxruntime_runs_the_function_bodies(name):
    path = REPO / "models" / name / "model.onnx"
    x = _sample(MODELS[name], 200)
    _same_decisions(_custom(path, x), _plain(path, x), rel=2e-5)


@pytest.mark.parametrize("name", MODELS)
def test_reference_evaluator_limit_and_the_patched_op(name):
    from onnx.reference import ReferenceEvaluator

    path = REPO / "models" / name / "model.onnx"
    x = _sample(MODELS[name], 20)
    shape = (20, 784) if "fc" in name else (20, 1, 28, 28)
    # the limit, documented: onnx.reference's own GatherElements (numpy.choose) takes <= 64 choices
    with pytest.raises(ValueError, match="at most 64"):
        ReferenceEvaluator(str(path)).run(None, {"pixels": x.reshape(shape)})
    ref = patched_reference_evaluator(str(path)).run(None, {"pixels": x.reshape(shape)})[0]
    np.testing.assert_array_equal(ref, _plain(path, x))  # the same standard-op bodies: bit-identical
    _same_decisions(_custom(path, x), ref, rel=2e-5)
