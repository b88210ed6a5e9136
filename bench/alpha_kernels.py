"""Speed of the alpha-PSP dense kernels against the ReL-PSP kernels of the same shape -> JSON.

    python bench/alpha_kernels.py [--out bench/results/alpha_kernels.json] [--repeat 5]
                                  [--batch 128] [--threads 1]

Layer 784->800 at batch 128, fed by MNIST test pixels encoded as the paper does
(t = (255 - s) / 255, black pixels at 1; t_max = 4), fresh default-initialised weights of each
layer (the same tensor for both neurons). Forward, backward (input and weight gradients) and
both together, wall-clock milliseconds (min and median over --repeat runs), measured
interleaved in one process so that both neurons see the same machine load; the ratio
alpha / ReL-PSP is reported per phase (of the minima). A second case, "silent_zero", lets
black pixels never spike (about 80 % of the inputs silent).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

DEFAULT_OUT = "bench/results/alpha_kernels.json"


def _pixels(batch: int):
    import numpy as np

    try:
        from stdbp.data import load_dataset

        images, _ = load_dataset("mnist", "test")
        return np.array(images[:batch]).reshape(batch, -1), "mnist-test"
    except Exception:  # noqa: BLE001 - no data here: synthetic digit-like pixels
        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (batch, 784)).astype(np.uint8)
        img[rng.random(img.shape) < 0.8] = 0
        return img, "synthetic"


def _time(fn, repeat: int) -> dict:
    fn()  # compile / warm up
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1e3)
    return {"min_ms": min(runs), "median_ms": statistics.median(runs)}


def measure(batch: int, repeat: int, n_in: int = 784, n_out: int = 800) -> dict:
    import numpy as np
    import torch

    from stdbp import alpha
    from stdbp.kernels import cpu
    from stdbp.nn import RelPspLinear

    pixels, source = _pixels(batch)
    torch.manual_seed(0)
    w = RelPspLinear(n_in, n_out).weight.detach().numpy().astype(np.float64)
    out = {"source": source, "shape": f"{n_in}-{n_out}", "batch": batch, "cases": {}}
    for case, silent in (("all_pixels", False), ("silent_zero", True)):
        t = ((255.0 - pixels.astype(np.float64)) / 255.0)[:, :n_in]
        if silent:
            t[pixels[:, :n_in] == 0] = np.inf
        t32, w32 = t.astype(np.float32), w.astype(np.float32)
        ta, sa = alpha.dense_forward(t, w, 1.0, 4.0)
        tr, wr = cpu.dense_forward(t32, w32, 1.0, 4.0)
        g = np.random.default_rng(1).normal(size=ta.shape)
        g32 = g.astype(np.float32)
        fns = {
            "alpha": {"forward": lambda: alpha.dense_forward(t, w, 1.0, 4.0),
                      "backward": lambda: alpha.dense_backward(g, t, w, ta, sa)},
            "relpsp": {"forward": lambda: cpu.dense_forward(t32, w32, 1.0, 4.0),
                       "backward": lambda: cpu.dense_backward_counted(g32, t32, w32, tr, wr,
                                                                      None, True, True)},
        }
        res = {k: {ph: [] for ph in ("forward", "backward")} for k in fns}
        for k in fns:  # warm-up (numba compile)
            for ph in fns[k]:
                fns[k][ph]()
        for _ in range(repeat):  # interleaved: both neurons under the same load
            for k in fns:
                for ph in fns[k]:
                    t0 = time.perf_counter()
                    fns[k][ph]()
                    res[k][ph].append((time.perf_counter() - t0) * 1e3)
        summary = {}
        for k in res:
            summary[k] = {ph: {"min_ms": min(v), "median_ms": statistics.median(v)}
                          for ph, v in res[k].items()}
            both = [a + b for a, b in zip(res[k]["forward"], res[k]["backward"])]
            summary[k]["forward_backward"] = {"min_ms": min(both),
                                              "median_ms": statistics.median(both)}
        summary["ratio_alpha_over_relpsp"] = {
            ph: summary["alpha"][ph]["min_ms"] / summary["relpsp"][ph]["min_ms"]
            for ph in ("forward", "backward", "forward_backward")}
        summary["fired_fraction"] = {"alpha": float(np.isfinite(ta).mean()),
                                     "relpsp": float(np.isfinite(tr).mean())}
        out["cases"][case] = summary
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    os.environ["STDBP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    result = measure(args.batch, args.repeat)
    result.update({"threads": args.threads, "repeat": args.repeat, "python": sys.version.split()[0],
                   "machine": platform.machine(), "processor": platform.processor(),
                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    from stdbp.fileio import atomic_write_json

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    for case, s in result["cases"].items():
        r = s["ratio_alpha_over_relpsp"]
        print(f"{case}: alpha fwd {s['alpha']['forward']['min_ms']:.1f} ms, bwd "
              f"{s['alpha']['backward']['min_ms']:.1f} ms; relpsp fwd "
              f"{s['relpsp']['forward']['min_ms']:.1f} ms, bwd {s['relpsp']['backward']['min_ms']:.1f} ms; "
              f"ratio fwd {r['forward']:.2f} bwd {r['backward']:.2f} both {r['forward_backward']:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
