"""Python implementations of the ai.stdbp ops for `onnx.reference.ReferenceEvaluator`.

`reference_evaluator(model)` runs a model with these numpy implementations (the op set's
specification in executable form); `functions=True` runs the attached function bodies instead.
"""

from __future__ import annotations

import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from stdbp.ops import DOMAIN, OPS


class SpikeEncode(OpRun):
    op_domain = DOMAIN

    def _run(self, X, alpha=1.0, silent_zero=0):
        return (OPS["SpikeEncode"].compute(X, alpha, silent_zero),)


class RelPspDense(OpRun):
    op_domain = DOMAIN

    def _run(self, T, W, threshold=None, t_max=None):
        return (OPS["RelPspDense"].compute(T, W, threshold, t_max),)


class RelPspConv2d(OpRun):
    op_domain = DOMAIN

    def _run(self, T, W, kernel_shape=None, strides=None, pads=None, threshold=None, t_max=None):
        return (OPS["RelPspConv2d"].compute(T, W, kernel_shape, strides, pads or (0, 0, 0, 0),
                                            threshold=threshold, t_max=t_max),)


class SpikeMinPool(OpRun):
    op_domain = DOMAIN

    def _run(self, T, kernel_shape=None, strides=None, pads=None):
        return (OPS["SpikeMinPool"].compute(T, kernel_shape, strides, pads or (0, 0, 0, 0)),)


NEW_OPS = [SpikeEncode, RelPspDense, RelPspConv2d, SpikeMinPool]


def reference_evaluator(model: onnx.ModelProto, *, functions: bool = False) -> ReferenceEvaluator:
    """An evaluator using the Python implementations (default) or the model's function bodies.

    Note: onnx.reference's GatherElements fails on gathered axes longer than 64, so the function
    bodies run here only for layers with at most 64 inputs (ONNX Runtime has no such limit).
    """
    if functions:
        return ReferenceEvaluator(model)
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.functions[:]  # the evaluator would otherwise prefer the local functions
    return ReferenceEvaluator(stripped, new_ops=NEW_OPS)
