"""The shipped models on runtimes that are not ours: what each one needs (docs/ops.md, "Portability").

- Plain onnxruntime runs the `ai.stdbp` function bodies with no custom-op library and no stdbp code.
- `onnx.reference.ReferenceEvaluator` runs them too, except for its own `GatherElements`, which
  gathers through `numpy.choose` and so fails ("Need at least 0 and at most 64 array objects")
  once the gathered axis is longer than 64: every layer with more than 64 inputs. The bodies are
  standard ONNX and correct; `patched_reference_evaluator` swaps in a `GatherElements` built on
  `numpy.take_along_axis` (the op's definition), and nothing else.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun


class GatherElements(OpRun):
    """ONNX GatherElements (opset 13): out[i][j][k] = data[index[i][j][k]][j][k] along `axis`."""

    op_domain = ""

    def _run(self, data, indices, axis=None):
        axis = 0 if axis is None else int(axis)
        idx = np.where(indices < 0, indices + data.shape[axis], indices)
        return (np.take_along_axis(data, idx.astype(np.int64), axis=axis),)


class _PatchedEvaluator(ReferenceEvaluator):
    """The evaluator builds a model's local functions as `self.__class__(function)`, without the
    new_ops it was given: this subclass passes the fixed op to every one of them."""

    def __init__(self, proto, *args, new_ops=None, **kwargs):
        super().__init__(proto, *args, new_ops=[GatherElements, *(new_ops or [])], **kwargs)


def patched_reference_evaluator(model) -> ReferenceEvaluator:
    """ReferenceEvaluator over the model's own function bodies, with the fixed GatherElements."""
    return _PatchedEvaluator(onnx.load(model) if isinstance(model, str) else model)
