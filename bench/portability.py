"""ONNX portability of the shipped models: the custom-op path against plain onnxruntime (function
bodies, no stdbp code) and onnx.reference.ReferenceEvaluator (function bodies, with its
GatherElements replaced: docs/ops.md), on the bundled samples. Writes bench/results/portability.json.

    python bench/portability.py [--limit N] [--reference-limit M] [-o bench/results/portability.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = {"mnist-fc800": "mnist", "fashion-fc1000": "fashion-mnist", "mnist-cnn": "mnist"}


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    from runtime.backend import predict

    fin = np.isfinite(a) & np.isfinite(b)
    rel = np.abs(a[fin] - b[fin]) / np.maximum(1.0, np.abs(a[fin]))
    return {"frames": int(a.shape[0]), "predictions_equal": int((predict(a) == predict(b)).sum()),
            "silent_sets_equal": bool(np.array_equal(np.isinf(a), np.isinf(b))),
            "spike_times": int(fin.sum()), "bit_identical": int((a[fin] == b[fin]).sum()),
            "max_rel_diff": float(rel.max()) if rel.size else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--reference-limit", type=int, default=50)
    ap.add_argument("-o", "--out", default=str(REPO / "bench" / "results" / "portability.json"))
    args = ap.parse_args()
    import onnxruntime as ort

    from runtime.backends import get_backend
    from stdbp.ops.portable import patched_reference_evaluator

    out = {"date": time.strftime("%Y-%m-%d"), "onnxruntime": ort.__version__, "models": {}}
    for name, data in MODELS.items():
        path = REPO / "models" / name / "model.onnx"
        x = np.load(REPO / "models" / "sample" / f"{data}-test-sample.npz")["images"][: args.limit]
        custom = get_backend("onnxruntime")
        custom.prepare(str(path))
        t_custom = custom.run(x).spike_times
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # no custom-op library
        shape = [d for d in sess.get_inputs()[0].shape[1:]]
        plain = sess.run(None, {sess.get_inputs()[0].name: x.reshape(len(x), *shape)})[0]
        m = args.reference_limit
        ev = patched_reference_evaluator(str(path))
        ref = ev.run(None, {"pixels": x[:m].reshape(m, *shape)})[0]
        out["models"][name] = {"custom_vs_plain_ort": compare(t_custom, plain),
                               "custom_vs_reference_evaluator": compare(t_custom[:m], ref),
                               "plain_ort_vs_reference_evaluator": compare(plain[:m], ref)}
        print(name, json.dumps(out["models"][name]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
