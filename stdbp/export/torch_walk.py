"""Turn `stdbp.nn` modules into `stdbp.export.graph.Layer`s (the only torch-aware part of export)."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from stdbp.errors import UserError
from stdbp.export.graph import Layer, build_model, metadata


def _modules(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        out = []
        for m in model:
            out += _modules(m)
        return out
    return [model]


def _weight(m) -> np.ndarray:
    return m.weight.detach().cpu().to(dtype=torch.float32).numpy().copy()


def _pads(padding) -> list[int]:
    ph, pw = (int(padding[0]), int(padding[1]))
    return [ph, pw, ph, pw]  # torch pads symmetrically; ONNX order [top, left, bottom, right]


def layers_of(model: nn.Module) -> list[Layer]:
    from stdbp.nn import RelPspConv2d, RelPspLinear, SpikeEncoder, SpikeMinPool2d

    layers = []
    for i, m in enumerate(_modules(model)):
        if isinstance(m, SpikeEncoder):
            layers.append(Layer("SpikeEncode", {"alpha": float(m.alpha), "silent_zero": int(bool(m.silent_zero))}))
        elif isinstance(m, RelPspLinear):
            layers.append(Layer("RelPspDense", {"threshold": float(m.threshold), "t_max": float(m.t_max)},
                                _weight(m)))
        elif isinstance(m, RelPspConv2d):
            layers.append(Layer("RelPspConv2d", {
                "kernel_shape": list(m.kernel_size), "strides": list(m.stride), "pads": _pads(m.padding),
                "threshold": float(m.threshold), "t_max": float(m.t_max)}, _weight(m)))
        elif isinstance(m, SpikeMinPool2d):
            layers.append(Layer("SpikeMinPool", {"kernel_shape": list(m.kernel_size), "strides": list(m.stride),
                                                 "pads": _pads(m.padding)}))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise UserError("model", f"layer {i}: Flatten({m.start_dim}, {m.end_dim}) is not exportable",
                                "use nn.Flatten(1)")
            layers.append(Layer("Flatten"))
        else:
            raise UserError("model", f"layer {i}: {type(m).__name__} has no ai.stdbp op",
                            "use SpikeEncoder, RelPspLinear, RelPspConv2d, SpikeMinPool2d and nn.Flatten")
    if not layers or layers[0].op != "SpikeEncode":
        raise UserError("model", "the first layer must be a SpikeEncoder (the model takes uint8 pixels)",
                        "prepend stdbp.nn.SpikeEncoder()")
    return layers


def model_to_onnx(model: nn.Module, *, dataset=None, accuracy=None, arch=None,
                  input_shape=None) -> onnx.ModelProto:
    layers = layers_of(model)
    weighted = [layer for layer in layers if layer.weight is not None]
    if not weighted:
        raise UserError("model", "has no ReL-PSP layer", "add RelPspLinear / RelPspConv2d layers")
    if input_shape is None:
        first = weighted[0]
        input_shape = (1, 28, 28) if first.op == "RelPspConv2d" else (first.weight.shape[1],)
    enc = layers[0].attrs
    meta = metadata(encoding={"alpha": enc["alpha"], "silent_zero": enc["silent_zero"]},
                    threshold=weighted[0].attrs["threshold"], t_max=weighted[0].attrs["t_max"],
                    dataset=dataset, accuracy=accuracy, arch=arch)
    try:
        onnx_model = build_model(layers, input_shape, meta=meta)
    except ValueError as exc:
        raise UserError("model", str(exc), "check the layer sizes against the input shape") from None
    from stdbp.ops.validate import validate_model

    validate_model(onnx_model, "exported model")  # a failure here is an exporter bug, never silent
    return onnx_model
