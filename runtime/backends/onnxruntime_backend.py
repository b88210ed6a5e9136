"""The onnxruntime backend: ai.stdbp nodes through real ORT custom ops, or the function bodies.

Default ("custom op"): the model is rewritten in memory (`ort_custom_ops.to_custom_op_model`) and
ai.stdbp nodes run as onnxruntime-extensions Python ops over the compiled `stdbp.kernels.cpu`
kernels. `portable=True`: the model runs as written, ORT inlining the attached function bodies
(standard ops only, no stdbp code) -- exact but O(batch x inputs x outputs) memory per layer, so
batches are split to stay under `memory_mb`.
"""

from __future__ import annotations

import os
import time

import numpy as np

from runtime.backend import BackendResult, predict
from stdbp.errors import UserError

# Bytes per sample and per (input, output) pair of a ReL-PSP layer in the function bodies:
# about six live float32 [N, out, in] temporaries (gathered weights, prefix sums, products, masks).
BODY_BYTES_PER_PAIR = 6 * 4


def body_bytes_per_sample(model) -> int:
    """Peak temporary bytes per sample of the function bodies (largest ReL-PSP layer)."""
    import onnx

    from stdbp.ops import DOMAIN

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    worst = 1
    for node in model.graph.node:
        if node.domain != DOMAIN or node.op_type not in ("RelPspDense", "RelPspConv2d"):
            continue
        w = inits.get(node.input[1])
        out = shapes.get(node.output[0])
        if not w or not out:
            continue
        fan_in = int(np.prod(w[1:]))
        positions = int(np.prod(out[2:])) if len(out) == 4 else 1  # conv: one dense row per position
        worst = max(worst, positions * w[0] * fan_in * BODY_BYTES_PER_PAIR)
    return worst


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self) -> None:
        self.session = None
        self.info = None
        self.portable = False
        self.chunk = None
        self.model_path = None
        self._weight_ids: list[str] = []

        self._custom_ops = None

    def __del__(self):
        if self._weight_ids and self._custom_ops is not None:
            self._custom_ops.release(self._weight_ids)

    def prepare(self, model_path: str, *, portable: bool = False, threads: int | None = None,
                memory_mb: int = 1024, **unknown) -> None:
        """Validate the model once and build the ORT session (custom ops or function bodies)."""
        if unknown:
            raise UserError("onnxruntime backend", f"unknown option(s): {', '.join(sorted(unknown))}",
                            "options: portable, threads, memory_mb")
        import onnxruntime as ort

        from stdbp.ops.validate import load_model, validate_model

        model = load_model(model_path)
        self.info = validate_model(model, str(model_path))
        self.model_path, self.portable = str(model_path), bool(portable)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        so.inter_op_num_threads = 1
        # no busy-waiting threads: on a small machine they steal the cores the kernels need
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if portable:
            run_model = model
            self.chunk = max(1, int(memory_mb) * 2**20 // body_bytes_per_sample(model))
        else:
            from runtime.backends import ort_custom_ops

            if self._weight_ids:  # prepared before: drop the previous model's weights
                ort_custom_ops.release(self._weight_ids)
            run_model, self._weight_ids = ort_custom_ops.to_custom_op_model(model)
            self._custom_ops = ort_custom_ops
            so.register_custom_ops_library(ort_custom_ops.LIBRARY)
            self.chunk = None
        try:
            self.session = ort.InferenceSession(run_model.SerializeToString(), so,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT rejects something the checker let through
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(model_path, f"onnxruntime cannot load the model: {first}",
                            "re-export it with `stdbp export`") from None

    def _shape_pixels(self, pixels: np.ndarray) -> np.ndarray:
        x = np.asarray(pixels)
        if x.dtype != np.uint8:
            raise UserError("pixels", f"must be uint8, got {x.dtype}", "pass raw 0..255 images")
        want = self.info.pixel_shape
        if x.ndim >= 1 and int(np.prod(x.shape[1:])) == int(np.prod(want)):
            return np.ascontiguousarray(x.reshape((x.shape[0], *want)))
        raise UserError("pixels", f"shape {list(x.shape)} does not fit the model input [N, "
                        f"{', '.join(map(str, want))}]", "use images of the data set the model was trained on")

    def run(self, pixels: np.ndarray) -> BackendResult:
        if self.session is None:
            raise RuntimeError("call prepare() first")
        x = self._shape_pixels(pixels)
        n = x.shape[0]
        step = self.chunk or max(1, n)
        t0 = time.perf_counter()
        outs = [self.session.run([self.info.output_name], {self.info.input_name: x[s:s + step]})[0]
                for s in range(0, n, step)] if n else [np.zeros((0, self.info.n_classes), np.float32)]
        seconds = time.perf_counter() - t0
        times = np.concatenate(outs, axis=0)
        return BackendResult(times, predict(times), {
            "path": "function-bodies" if self.portable else "custom-op",
            "seconds": seconds, "calls": len(outs), "chunk": step})
