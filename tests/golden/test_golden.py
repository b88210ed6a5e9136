"""The shipped models, end to end on the bundled samples, against their golden records."""

import pytest

from tests.golden.golden import CASES, compare, paths


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shipped_model_matches_golden(case):
    jpath, npath = paths(case)
    if not case.model.is_file():
        pytest.fail(f"{case.model} is not shipped")
    assert jpath.is_file() and npath.is_file(), "no golden record: run python -m tests.golden.regen and commit it"
    diffs = compare(case)
    assert not diffs, "golden mismatch (if intended: python -m tests.golden.regen, review the diff):\n" + "\n".join(diffs)


def test_golden_check_catches_a_changed_weight(tmp_path):
    """The check itself can fail: one changed weight in a small model shows up as a difference."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from compiler.testmodels import dense_model
    from tests.golden.golden import GoldenCase, regen

    model = dense_model([784, 40, 10], seed=3)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    case = GoldenCase("tiny", path, "sample")
    regen(cases=[case], directory=tmp_path)
    assert compare(case, tmp_path) == []
    init = model.graph.initializer[-1]
    w = numpy_helper.to_array(init).copy()
    w[np.unravel_index(np.argmax(np.abs(w)), w.shape)] *= -1.0
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, path)
    diffs = compare(case, tmp_path)
    assert any("program file" in d for d in diffs), diffs
