"""runtime.backend: predictions and the backend registry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from runtime.backend import Backend, BackendResult, predict
from runtime.backends import get_backend
from stdbp.errors import UserError


def test_predict_ties_to_lowest_index_and_silent_rows():
    inf = np.inf
    t = np.array([[1.0, 0.5, 0.5], [inf, inf, inf], [inf, 2.0, inf], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(predict(t), [1, -1, 1, 0])
    assert predict(t).dtype == np.int64


@settings(derandomize=True)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
                  elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, np.inf])))
def test_predict_property(t):
    p = predict(t)
    for row, k in zip(t, p):
        if np.isinf(row).all():
            assert k == -1
        else:
            assert row[k] == row.min() and not (row[:k] == row.min()).any()


def test_registry():
    b = get_backend("onnxruntime")
    assert b.name == "onnxruntime" and isinstance(b, Backend)
    with pytest.raises(UserError, match="unknown backend 'tpu'"):
        get_backend("tpu")
    r = BackendResult(np.zeros((1, 2)), np.zeros(1, np.int64))
    assert r.counters == {}
