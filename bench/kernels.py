"""Speed and memory of the ReL-PSP kernels at batch 128 -> JSON + a rich table.

    python bench/kernels.py [--out bench/results/kernels.json] [--repeat 5] [--batch 128]
                            [--threads 1]

Layers: 784->800 (MNIST pixels, all firing: black spikes at alpha), 784->800 (silent_zero:
about 80 % of the inputs never spike), and every layer of the paper's CNN
28x28-16C5-P2-32C5-P2-800-128-10, fed by the previous layer's real output times (fresh
default-initialised weights, t_max = inf).

Implementations, each measured in its own subprocess (so peak RSS belongs to it alone):
  numba  - `stdbp.kernels.cpu` (numpy in/out; backward computes both input and weight grads,
           plus a weight-only line for the input layer as training uses it)
  torch  - `stdbp.kernels.torch_path` on CPU (the vectorised GPU form, chunked)
  ann    - the equal-shape ANN layer: nn.Linear / nn.Conv2d (+ReLU) or MaxPool2d, fwd + bwd
Every implementation runs with the same number of threads (--threads, default 1: on a shared
machine torch's OpenMP threads slow down more than tenfold under contention, which would make
the ANN column meaningless). Times are wall-clock milliseconds (min and median over --repeat runs) and CPU milliseconds
(process time, all threads; less sensitive to other processes on a shared machine).
Memory: peak RSS of the subprocess (ru_maxrss) and, for numba, the tracemalloc peak of the
numpy arrays allocated by one forward+backward of the largest layer.
The two 784-800 layers are also timed "interleaved" in the numba subprocess: numba forward,
numba backward and the ANN layer in turn, so that the numba/ANN ratio is measured under one
and the same machine load (`numba.interleaved` in the JSON, a line under the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

DEFAULT_OUT = "bench/results/kernels.json"
IMPLS = ("numba", "torch", "ann")


def _images(batch: int):
    import numpy as np

    try:
        from stdbp.data import load_dataset

        images, _ = load_dataset("mnist", "test")
        return np.array(images[:batch]), "mnist-test"
    except Exception:  # noqa: BLE001 - no data here: synthetic digits-like pixels
        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (batch, 28, 28)).astype(np.uint8)
        img[rng.random(img.shape) < 0.8] = 0
        return img, "synthetic"


def _layers(batch: int):
    """[(name, kind, t_in (torch float32), weight, extra)] with realistic input times."""
    import torch

    from stdbp import functional as SF
    from stdbp import nn as snn

    torch.manual_seed(0)
    images, source = _images(batch)
    pix = torch.from_numpy(images)
    t_all = SF.encode_intensity(pix.reshape(batch, 784))
    t_sil = SF.encode_intensity(pix.reshape(batch, 784), silent_zero=True)
    fc1 = snn.RelPspLinear(784, 800)
    layers = [("784-800 all fire", "dense", t_all, fc1.weight.detach(), {}),
              ("784-800 80% silent", "dense", t_sil, fc1.weight.detach(), {})]
    conv1, conv2 = snn.RelPspConv2d(1, 16, 5), snn.RelPspConv2d(16, 32, 5)
    d1, d2, d3 = snn.RelPspLinear(512, 800), snn.RelPspLinear(800, 128), snn.RelPspLinear(128, 10)
    with torch.no_grad():
        x = SF.encode_intensity(pix.reshape(batch, 1, 28, 28))
        layers.append(("conv 1->16 5x5 (28x28)", "conv", x, conv1.weight.detach(), {}))
        x = conv1(x)
        layers.append(("pool 2 (16x24x24)", "pool", x, None, {}))
        x = SF.spike_min_pool2d(x, 2)
        layers.append(("conv 16->32 5x5 (12x12)", "conv", x, conv2.weight.detach(), {}))
        x = conv2(x)
        layers.append(("pool 2 (32x8x8)", "pool", x, None, {}))
        x = SF.spike_min_pool2d(x, 2).flatten(1)
        for name, lay in (("512-800", d1), ("800-128", d2), ("128-10", d3)):
            layers.append((name, "dense", x, lay.weight.detach(), {}))
            x = lay(x)
    return layers, source


def _time(fn, repeat: int):
    fn()  # warm-up (compilation, caches)
    walls, cpus = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    walls.sort()
    return {"wall_ms_min": 1e3 * walls[0], "wall_ms_median": 1e3 * walls[len(walls) // 2],
            "cpu_ms_min": 1e3 * min(cpus)}


def _interleaved(layers, repeat: int) -> dict:
    """numba fwd, numba bwd and the ANN layer's fwd+bwd run in turn, `repeat` rounds, min of
    each: all three see the same machine load, so their ratio is steadier on a shared
    machine than the ratio of the separate subprocess runs."""
    import numpy as np
    import torch

    from stdbp.kernels import cpu

    out = {}
    for name, _, t_in, weight, _ in layers:
        t, w = t_in.numpy(), weight.numpy()
        t_out, wsum = cpu.dense_forward(t, w)
        g = np.ones_like(t_out)
        mod = torch.nn.Sequential(torch.nn.Linear(w.shape[1], w.shape[0]), torch.nn.ReLU())
        xg = torch.where(torch.isfinite(t_in), t_in, torch.zeros_like(t_in)).requires_grad_(True)

        def ann():
            xg.grad = None
            mod(xg).sum().backward()

        fns = {"numba_fwd": lambda: cpu.dense_forward(t, w),
               "numba_bwd": lambda: cpu.dense_backward(g, t, w, t_out, wsum), "ann_fwd_bwd": ann}
        best = dict.fromkeys(fns, float("inf"))
        for f in fns.values():
            f()  # warm-up
        for _ in range(repeat):
            for key, f in fns.items():
                w0 = time.perf_counter()
                f()
                best[key] = min(best[key], time.perf_counter() - w0)
        rec = {f"{k}_wall_ms_min": 1e3 * v for k, v in best.items()}
        rec["numba_over_ann"] = (best["numba_fwd"] + best["numba_bwd"]) / best["ann_fwd_bwd"]
        out[name] = rec
    return out


def _run_impl(impl: str, batch: int, repeat: int) -> dict:
    import numpy as np
    import torch

    from stdbp.kernels import cpu, torch_path

    layers, source = _layers(batch)
    rows = []
    for name, kind, t_in, weight, _ in layers:
        row = {"layer": name, "kind": kind, "input_shape": list(t_in.shape)}
        if kind != "pool":
            row["weight_shape"] = list(weight.shape)
        reps = repeat if impl != "torch" else max(2, repeat // 2)
        if impl == "numba":
            t, w = t_in.numpy(), None if weight is None else weight.numpy()
            if kind == "dense":
                t_out, wsum = cpu.dense_forward(t, w)
                g = np.ones_like(t_out)
                row["forward"] = _time(lambda: cpu.dense_forward(t, w), reps)
                row["backward"] = _time(lambda: cpu.dense_backward(g, t, w, t_out, wsum), reps)
                row["backward_weight_only"] = _time(lambda: cpu.dense_backward_counted(
                    g, t, w, t_out, wsum, need_grad_t=False), reps)
            elif kind == "conv":
                t_out, wsum = cpu.conv2d_forward(t, w)
                g = np.ones_like(t_out)
                row["forward"] = _time(lambda: cpu.conv2d_forward(t, w), reps)
                row["backward"] = _time(lambda: cpu.conv2d_backward(g, t, w, t_out, wsum), reps)
            else:
                t_out, _ = cpu.min_pool2d_forward(t, 2)
                row["forward"] = _time(lambda: cpu.min_pool2d_forward(t, 2), reps)
            row["fired_fraction"] = float(np.isfinite(t_out).mean())
        elif impl == "torch":
            if kind == "dense":
                t_out, wsum = torch_path.dense_forward(t_in, weight)
                g = torch.ones_like(t_out)
                row["forward"] = _time(lambda: torch_path.dense_forward(t_in, weight), reps)
                row["backward"] = _time(lambda: torch_path.dense_backward(
                    g, t_in, weight, t_out, wsum), reps)
            elif kind == "conv":
                t_out, wsum = torch_path.conv2d_forward(t_in, weight)
                g = torch.ones_like(t_out)
                row["forward"] = _time(lambda: torch_path.conv2d_forward(t_in, weight), reps)
                row["backward"] = _time(lambda: torch_path.conv2d_backward(
                    g, t_in, weight, t_out, wsum), reps)
            else:
                row["forward"] = _time(lambda: torch_path.min_pool2d_forward(t_in, 2), reps)
        else:  # the equal-shape ANN layer, inputs in [0, 1] with gradients
            x = torch.where(torch.isfinite(t_in), t_in, torch.zeros_like(t_in))
            if kind == "dense":
                mod = torch.nn.Sequential(torch.nn.Linear(weight.shape[1], weight.shape[0]),
                                          torch.nn.ReLU())
            elif kind == "conv":
                mod = torch.nn.Sequential(torch.nn.Conv2d(weight.shape[1], weight.shape[0],
                                                          weight.shape[2:]), torch.nn.ReLU())
            else:
                mod = torch.nn.MaxPool2d(2)
            xg = x.clone().requires_grad_(True)

            def fwd():
                with torch.no_grad():
                    mod(x)

            def fwd_bwd():
                xg.grad = None
                mod(xg).sum().backward()

            row["forward"] = _time(fwd, reps)
            row["forward_backward"] = _time(fwd_bwd, reps)
        rows.append(row)
    result = {"impl": impl, "rows": rows, "input_source": source}
    if impl == "numba":
        result["interleaved"] = _interleaved(layers[:2], max(repeat, 10))
    if impl == "numba":  # numpy allocations of one fwd+bwd of 784-800 (all firing)
        t, w = layers[0][2].numpy(), layers[0][3].numpy()
        tracemalloc.start()
        t_out, wsum = cpu.dense_forward(t, w)
        cpu.dense_backward(np.ones_like(t_out), t, w, t_out, wsum)
        result["tracemalloc_peak_mb_784_800"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["threads"] = {"torch": torch.get_num_threads(), "stdbp": cpu.num_threads()}
    return result


def _summary(results: dict) -> list[dict]:
    """Per layer: fwd+bwd of each implementation and the two ratios the targets refer to."""
    out = []
    by = {impl: {r["layer"]: r for r in results[impl]["rows"]} for impl in IMPLS}
    for layer in by["numba"]:
        n, t, a = by["numba"][layer], by["torch"].get(layer), by["ann"].get(layer)
        rec = {"layer": layer}
        total = lambda r, key: r["forward"][key] + r.get("backward", {}).get(key, 0.0)  # noqa
        for key in ("wall_ms_min", "cpu_ms_min"):
            rec[f"numba_fwd_bwd_{key}"] = total(n, key)
            if t:
                rec[f"torch_fwd_bwd_{key}"] = total(t, key)
                rec[f"torch_over_numba_{key}"] = total(t, key) / total(n, key)
            if a:
                ann = a["forward_backward"][key]
                rec[f"ann_fwd_bwd_{key}"] = ann
                rec[f"numba_over_ann_{key}"] = total(n, key) / ann
        out.append(rec)
    return out


def _table(results: dict, summary: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ReL-PSP kernels, batch %d, %d thread(s) (ms, wall min / CPU min)"
                  % (results["batch"], results["threads"]))
    for col in ("layer", "numba fwd", "numba bwd", "torch fwd", "torch bwd", "ANN fwd+bwd",
                "numba/ANN", "torch/numba", "fired"):
        table.add_column(col, justify="right" if col != "layer" else "left")
    by = {impl: {r["layer"]: r for r in results[impl]["rows"]} for impl in IMPLS}
    fmt = lambda d: "-" if d is None else f"{d['wall_ms_min']:.1f} / {d['cpu_ms_min']:.1f}"  # noqa
    for rec in summary:
        layer = rec["layer"]
        n, t, a = by["numba"][layer], by["torch"][layer], by["ann"][layer]
        table.add_row(layer, fmt(n["forward"]), fmt(n.get("backward")), fmt(t["forward"]),
                      fmt(t.get("backward")), fmt(a["forward_backward"]),
                      f"{rec['numba_over_ann_wall_ms_min']:.1f}x",
                      f"{rec.get('torch_over_numba_wall_ms_min', float('nan')):.0f}x",
                      f"{n.get('fired_fraction', float('nan')):.2f}")
    console = Console(width=170)
    console.print(table)
    for layer, rec in results["numba"].get("interleaved", {}).items():
        console.print(f"interleaved (same load), {layer}: numba fwd "
                      f"{rec['numba_fwd_wall_ms_min']:.1f} + bwd {rec['numba_bwd_wall_ms_min']:.1f}"
                      f" ms, ANN fwd+bwd {rec['ann_fwd_bwd_wall_ms_min']:.1f} ms -> "
                      f"{rec['numba_over_ann']:.1f}x")
    console.print("peak RSS MB: " + ", ".join(
        f"{impl} {results[impl]['peak_rss_mb']:.0f}" for impl in IMPLS)
        + f"; numba numpy peak (784-800 fwd+bwd) "
          f"{results['numba']['tracemalloc_peak_mb_784_800']:.1f} MB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for every implementation (numba pool and torch)")
    ap.add_argument("--impl", choices=IMPLS, help=argparse.SUPPRESS)  # subprocess mode
    args = ap.parse_args(argv)
    if args.impl:
        print(json.dumps(_run_impl(args.impl, args.batch, args.repeat)))
        return 0
    results = {"batch": args.batch, "repeat": args.repeat, "threads": args.threads, "machine": platform.processor()
               or platform.machine(), "cpus": os.cpu_count(),
               "load_average_before": os.getloadavg()}
    for impl in IMPLS:
        print(f"running {impl} ...", file=sys.stderr)
        env = dict(os.environ, STDBP_NUM_THREADS=str(args.threads),
                   OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        proc = subprocess.run([sys.executable, __file__, "--impl", impl, "--batch",
                               str(args.batch), "--repeat", str(args.repeat)],
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
    results["load_average_after"] = os.getloadavg()
    summary = _summary(results)
    results["summary"] = summary
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out)
    _table(results, summary)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
