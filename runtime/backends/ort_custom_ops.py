"""ai.stdbp ops as onnxruntime-extensions Python custom ops over the compiled numpy kernels.

onnxruntime-extensions serves Python ops only in its own domain (`ai.onnx.contrib`) and only
with scalar/string attributes, so `to_custom_op_model` rewrites a model IN MEMORY: ai.stdbp
nodes move to that domain and INTS attributes become JSON strings. The file on disk is never
changed. The op bodies call `stdbp.kernels.cpu` (the kernels training uses) and never torch.
Registration happens once, at import (the extensions' op table is process-global).

Weights are constant initializers; the bridge would copy them (through Python lists) on every
call, which costs more than the kernel for a 784x800 layer. So the rewrite keeps them on the Python
side: the node loses its weight input and gets a `weight_id` string attribute naming the array in
`WEIGHTS` (registered per prepared model, released by `release`).
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys

import numpy as np
import onnx


def _import_extensions():
    """Import onnxruntime_extensions without letting it pull in torch (and transformers).

    Its converter module imports torch when it can ("import torch" inside try/except); the runtime
    must not load torch, so those names are blocked (sys.modules[name] = None -> ImportError) for
    the duration of the import, unless the caller already loaded them.
    """
    blocked = [n for n in ("torch", "transformers") if n not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        return importlib.import_module("onnxruntime_extensions")
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


_ext = _import_extensions()
PyCustomOpDef, default_opset_domain = _ext.PyCustomOpDef, _ext.default_opset_domain
get_library_path, onnx_op = _ext.get_library_path, _ext.onnx_op

from stdbp.ops import DOMAIN, OPS
from stdbp.ops.encode import compute as encode_compute

CONTRIB = default_opset_domain()
WEIGHTS: dict[str, np.ndarray] = {}
_ids = itertools.count()
LIBRARY = get_library_path()
_F, _U8, _I, _S = PyCustomOpDef.dt_float, PyCustomOpDef.dt_uint8, PyCustomOpDef.dt_int64, PyCustomOpDef.dt_string


def _kernels():
    from stdbp.kernels import cpu

    return cpu


def _pad_inf(t: np.ndarray, pads) -> np.ndarray:
    top, left, bottom, right = pads
    if not any(pads):
        return t
    return np.pad(t, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=np.float32(np.inf))


def _encode(x, attrs):
    return encode_compute(x, float(attrs.get("alpha", 1.0)), int(attrs.get("silent_zero", 0)))


def _dense(t, attrs):
    out, _ = _kernels().dense_forward(np.ascontiguousarray(t, np.float32), WEIGHTS[attrs["weight_id"]],
                                      float(attrs["threshold"]), float(attrs["t_max"]))
    return out


def _conv(t, attrs):
    w = WEIGHTS[attrs["weight_id"]]
    pads = json.loads(attrs.get("pads") or "[0, 0, 0, 0]")
    strides = tuple(json.loads(attrs["strides"]))
    t = np.ascontiguousarray(t, np.float32)
    if pads[0] == pads[2] and pads[1] == pads[3]:
        padding = (pads[0], pads[1])  # symmetric: the kernel pads with +inf itself
    else:
        t, padding = np.ascontiguousarray(_pad_inf(t, pads)), (0, 0)
    out, _ = _kernels().conv2d_forward(t, w, strides, padding, float(attrs["threshold"]), float(attrs["t_max"]))
    return out


def _pool(t, attrs):
    pads = json.loads(attrs.get("pads") or "[0, 0, 0, 0]")
    t = np.ascontiguousarray(_pad_inf(np.asarray(t, np.float32), pads))
    out, _ = _kernels().min_pool2d_forward(t, tuple(json.loads(attrs["kernel_shape"])),
                                           tuple(json.loads(attrs["strides"])))
    return out


def _flatten(t, attrs):
    axis = int(attrs.get("axis", 1))
    return t.reshape(int(np.prod(t.shape[:axis], dtype=np.int64)), -1)


BODIES = {"SpikeEncode": _encode, "RelPspDense": _dense, "RelPspConv2d": _conv, "SpikeMinPool": _pool,
          "Flatten": _flatten}


@onnx_op(op_type="SpikeEncode", inputs=[_U8], outputs=[_F], attrs={"alpha": _F, "silent_zero": _I})
def spike_encode(x, **attrs):
    return _encode(x, attrs)


@onnx_op(op_type="RelPspDense", inputs=[_F], outputs=[_F], attrs={"threshold": _F, "t_max": _F, "weight_id": _S})
def rel_psp_dense(t, **attrs):
    return _dense(t, attrs)


@onnx_op(op_type="RelPspConv2d", inputs=[_F], outputs=[_F],
         attrs={"kernel_shape": _S, "strides": _S, "pads": _S, "threshold": _F, "t_max": _F, "weight_id": _S})
def rel_psp_conv2d(t, **attrs):
    return _conv(t, attrs)


@onnx_op(op_type="SpikeMinPool", inputs=[_F], outputs=[_F], attrs={"kernel_shape": _S, "strides": _S, "pads": _S})
def spike_min_pool(t, **attrs):
    return _pool(t, attrs)


# A chain of consecutive ai.stdbp nodes (and Flatten) fused into one custom op. Why: the bridge
# copies a float tensor coming OUT of a Python op at ~70 ns per element (measured: 7 ms for
# 128 x 800), several times the kernel's own cost, while inputs and small outputs cross in
# ~0.1 ms. Fused, only the pixels go in and the class scores come out.
CHAINS: dict[str, list[tuple[str, dict]]] = {}


def _run_chain(x, chain_id):
    for op, attrs in CHAINS[chain_id]:
        x = BODIES[op](x, attrs)
    return x


@onnx_op(op_type="StdbpChainU8", inputs=[_U8], outputs=[_F], attrs={"chain_id": _S})
def stdbp_chain_u8(x, **attrs):
    return _run_chain(x, attrs["chain_id"])


@onnx_op(op_type="StdbpChainF", inputs=[_F], outputs=[_F], attrs={"chain_id": _S})
def stdbp_chain_f(x, **attrs):
    return _run_chain(x, attrs["chain_id"])


def _attr_values(node) -> dict:
    """Attributes as the bridge hands them to a Python op (strings as str, not bytes)."""
    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def fuse_chains(model: onnx.ModelProto) -> list[str]:
    """Replace each maximal linear chain of custom-op nodes (plus Flatten) by one chain node, in place.

    A chain continues while a node's only output feeds exactly the next node and nothing else
    (graph outputs included). Returns the chain ids registered in CHAINS.
    """
    nodes = list(model.graph.node)
    graph_outputs = {o.name for o in model.graph.output}
    uses: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    fusible = [(n.domain == CONTRIB and n.op_type in BODIES) or (n.domain in ("", "ai.onnx") and n.op_type == "Flatten")
               for n in nodes]
    out_nodes, ids, k = [], [], 0
    while k < len(nodes):
        j = k
        while (fusible[k] and j + 1 < len(nodes) and fusible[j + 1] and len(nodes[j].output) == 1
               and len(nodes[j + 1].input) == 1 and nodes[j + 1].input[0] == nodes[j].output[0]
               and uses.get(nodes[j].output[0], 0) == 1 and nodes[j].output[0] not in graph_outputs):
            j += 1
        if not fusible[k] or j == k or nodes[k].op_type == "Flatten":
            out_nodes.append(nodes[k])
            k += 1
            continue
        key = f"c{next(_ids)}"
        CHAINS[key] = [(n.op_type, _attr_values(n)) for n in nodes[k:j + 1]]
        ids.append(key)
        op = "StdbpChainU8" if nodes[k].op_type == "SpikeEncode" else "StdbpChainF"
        out_nodes.append(onnx.helper.make_node(op, [nodes[k].input[0]], [nodes[j].output[0]], domain=CONTRIB,
                                               name=f"chain_{nodes[k].name}_{nodes[j].name}", chain_id=key))
        k = j + 1
    del model.graph.node[:]
    model.graph.node.extend(out_nodes)
    return ids


def release(weight_ids) -> None:
    for key in weight_ids:
        WEIGHTS.pop(key, None)
        CHAINS.pop(key, None)


def to_custom_op_model(model: onnx.ModelProto, fuse: bool = True) -> tuple[onnx.ModelProto, list[str]]:
    """(copy of `model` whose ai.stdbp nodes run as the custom ops above, ids it registered).

    In memory only; the weights move into `WEIGHTS` (see the module doc). With `fuse`, chains of
    consecutive nodes run as one custom op (`fuse_chains`).
    """
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name: i for i in out.graph.initializer}
    moved, ids = set(), []
    for node in out.graph.node:
        if node.domain != DOMAIN:
            continue
        node.domain = CONTRIB
        if len(node.input) == 2:
            name = node.input[1]
            if name not in inits:
                raise ValueError(f"node {node.name}: weight {name!r} is not an initializer")
            key = f"w{next(_ids)}"
            WEIGHTS[key] = np.ascontiguousarray(numpy_helper.to_array(inits[name]), dtype=np.float32)
            ids.append(key)
            moved.add(name)
            del node.input[1]
            node.attribute.append(onnx.helper.make_attribute("weight_id", key))
        spec = OPS[node.op_type]
        kinds = {a.name: a.type for a in spec.attributes}
        present = {a.name for a in node.attribute}
        for a in list(node.attribute):
            if kinds.get(a.name) == "ints":
                text = json.dumps([int(v) for v in a.ints])
                a.CopyFrom(onnx.helper.make_attribute(a.name, text))
        for a in spec.attributes:  # make defaults explicit: the bridge has no schema defaults
            if a.name not in present and not a.required:
                value = json.dumps(a.default) if a.type == "ints" else a.default
                node.attribute.append(onnx.helper.make_attribute(a.name, value))
    still_used = {i for n in out.graph.node for i in n.input}
    keep_inits = [i for i in out.graph.initializer if i.name not in moved or i.name in still_used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep_inits)
    keep_inputs = [i for i in out.graph.input if i.name not in moved or i.name in still_used]
    del out.graph.input[:]
    out.graph.input.extend(keep_inputs)
    del out.functions[:]  # the bodies are not needed when kernels are registered
    keep = [o for o in out.opset_import if o.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(keep + [onnx.helper.make_opsetid(CONTRIB, 1)])
    if fuse:
        ids += fuse_chains(out)
    return out, ids
