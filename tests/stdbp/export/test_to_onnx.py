"""stdbp.export.to_onnx: one node per layer, pinned versions, typed attributes, metadata, checker."""

from __future__ import annotations

import json
import math

import onnx
import pytest
import torch
from torch import nn

from stdbp.errors import UserError
from stdbp.export import to_onnx
from stdbp.nn import RelPspConv2d, RelPspLinear, SpikeEncoder, SpikeMinPool2d
from stdbp.ops import DOMAIN, register_schemas


def spread_weights(net, seed, mean, spread):
    """Weights ~ N(mean/fan_in, spread/fan_in): a mix of early, late and silent neurons."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net:
            if getattr(m, "weight", None) is not None:
                fan = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * spread / fan + mean / fan)
    return net


def dense_net(t_max=math.inf, silent_zero=True, threshold=1.0, mean=1.0, spread=8.0):
    net = nn.Sequential(SpikeEncoder(alpha=1.0, silent_zero=silent_zero),
                        RelPspLinear(784, 40, threshold=threshold, t_max=t_max),
                        RelPspLinear(40, 10, threshold=threshold, t_max=t_max))
    return spread_weights(net, 0, mean * threshold, spread * threshold)


def conv_net(t_max=4.0, mean=2.0, spread=6.0):
    net = nn.Sequential(SpikeEncoder(), RelPspConv2d(1, 4, 5, padding=1, t_max=t_max), SpikeMinPool2d(2),
                        RelPspConv2d(4, 6, 3, stride=2, t_max=t_max), SpikeMinPool2d(2), nn.Flatten(1),
                        RelPspLinear(6 * 3 * 3, 16, t_max=t_max), RelPspLinear(16, 10, t_max=t_max))
    return spread_weights(net, 1, mean, spread)


def test_dense_export_layout():
    m = to_onnx(dense_net(), dataset="mnist", accuracy=0.97, arch="784-40-10")
    assert m.ir_version == 10
    assert {o.domain: o.version for o in m.opset_import} == {"": 20, DOMAIN: 1}
    assert [n.op_type for n in m.graph.node] == ["SpikeEncode", "RelPspDense", "RelPspDense"]
    assert all(n.domain == DOMAIN for n in m.graph.node)
    x, y = m.graph.input[0], m.graph.output[0]
    assert x.name == "pixels" and x.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["N", 784]
    assert y.name == "spike_times" and [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim] == ["N", 10]
    assert [i.name for i in m.graph.initializer] == ["W1", "W2"]
    assert [n.input[1] for n in m.graph.node[1:]] == ["W1", "W2"]
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in m.graph.initializer)
    assert {f.name for f in m.functions} == {"SpikeEncode", "RelPspDense"}
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["stdbp.encoding"]) == {"alpha": 1.0, "silent_zero": 1}
    assert float(meta["stdbp.threshold"]) == 1.0 and math.isinf(float(meta["stdbp.t_max"]))
    assert meta["stdbp.dataset"] == "mnist" and float(meta["stdbp.accuracy"]) == 0.97
    assert meta["stdbp.arch"] == "784-40-10" and meta["stdbp.version"]
    for n in m.graph.node:
        for a in n.attribute:
            if a.name in ("threshold", "t_max", "alpha"):
                assert a.type == onnx.AttributeProto.FLOAT


def test_conv_export_checker_and_shapes():
    m = to_onnx(conv_net())
    assert [n.op_type for n in m.graph.node] == ["SpikeEncode", "RelPspConv2d", "SpikeMinPool", "RelPspConv2d",
                                                 "SpikeMinPool", "Flatten", "RelPspDense", "RelPspDense"]
    assert m.graph.node[5].domain == ""
    conv = {a.name: onnx.helper.get_attribute_value(a) for a in m.graph.node[1].attribute}
    assert conv["kernel_shape"] == [5, 5] and conv["strides"] == [1, 1] and conv["pads"] == [1, 1, 1, 1]
    assert [d.dim_value or d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim] == ["N", 1, 28, 28]
    register_schemas()
    onnx.checker.check_model(m, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    assert len(inferred.graph.value_info) == len(m.graph.node) - 1
    for vi in inferred.graph.value_info:
        dims = vi.type.tensor_type.shape.dim
        assert dims[0].dim_param == "N" and all(d.dim_value > 0 for d in dims[1:])


def test_export_is_deterministic():
    net = conv_net()
    assert to_onnx(net, arch="x").SerializeToString() == to_onnx(net, arch="x").SerializeToString()


def test_integral_and_infinite_floats_stay_floats():
    m = to_onnx(dense_net(t_max=3, threshold=2))
    attrs = {a.name: a for a in m.graph.node[1].attribute}
    assert attrs["t_max"].type == onnx.AttributeProto.FLOAT and attrs["t_max"].f == 3.0
    assert attrs["threshold"].f == 2.0
    assert math.isinf({a.name: a for a in to_onnx(dense_net()).graph.node[1].attribute}["t_max"].f)


@pytest.mark.parametrize("net, message", [
    (nn.Sequential(SpikeEncoder(), nn.Linear(784, 10)), "Linear has no ai.stdbp op"),
    (nn.Sequential(RelPspLinear(784, 10)), "first layer must be a SpikeEncoder"),
    (nn.Sequential(SpikeEncoder(), RelPspLinear(784, 10), RelPspLinear(11, 10)), "10 features but weight W expects 11"),
])
def test_unexportable_models(net, message):
    with pytest.raises(UserError, match=message):
        to_onnx(net)


def test_nan_weights_refused():
    net = dense_net()
    with torch.no_grad():
        net[1].weight[0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        to_onnx(net)
