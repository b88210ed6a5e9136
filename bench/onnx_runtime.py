"""Frames per second of a 784-800-10 ReL-PSP network at batch 128, three ways:

- `custom_op`:  stdbp-run's default path, ORT with the ai.stdbp Python custom ops over the
                compiled kernels (stdbp.kernels.cpu);
- `function_bodies`: ORT running the model's attached function bodies (`--portable`);
- `torch`:      the torch module (stdbp.nn, numba kernels on CPU) called directly;
- `kernel_numpy`: the kernels called from numpy with no framework at all (floor).

Goal (issue #4): custom_op within 1.5x of torch. Weights: models/mnist-fc800/model.onnx when
shipped, else a seeded random 784-800-10 network. Pixels: the bundled MNIST test sample.

    python bench/onnx_runtime.py [--out bench/results/onnx_runtime.json] [--repeats 5] [--silent-zero]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: numba compile/cache load, ORT allocations
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "onnx_runtime.json"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--silent-zero", action="store_true", help="random model only: black pixels never spike")
    args = ap.parse_args()

    import onnx
    import torch

    from runtime.backends import get_backend
    from stdbp.export import to_onnx
    from stdbp.export.torch_walk import layers_of
    from stdbp.kernels import cpu
    from stdbp.nn import RelPspLinear, SpikeEncoder

    torch.set_num_threads(args.threads)
    with np.load(REPO / "models" / "sample" / "mnist-test-sample.npz") as z:
        x = z["images"][: args.batch].reshape(args.batch, 784)
    shipped = REPO / "models" / "mnist-fc800" / "model.onnx"
    tmp = Path(tempfile.mkdtemp())
    if shipped.exists():
        from stdbp.ops.validate import load_model
        from onnx import numpy_helper

        m = load_model(shipped)
        ws = [numpy_helper.to_array(i) for i in m.graph.initializer]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in m.graph.node[1].attribute}
        enc = {a.name: onnx.helper.get_attribute_value(a) for a in m.graph.node[0].attribute}
        net = torch.nn.Sequential(SpikeEncoder(enc.get("alpha", 1.0), bool(enc.get("silent_zero", 0))),
                                  RelPspLinear(784, 800, attrs["threshold"], attrs["t_max"]),
                                  RelPspLinear(800, 10, attrs["threshold"], attrs["t_max"]))
        with torch.no_grad():
            net[1].weight.copy_(torch.from_numpy(ws[0]))
            net[2].weight.copy_(torch.from_numpy(ws[1]))
        source = str(shipped.relative_to(REPO))
    else:
        torch.manual_seed(0)
        net = torch.nn.Sequential(SpikeEncoder(1.0, args.silent_zero), RelPspLinear(784, 800), RelPspLinear(800, 10))
        source = "random 784-800-10 (seed 0, default init)"
    path = tmp / "m.onnx"
    path.write_bytes(to_onnx(net).SerializeToString())

    results = {}
    for name, portable in (("custom_op", False), ("function_bodies", True)):
        b = get_backend("onnxruntime")
        b.prepare(str(path), portable=portable, threads=args.threads)
        secs = timed(lambda: b.run(x), args.repeats)
        results[name] = secs
    xt = torch.from_numpy(x)
    with torch.no_grad():
        results["torch"] = timed(lambda: net(xt), args.repeats)
    layers = layers_of(net)
    w1, w2 = (np.ascontiguousarray(layer.weight) for layer in layers[1:])
    th, tm = layers[1].attrs["threshold"], layers[1].attrs["t_max"]
    from stdbp.ops.encode import compute as encode

    def kernel_only():
        t = encode(x, **layers[0].attrs)
        t = cpu.dense_forward(t, w1, th, tm)[0]
        return cpu.dense_forward(t, w2, th, tm)[0]

    results["kernel_numpy"] = timed(kernel_only, args.repeats)
    report = {
        "benchmark": "784-800-10 forward, frames per second",
        "model": source, "batch": args.batch, "repeats": args.repeats, "threads": args.threads,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "seconds_per_batch_median": {k: statistics.median(v) for k, v in results.items()},
        "frames_per_second": {k: args.batch / statistics.median(v) for k, v in results.items()},
        "all_seconds": results,
    }
    fps = report["frames_per_second"]
    report["custom_op_slowdown_vs_torch"] = fps["torch"] / fps["custom_op"]
    report["goal_custom_op_within_1.5x_of_torch"] = report["custom_op_slowdown_vs_torch"] <= 1.5
    out = Path(args.out)
    from stdbp.fileio import atomic_write_json

    atomic_write_json(out, report)
    print(json.dumps({k: report[k] for k in ("frames_per_second", "custom_op_slowdown_vs_torch")}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
