"""Every bad-model case is one clear UserError naming the defect (stdbp.ops.validate)."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from stdbp.errors import UserError
from stdbp.ops.validate import load_model, validate_model
from tests.stdbp.ops.nets import dense_layers, model


@pytest.fixture(scope="module")
def good():
    return model(dense_layers(np.random.default_rng(0), (784, 30, 10), t_max=3.0), (784,))


def _missing_attr(m):
    del m.graph.node[1].attribute[0]


def _int_attr(m):
    m.graph.node[1].attribute[1].CopyFrom(helper.make_attribute("threshold", 1))


def _unknown_op(m):
    m.graph.node[1].op_type = "RelPspFoo"


def _unknown_domain(m):
    m.graph.node[1].domain = "com.example"


def _weight_shape(m):
    m.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.zeros((10, 31), np.float32), "W2"))


def _input_shape(m):
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 785


def _input_type(m):
    m.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def _nan_weight(m):
    w = numpy_helper.to_array(m.graph.initializer[0]).copy()
    w[3, 5] = np.nan
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W1"))


def _inf_weight(m):
    w = numpy_helper.to_array(m.graph.initializer[1]).copy()
    w[0, 0] = -np.inf
    m.graph.initializer[1].CopyFrom(numpy_helper.from_array(w, "W2"))


def _bad_value(m):
    m.graph.node[0].attribute[0].CopyFrom(helper.make_attribute("alpha", -1.0))


def _ir_too_new(m):
    m.ir_version = 15


def _opset_version(m):
    for o in m.opset_import:
        if o.domain == "ai.stdbp":
            o.version = 2


def _weight_not_initializer(m):
    m.graph.node[2].input[1] = "t0"


CASES = [
    (_missing_attr, "missing required attribute 't_max'"),
    (_int_attr, "'threshold' must be FLOAT, got INT"),
    (_unknown_op, "unknown op 'RelPspFoo'"),
    (_unknown_domain, "unknown op domain 'com.example'"),
    (_weight_shape, "features but weight W expects 31"),
    (_input_shape, "785 features but weight W expects 784"),
    (_input_type, "must be uint8 pixels"),
    (_nan_weight, "initializer 'W1' has 1 NaN or infinite"),
    (_inf_weight, "initializer 'W2' has 1 NaN or infinite"),
    (_bad_value, "'alpha' must be finite and > 0"),
    (_ir_too_new, "IR version 15"),
    (_opset_version, "opset import for ai.stdbp is 2"),
    (_weight_not_initializer, "weight 't0' must be a constant initializer"),
]


@pytest.mark.parametrize("breaker, message", CASES, ids=[c[0].__name__[1:] for c in CASES])
def test_bad_model_is_one_line_user_error(good, breaker, message):
    m = copy.deepcopy(good)
    breaker(m)
    with pytest.raises(UserError) as info:
        validate_model(m, "bad.onnx")
    line = info.value.line()
    assert message in line and line.startswith("bad.onnx: ")
    assert "\n" not in line and info.value.fix


def test_good_model_signature(good):
    info = validate_model(good)
    assert (info.input_name, info.pixel_shape, info.output_name, info.n_classes) == ("pixels", (784,), "spike_times", 10)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, good, cut):
    data = good.SerializeToString()
    p = tmp_path / "m.onnx"
    p.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(UserError, match="truncated or corrupt|invalid model|not an ONNX model"):
        load_model(p)


def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_model(tmp_path / "nope.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(UserError, match="empty file"):
        load_model(tmp_path / "empty.onnx")
    (tmp_path / "text.onnx").write_text("hello, I am not a model\n")
    with pytest.raises(UserError):
        load_model(tmp_path / "text.onnx")
    with pytest.raises(UserError, match="directory"):
        load_model(tmp_path)


def test_good_file_roundtrip(tmp_path, good):
    p = tmp_path / "m.onnx"
    p.write_bytes(good.SerializeToString())
    assert load_model(p) == good
