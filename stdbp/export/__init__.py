"""ONNX export of ReL-PSP networks (op set ai.stdbp v1).

`to_onnx(model)` walks an `nn.Sequential` of `stdbp.nn` layers and writes one node per layer
with `onnx.helper` (see `stdbp.export.graph`). Building the graph directly instead of tracing
with `torch.onnx` keeps it deterministic (byte-identical output for the same weights), fast,
independent of the exporter's version-dependent passes, and gives exact control over the pinned
IR/opsets, the attribute types (floats always FLOAT) and the attached function bodies.
"""

from __future__ import annotations

from stdbp.export.graph import INPUT, OUTPUT, Layer, build_model, metadata  # noqa: F401


def to_onnx(model, *, dataset: str | None = None, accuracy: float | None = None,
            arch: str | None = None, input_shape=None):
    """nn.Sequential of SpikeEncoder, RelPspConv2d, SpikeMinPool2d, Flatten, RelPspLinear -> ModelProto."""
    from stdbp.export.torch_walk import model_to_onnx

    return model_to_onnx(model, dataset=dataset, accuracy=accuracy, arch=arch, input_shape=input_shape)
