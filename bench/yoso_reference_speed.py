"""Throughput of the YOSO integer reference and the compiler on 784-800-10 (writes JSON).

    python bench/yoso_reference_speed.py [--model PATH.onnx] [--frames 2000] [-o bench/results/yoso_reference_speed.json]

Without --model, a deterministic random 784-800-10 (compiler.testmodels, t_max = inf) is used.
Frames: the bundled MNIST sample, repeated to --frames. Measures compile time, and frames/s of
the segment kernel (default) and the literal step kernel (the latter on a tenth of the frames).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("-o", "--out", default="bench/results/yoso_reference_speed.json")
    args = ap.parse_args()

    from compiler import CompileOptions, compile_model
    from compiler.testmodels import dense_model
    from stdbp.fileio import atomic_write_json
    from yoso_backend import reference as R

    model = args.model or dense_model([784, 800, 10], seed=0)
    t0 = time.perf_counter()
    prog = compile_model(model, CompileOptions()).program
    t_compile = time.perf_counter() - t0
    sample = np.load(Path(__file__).resolve().parent.parent / "models/sample/mnist-test-sample.npz")["images"]
    reps = -(-args.frames // len(sample))
    pixels = np.ascontiguousarray(np.tile(sample.reshape(len(sample), -1), (reps, 1))[: args.frames])
    R.run(prog, pixels[:8])  # numba compile / cache load outside the timing
    result = {"model": args.model or "random 784-800-10 (seed 0, t_max inf)", "frames": args.frames,
              "windows": [l.window_steps for l in prog.layers], "compile_seconds": t_compile,
              "cpus": os.cpu_count(), "python": platform.python_version()}
    for method, frames in (("segments", args.frames), ("steps", max(1, args.frames // 10))):
        x = pixels[:frames]
        t0 = time.perf_counter()
        steps = R.input_steps(prog, x)
        for lay in prog.layers:
            steps, _ = R.run_layer(steps, prog.layer_weights(lay.index), prog.layer_thresholds(lay.index),
                                   lay.window_steps, acc_range=(prog.hw.acc_min, prog.hw.acc_max),
                                   v_range=(prog.hw.v_min, prog.hw.v_max), fires=lay.fires, method=method)
        dt = time.perf_counter() - t0
        result[f"{method}_frames_per_second"] = frames / dt
        result[f"{method}_frames"] = frames
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
