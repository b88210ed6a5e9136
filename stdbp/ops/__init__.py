"""The `ai.stdbp` op set, version 1: SpikeEncode, RelPspDense, RelPspConv2d, SpikeMinPool.

Each op is defined once, in its own module, as an `OpSpec` (semantics, schema, shape rule,
function body, numpy implementation). From those this package provides:

- `register_schemas()`: `onnx.defs` schemas with type and shape inference (process-global,
  registered once, guarded);
- `functions_for(ops)`: the FunctionProtos an exported model carries, so any ONNX runtime can
  execute it without this package (standard ops only);
- `stdbp.ops.reference.reference_evaluator(model)`: `onnx.reference` with Python implementations.

Imports only numpy and onnx (never torch): the runtime and the compiler use it.
"""

from __future__ import annotations

import threading

import onnx

from stdbp.ops import conv, dense, encode, pool
from stdbp.ops.spec import (DOMAIN, IR_VERSION, ONNX_OPSET, OPSET_IMPORTS, VERSION, OpSpec,
                            ShapeError)

OPS: dict[str, OpSpec] = {s.name: s for s in (encode.SPEC, dense.SPEC, conv.SPEC, pool.SPEC)}
# Nested calls inside function bodies: a model using RelPspConv2d also needs RelPspDense's body.
FUNCTION_DEPENDS = {"RelPspConv2d": ("RelPspDense",)}

__all__ = ["DOMAIN", "VERSION", "IR_VERSION", "ONNX_OPSET", "OPSET_IMPORTS", "OPS", "OpSpec",
           "ShapeError", "register_schemas", "functions_for", "attribute_values"]

_lock = threading.Lock()
_registered = False

_ATTR = onnx.defs.OpSchema.AttrType
_ATTR_TYPE = {"float": _ATTR.FLOAT, "int": _ATTR.INT, "ints": _ATTR.INTS}
_PROTO_TYPE = {"float": onnx.AttributeProto.FLOAT, "int": onnx.AttributeProto.INT,
               "ints": onnx.AttributeProto.INTS}


def attribute_values(spec: OpSpec, attributes) -> dict:
    """AttributeProtos -> python values, defaults filled in; ShapeError on a missing/wrong-typed one."""
    given = {}
    declared = {a.name: a for a in spec.attributes}
    for a in attributes:
        if a.name not in declared:
            raise ShapeError(f"{spec.name}: unknown attribute {a.name!r} "
                             f"(expected: {', '.join(declared)})")
        want = declared[a.name].type
        if a.type != _PROTO_TYPE[want]:
            got = onnx.AttributeProto.AttributeType.Name(a.type)
            raise ShapeError(f"{spec.name}: attribute {a.name!r} must be {want.upper()}, got {got}")
        given[a.name] = onnx.helper.get_attribute_value(a)
        if want == "ints":
            given[a.name] = [int(v) for v in given[a.name]]
    values = spec.attr_values(given)
    spec.check_attrs(values)
    return values


def _shape_of(type_proto) -> list | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in type_proto.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return dims


def _inference(spec: OpSpec):
    def infer(ctx) -> None:
        try:
            attrs = [a for a in (ctx.get_attribute(x.name) for x in spec.attributes) if a is not None]
            values = attribute_values(spec, attrs)
            shapes = [_shape_of(ctx.get_input_type(i)) if ctx.has_input(i) else None
                      for i in range(ctx.get_num_inputs())]
            out = spec.shape_rule(shapes, values)
        except ShapeError as exc:  # name the node: the checker's own message would not
            raise ShapeError(f"{ctx.get_display_name()}: {exc}") from None
        elem = onnx.TensorProto.FLOAT
        if out is None:
            tp = onnx.helper.make_tensor_type_proto(elem, None)
        else:
            tp = onnx.helper.make_tensor_type_proto(elem, [d if d is not None else None for d in out])
        ctx.set_output_type(0, tp)

    return infer


def _schema(spec: OpSpec) -> onnx.defs.OpSchema:
    S = onnx.defs.OpSchema
    type_params = {}
    inputs, outputs = [], []
    for group, params in ((inputs, spec.inputs), (outputs, spec.outputs)):
        for p in params:
            tname = type_params.setdefault(p.type_str, f"T{len(type_params)}")
            group.append(S.FormalParameter(p.name, tname, p.doc))
    attributes = []
    for a in spec.attributes:
        if a.required:
            attributes.append(S.Attribute(a.name, _ATTR_TYPE[a.type], a.doc, required=True))
        else:
            attributes.append(S.Attribute(a.name, onnx.helper.make_attribute(a.name, a.default), a.doc))
    schema = S(spec.name, DOMAIN, VERSION, spec.summary + "\n\n" + spec.semantics,
               inputs=inputs, outputs=outputs,
               type_constraints=[(t, [ts], "") for ts, t in type_params.items()],
               attributes=attributes)
    schema.set_type_and_shape_inference_function(_inference(spec))
    return schema


def _has_schema(name: str) -> bool:
    try:
        onnx.defs.get_schema(name, VERSION, DOMAIN)
        return True
    except onnx.defs.SchemaError:
        return False


def register_schemas() -> None:
    """Register the op set's schemas with onnx.defs, once per process (a repeat would raise)."""
    global _registered
    with _lock:
        if _registered:
            return
        for spec in OPS.values():
            if not _has_schema(spec.name):
                onnx.defs.register_schema(_schema(spec))
        _registered = True


def functions_for(op_names) -> list[onnx.FunctionProto]:
    """FunctionProtos for the given ops and the ops their bodies call, in a fixed order."""
    need = set()
    for name in op_names:
        need.add(name)
        need.update(FUNCTION_DEPENDS.get(name, ()))
    return [OPS[name].function() for name in OPS if name in need]
