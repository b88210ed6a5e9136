"""Build an `ai.stdbp` ONNX model from a framework-free layer list (numpy weights).

`to_onnx` (torch) turns `stdbp.nn` modules into this list; tests and tools build random networks
with it directly, without torch. The graph is written node by node with `onnx.helper` (not traced),
so the output is fully deterministic: same layers and weights -> byte-identical model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stdbp import __version__
from stdbp.ops import DOMAIN, IR_VERSION, OPS, OPSET_IMPORTS, attribute_values, functions_for

INPUT = "pixels"
OUTPUT = "spike_times"
BATCH = "N"


@dataclass
class Layer:
    """One node: op is an ai.stdbp op name or "Flatten"; attrs are python values (floats as float)."""

    op: str
    attrs: dict[str, Any] = field(default_factory=dict)
    weight: np.ndarray | None = None


def _attr(name: str, value, kind: str):
    if kind == "float":
        return helper.make_attribute(name, float(value))  # never an INT attribute for 1.0
    if kind == "int":
        return helper.make_attribute(name, int(value))
    return helper.make_attribute(name, [int(v) for v in value])


def metadata(*, encoding: dict, threshold: float, t_max: float, dataset: str | None,
             accuracy: float | None, arch: str | None) -> dict[str, str]:
    return {
        "stdbp.version": __version__,
        "stdbp.encoding": json.dumps({"alpha": float(encoding["alpha"]),
                                      "silent_zero": int(encoding["silent_zero"])}, sort_keys=True),
        "stdbp.threshold": repr(float(threshold)),
        "stdbp.t_max": repr(float(t_max)),  # 'inf' for no window
        "stdbp.dataset": dataset or "",
        "stdbp.accuracy": "" if accuracy is None else repr(float(accuracy)),
        "stdbp.arch": arch or "",
    }


def build_model(layers: Sequence[Layer], input_shape: Sequence[int], *,
                meta: dict[str, str] | None = None, name: str = "stdbp") -> onnx.ModelProto:
    """Layers -> ModelProto (IR 10, opsets {"": 20, "ai.stdbp": 1}, dynamic batch `N`).

    The first layer must be SpikeEncode. Weights become float32 initializers `W{i}`, the second
    input of their node. Raises ValueError (from the ops' shape rules) on inconsistent shapes.
    """
    if not layers or layers[0].op != "SpikeEncode":
        raise ValueError("the first layer must be SpikeEncode (pixels -> spike times)")
    nodes, inits = [], []
    shape: list = [BATCH, *[int(d) for d in input_shape]]
    current = INPUT
    for i, layer in enumerate(layers):
        out = OUTPUT if i == len(layers) - 1 else f"t{i}"
        inputs = [current]
        if layer.op == "Flatten":
            node = helper.make_node("Flatten", inputs, [out], name=f"{i}_Flatten", axis=1)
            shape = [shape[0], int(np.prod(shape[1:]))]
        else:
            spec = OPS[layer.op]
            kinds = {a.name: a.type for a in spec.attributes}
            attrs = [_attr(k, v, kinds[k]) for k, v in sorted(layer.attrs.items())]
            values = attribute_values(spec, attrs)  # validates names, types and values
            wshape = None
            if len(spec.inputs) == 2:
                if layer.weight is None:
                    raise ValueError(f"layer {i} ({layer.op}) needs a weight")
                w = np.ascontiguousarray(layer.weight, dtype=np.float32)
                if not np.isfinite(w).all():
                    raise ValueError(f"layer {i} ({layer.op}) has NaN or infinite weights")
                inits.append(numpy_helper.from_array(w, name=f"W{i}"))
                inputs.append(f"W{i}")
                wshape = list(w.shape)
            shape = spec.shape_rule([shape] + ([wshape] if wshape is not None else []), values)
            node = helper.make_node(layer.op, inputs, [out], name=f"{i}_{layer.op}", domain=DOMAIN)
            node.attribute.extend(attrs)
        nodes.append(node)
        current = out
    if len(shape) != 2:
        raise ValueError(f"the network must end in [N, classes], got {shape}")
    used = sorted({n.op_type for n in nodes if n.domain == DOMAIN})
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, [BATCH, *[int(d) for d in input_shape]])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, shape)],
        initializer=inits)
    model = helper.make_model(
        graph, ir_version=IR_VERSION, producer_name="stdbp", producer_version=__version__,
        opset_imports=[helper.make_opsetid(d, v) for d, v in OPSET_IMPORTS.items()],
        functions=functions_for(used))
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=v)
    return model
