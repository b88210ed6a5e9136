"""Schemas: registered once, attributes typed, shapes inferred, bad shapes/attributes rejected."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import helper

from stdbp.ops import DOMAIN, OPS, ShapeError, attribute_values, functions_for, register_schemas
from stdbp.ops.spec import IR_VERSION, ONNX_OPSET
from tests.stdbp.ops.nets import conv_layers, dense_layers, model


def test_register_is_idempotent_and_schemas_exist():
    register_schemas()
    register_schemas()  # a second registration would raise inside onnx: must be guarded
    for name in OPS:
        schema = onnx.defs.get_schema(name, 1, DOMAIN)
        assert schema.domain == DOMAIN and schema.since_version == 1
        assert OPS[name].semantics.split("\n")[0] in schema.doc


def test_float_attributes_are_floats_even_when_integral():
    m = model(dense_layers(np.random.default_rng(0), t_max=3.0), (784,))
    for node in m.graph.node:
        for a in node.attribute:
            if a.name in ("threshold", "t_max", "alpha"):
                assert a.type == onnx.AttributeProto.FLOAT, a.name


def test_inf_t_max_passes_checker_and_inference():
    m = model(dense_layers(np.random.default_rng(0), t_max=math.inf), (784,))
    register_schemas()
    onnx.checker.check_model(m, full_check=True)
    assert any(math.isinf(a.f) for n in m.graph.node for a in n.attribute if a.name == "t_max")


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_every_shape_inferred(kind):
    rng = np.random.default_rng(1)
    m = model(dense_layers(rng), (784,)) if kind == "dense" else model(conv_layers(rng, pads=(1, 2, 1, 0)), (1, 28, 28))
    assert m.ir_version == IR_VERSION
    assert {o.domain: o.version for o in m.opset_import} == {"": ONNX_OPSET, DOMAIN: 1}
    register_schemas()
    onnx.checker.check_model(m, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    shapes = {vi.name: vi.type.tensor_type.shape for vi in inferred.graph.value_info}
    for node in m.graph.node[:-1]:
        dims = shapes[node.output[0]].dim
        assert dims[0].dim_param == "N"
        assert all(d.dim_value > 0 for d in dims[1:]), node.name
    out = m.graph.output[0].type.tensor_type.shape.dim
    assert out[0].dim_param == "N" and out[1].dim_value == 10


def test_conv_shape_rule():
    spec = OPS["RelPspConv2d"]
    attrs = {"kernel_shape": [5, 3], "strides": [2, 1], "pads": [1, 0, 2, 1], "threshold": 1.0, "t_max": 1.0}
    assert spec.shape_rule([["N", 3, 28, 20], [8, 3, 5, 3]], attrs) == ["N", 8, 14, 19]
    with pytest.raises(ShapeError, match="channels"):
        spec.shape_rule([["N", 2, 28, 20], [8, 3, 5, 3]], attrs)
    with pytest.raises(ShapeError, match="kernel_shape"):
        spec.shape_rule([["N", 3, 28, 20], [8, 3, 5, 5]], attrs)
    with pytest.raises(ShapeError, match="larger"):
        spec.shape_rule([["N", 3, 1, 20], [8, 3, 5, 3]], attrs)


def test_pool_and_dense_shape_rules():
    pool = OPS["SpikeMinPool"]
    assert pool.shape_rule([[4, 2, 7, 8]], {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 0]}) == [4, 2, 4, 4]
    with pytest.raises(ShapeError, match="4-D"):
        pool.shape_rule([[4, 7]], {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]})
    dense = OPS["RelPspDense"]
    assert dense.shape_rule([["N", 5], [3, 5]], {}) == ["N", 3]
    with pytest.raises(ShapeError, match="features"):
        dense.shape_rule([["N", 5], [3, 4]], {})


@pytest.mark.parametrize("attrs, message", [
    ([helper.make_attribute("threshold", 1.0)], "missing required attribute 't_max'"),
    ([helper.make_attribute("threshold", 1), helper.make_attribute("t_max", 1.0)], "must be FLOAT, got INT"),
    ([helper.make_attribute("threshold", -1.0), helper.make_attribute("t_max", 1.0)], "threshold"),
    ([helper.make_attribute("threshold", 1.0), helper.make_attribute("t_max", float("nan"))], "t_max"),
    ([helper.make_attribute("threshold", 1.0), helper.make_attribute("t_max", 1.0),
      helper.make_attribute("bias", 1.0)], "unknown attribute 'bias'"),
])
def test_attribute_errors(attrs, message):
    with pytest.raises(ShapeError, match=message):
        attribute_values(OPS["RelPspDense"], attrs)


def test_defaults_filled():
    assert attribute_values(OPS["SpikeEncode"], []) == {"alpha": 1.0, "silent_zero": 0}


def test_functions_for_includes_nested_dense():
    names = [f.name for f in functions_for(["RelPspConv2d"])]
    assert names == ["RelPspDense", "RelPspConv2d"]
    for fn in functions_for(OPS):
        assert fn.domain == DOMAIN
        assert {o.domain: o.version for o in fn.opset_import}[""] == ONNX_OPSET
        # standard ops only, apart from the nested ai.stdbp call in the conv body
        assert all(n.domain in ("", DOMAIN) for n in fn.node)
