"""A tiny builder for ONNX function bodies (standard ops, attribute references, constants)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import AttributeProto, helper, numpy_helper

from stdbp.ops.spec import DOMAIN, ONNX_OPSET, VERSION

_ATTR_TYPES = {"float": AttributeProto.FLOAT, "int": AttributeProto.INT, "ints": AttributeProto.INTS}


@dataclass(frozen=True)
class Ref:
    """A reference to an attribute of the calling node (`@name` in ONNX text syntax)."""

    name: str
    type: str  # "float" | "int" | "ints"


class Body:
    def __init__(self, op_name: str):
        self.op_name = op_name
        self.nodes: list[onnx.NodeProto] = []
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def op(self, op_type: str, *inputs: str, n_out: int = 1, domain: str = "", hint: str | None = None,
           **attrs):
        outs = [self._name(hint or op_type.lower()) for _ in range(n_out)]
        node = helper.make_node(op_type, list(inputs), outs, domain=domain)
        for key, value in attrs.items():
            if isinstance(value, Ref):
                a = AttributeProto(name=key, ref_attr_name=value.name, type=_ATTR_TYPES[value.type])
            else:
                a = helper.make_attribute(key, value)
            node.attribute.append(a)
        self.nodes.append(node)
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype=np.float32, hint: str = "c") -> str:
        return self.op("Constant", value=numpy_helper.from_array(np.asarray(value, dtype=dtype)), hint=hint)

    def inf(self) -> str:
        return self.const(math.inf, hint="inf")

    def function(self, inputs, outputs, attributes) -> onnx.FunctionProto:
        """Wrap into a FunctionProto; `attributes` = [spec.Attr]: required ones plain, others with defaults."""
        plain = [a.name for a in attributes if a.required]
        with_default = [helper.make_attribute(a.name, a.default) for a in attributes if not a.required]
        fn = helper.make_function(
            DOMAIN, self.op_name, list(inputs), list(outputs), self.nodes,
            opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(DOMAIN, VERSION)],
            attributes=plain, attribute_protos=with_default)
        return fn
