"""Conv and min-pool layers of the paper's CNN vs the equal-shape ANN, and a CNN epoch profile.

    python bench/conv.py [--out bench/results/conv.json] [--repeat 7] [--threads 1]
                         [--profile-batches 30] [--model models/mnist-cnn]
                         [--conv-forward auto|scatter|ranked|patch] [--label TEXT]

Network 28x28-16C5-P2-32C5-P2-800-128-10 at batch 128, the weights of the shipped
`models/mnist-cnn` (trained, so the spike times are those of real training) fed with MNIST
training pixels encoded by its recipe (silent black pixels, t_max 8, jitter variance 0.0196).

1. Layers, interleaved: in each of --repeat rounds the SNN conv1 / pool1 / conv2 / pool2
   forward and backward (numba kernels through `stdbp.functional`, as training calls them: the
   input layer without an input gradient) and then the equal-shape ANN blocks (Conv2d + ClipReLU
   + MaxPool2d, forward and backward) run in turn, so that both see the same machine load.
   Reported: median milliseconds per batch and the ratio SNN block / ANN block.
2. Steps, interleaved: a whole training step (forward, loss, backward, Adam) of the SNN and of
   the equal-shape ANN, in turn on the same batches.
3. Profile: --profile-batches training steps with every kernel wrapped in a timer (conv fwd,
   conv bwd, pool, dense, the rest = loss, jitter, shifts, Adam, autograd glue and data), plus
   the evaluation of 1 000 test images; both extrapolated to an epoch of 55 000 training
   images (--val-split 5000) and an evaluation of 10 000 test + 5 000 validation images.
The machine load (os.getloadavg) before and after, the commit (git describe) and the conv
forward kernel each layer ran (--conv-forward forces one, to compare kernels in one checkout)
are written to the JSON.
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

DEFAULT_OUT = "bench/results/conv.json"


def _setup_threads(n: int) -> None:
    os.environ["STDBP_NUM_THREADS"] = str(n)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    import torch

    torch.set_num_threads(n)


def _data(batches: int):
    import torch

    from stdbp.data import load_dataset

    images, labels = load_dataset("mnist", "train")
    n = 128 * batches
    x = torch.from_numpy(images[:n].copy()).reshape(n, 1, 28, 28)
    y = torch.from_numpy(labels[:n].astype("int64"))
    return x, y


def _models(model_dir: str):
    from stdbp.train.arch import parse_arch
    from stdbp.train.card import load_shipped
    from stdbp.train.models import build_ann

    snn, cfg = load_shipped(model_dir)
    ann = build_ann(parse_arch(cfg["arch"]))
    # the ANN with the SNN's weights: equal shapes, and activations of a trained network
    for a, s in zip([m for m in ann if hasattr(m, "weight")], [m for m in snn if hasattr(m, "weight")]):
        a.weight.data.copy_(s.weight.data)
    return snn, ann, cfg


def _git_head() -> str:
    """The commit of the stdbp that runs (PYTHONPATH may point at another checkout)."""
    import subprocess

    import stdbp

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, check=True, cwd=Path(stdbp.__file__).resolve().parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _conv_paths(snn, cpu) -> dict:
    """The forward kernel each conv layer of the paper's CNN runs (cpu._conv_forward_path)."""
    shapes = {"conv1": (1, 28, 28), "conv2": (16, 12, 12)}
    paths = {}
    for name, m in zip(shapes, [m for m in snn if type(m).__name__ == "RelPspConv2d"]):
        c, h, w = shapes[name]
        kh, kw = m.kernel_size
        paths[name] = cpu._conv_forward_path(c * h * w, c * kh * kw, (h - kh + 1) * (w - kw + 1),
                                             m.out_channels, 4)
    return paths


def _median_ms(xs):
    return round(statistics.median(xs) * 1e3, 3)


def bench_layers(snn, ann, x, cfg, repeat: int) -> dict:
    import torch

    from stdbp import functional as SF
    from stdbp.data import SpikeJitter

    jit = SpikeJitter(cfg["jitter_variance"] ** 0.5, torch.Generator().manual_seed(0))
    pix = x[:128]
    with torch.no_grad():
        t0 = jit(snn[0](pix))
    conv1, conv2 = snn[1], snn[3]
    a_conv1, a_conv2 = ann[0], ann[3]
    xa = pix.float() / 255
    names = ("conv1", "pool1", "conv2", "pool2")
    rec = {f"snn_{n}_{d}": [] for n in names for d in ("fwd", "bwd")}
    rec.update({f"ann_block{i}_{d}": [] for i in (1, 2) for d in ("fwd", "bwd")})

    def snn_round():
        # forward, layer by layer (timed), then backward layer by layer with saved grads
        tt = time.perf_counter
        a = tt()
        y1 = conv1(t0)
        b = tt()
        y1d = y1.detach().requires_grad_(True)
        p1 = SF.spike_min_pool2d(y1d, 2)
        c = tt()
        p1d = p1.detach().requires_grad_(True)
        y2 = conv2(p1d)
        d = tt()
        y2d = y2.detach().requires_grad_(True)
        p2 = SF.spike_min_pool2d(y2d, 2)
        e = tt()
        rec["snn_conv1_fwd"].append(b - a)
        rec["snn_pool1_fwd"].append(c - b)
        rec["snn_conv2_fwd"].append(d - c)
        rec["snn_pool2_fwd"].append(e - d)
        g = torch.where(torch.isfinite(p2), torch.randn_like(p2) * 1e-3, torch.zeros_like(p2))
        a = tt()
        p2.backward(g)
        b = tt()
        y2.backward(y2d.grad)
        c = tt()
        p1.backward(p1d.grad)
        d = tt()
        y1.backward(y1d.grad)
        e = tt()
        rec["snn_pool2_bwd"].append(b - a)
        rec["snn_conv2_bwd"].append(c - b)
        rec["snn_pool1_bwd"].append(d - c)
        rec["snn_conv1_bwd"].append(e - d)
        for m in (conv1, conv2):
            m.weight.grad = None

    def ann_round():
        tt = time.perf_counter
        a = tt()
        h1 = ann[2](ann[1](a_conv1(xa)))
        b = tt()
        h1d = h1.detach().requires_grad_(True)
        h2 = ann[5](ann[4](a_conv2(h1d)))
        c = tt()
        g = torch.randn_like(h2) * 1e-3
        d = tt()
        h2.backward(g)
        e = tt()
        h1.backward(h1d.grad)
        f = tt()
        rec["ann_block1_fwd"].append(b - a)
        rec["ann_block2_fwd"].append(c - b)
        rec["ann_block2_bwd"].append(e - d)
        rec["ann_block1_bwd"].append(f - e)
        for m in (a_conv1, a_conv2):
            m.weight.grad = None

    snn_round()  # compile / cache load
    ann_round()
    for v in rec.values():
        v.clear()
    for _ in range(repeat):
        snn_round()
        ann_round()
    ms = {k: _median_ms(v) for k, v in rec.items()}
    blocks = {}
    for i, (conv, pool) in enumerate((("conv1", "pool1"), ("conv2", "pool2")), start=1):
        s_f = ms[f"snn_{conv}_fwd"] + ms[f"snn_{pool}_fwd"]
        s_b = ms[f"snn_{conv}_bwd"] + ms[f"snn_{pool}_bwd"]
        a_f, a_b = ms[f"ann_block{i}_fwd"], ms[f"ann_block{i}_bwd"]
        blocks[f"block{i}"] = {"snn_fwd_ms": round(s_f, 3), "snn_bwd_ms": round(s_b, 3),
                               "ann_fwd_ms": a_f, "ann_bwd_ms": a_b,
                               "ratio_fwd_bwd": round((s_f + s_b) / max(1e-9, a_f + a_b), 2)}
    return {"median_ms": ms, "blocks": blocks}


def bench_steps(snn, ann, x, y, cfg, batches: int) -> dict:
    import torch

    from stdbp.data import SpikeJitter
    from stdbp.train.loop import silent_target_push, spike_loss

    opt_s = torch.optim.Adam(snn.parameters(), lr=1e-9)
    opt_a = torch.optim.Adam(ann.parameters(), lr=1e-9)
    jit = SpikeJitter(cfg["jitter_variance"] ** 0.5, torch.Generator().manual_seed(1))
    t_max = cfg["t_max"]
    snn.train()
    ann.train()

    def snn_step(b):
        idx = slice(b * 128, (b + 1) * 128)
        t_h = snn[1:-1](jit(snn[0](x[idx])))
        t_out = snn[-1](t_h)
        loss, _ = spike_loss(t_out, y[idx], t_max)
        loss = loss + silent_target_push(t_h, snn[-1].weight, t_out, y[idx], 1.0, t_max)
        opt_s.zero_grad()
        loss.backward()
        opt_s.step()

    def ann_step(b):
        idx = slice(b * 128, (b + 1) * 128)
        loss = torch.nn.functional.cross_entropy(ann(x[idx].float() / 255), y[idx])
        opt_a.zero_grad()
        loss.backward()
        opt_a.step()

    snn_step(0)
    ann_step(0)
    ts, ta = [], []
    for b in range(batches):
        a = time.perf_counter()
        snn_step(b)
        m = time.perf_counter()
        ann_step(b)
        e = time.perf_counter()
        ts.append(m - a)
        ta.append(e - m)
    return {"batches": batches, "snn_step_ms": _median_ms(ts), "ann_step_ms": _median_ms(ta),
            "ratio": round(statistics.median(ts) / statistics.median(ta), 2)}


def profile_epoch(snn, x, y, cfg, batches: int) -> dict:
    import torch

    from stdbp.data import SpikeJitter
    from stdbp.kernels import numba_adapter, torch_path
    from stdbp.train.loop import evaluate, train_epoch

    acc = {"conv_fwd": 0.0, "conv_bwd": 0.0, "pool": 0.0, "dense_fwd": 0.0, "dense_bwd": 0.0}
    saved = []

    def wrap(mod, name, key):
        fn = getattr(mod, name)

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[key] += time.perf_counter() - t
        saved.append((mod, name, fn))
        setattr(mod, name, timed)

    wrap(numba_adapter, "conv2d_forward", "conv_fwd")
    wrap(numba_adapter, "conv2d_backward", "conv_bwd")
    wrap(numba_adapter, "dense_forward", "dense_fwd")
    wrap(numba_adapter, "dense_backward", "dense_bwd")
    for name in ("min_pool2d_forward", "min_pool2d_backward"):
        if hasattr(torch_path, name):
            wrap(torch_path, name, "pool")
    try:
        from stdbp.kernels import cpu
        for name in ("min_pool2d_forward", "min_pool2d_backward"):
            if hasattr(numba_adapter, name):
                wrap(numba_adapter, name, "pool")
        del cpu
    except ImportError:
        pass
    from stdbp.data import RandomShift

    opt = torch.optim.Adam(snn.parameters(), lr=1e-9)
    n = 128 * batches
    shift = (RandomShift(cfg["augment_shift"], (28, 28), torch.Generator().manual_seed(2))
             if cfg.get("augment_shift") else None)
    jit = SpikeJitter(cfg["jitter_variance"] ** 0.5, torch.Generator().manual_seed(3))
    try:
        for k in acc:
            acc[k] = 0.0
        t0 = time.perf_counter()
        train_epoch(snn, x[:n], y[:n], opt, batch_size=128, t_max=cfg["t_max"],
                    shuffle_gen=torch.Generator().manual_seed(0), jitter=jit,
                    push=cfg.get("silent_target_push", 0.0), augment=shift)
        train_s = time.perf_counter() - t0
        train_acc = dict(acc)
        for k in acc:
            acc[k] = 0.0
        n_eval = min(1000, n)
        t1 = time.perf_counter()
        evaluate(snn, x[:n_eval], y[:n_eval], batch_size=500)
        eval_s = time.perf_counter() - t1
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    scale = 55000 / n
    parts = {k: round(v * scale, 2) for k, v in train_acc.items()}
    parts["other (loss, jitter, shifts, Adam, autograd, data)"] = round(
        (train_s - sum(train_acc.values())) * scale, 2)
    return {"batches": batches, "train_seconds_measured": round(train_s, 3),
            "epoch_train_seconds_extrapolated": round(train_s * scale, 2),
            "epoch_parts_seconds_extrapolated": parts,
            "eval_seconds_per_1000": round(eval_s * 1000 / n_eval, 3),
            "eval_seconds_extrapolated_15000": round(eval_s * 15000 / n_eval, 2),
            "note": f"{batches} batches of 128 and {n_eval} evaluation images, extrapolated "
                    "to 55 000 training images and 10 000 test + 5 000 validation images"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--step-batches", type=int, default=10)
    ap.add_argument("--profile-batches", type=int, default=30)
    ap.add_argument("--model", default="models/mnist-cnn")
    ap.add_argument("--label", default="", help="free text stored in the JSON (e.g. before/after)")
    ap.add_argument("--conv-forward", default="auto", choices=["auto", "scatter", "ranked", "patch"],
                    help="force one conv forward kernel (stdbp.kernels.cpu.CONV_FORWARD)")
    args = ap.parse_args(argv)
    _setup_threads(args.threads)
    import torch

    from stdbp.kernels import cpu

    cpu.CONV_FORWARD = args.conv_forward

    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    x, y = _data(max(args.profile_batches, args.step_batches, 1))
    snn, ann, cfg = _models(args.model)
    layers = bench_layers(snn, ann, x, cfg, args.repeat)
    steps = bench_steps(snn, ann, x, y, cfg, args.step_batches)
    prof = profile_epoch(snn, x, y, cfg, args.profile_batches) if args.profile_batches else None
    result = {
        "bench": "conv", "label": args.label, "started_utc": started,
        "command": "python bench/conv.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                    "torch": torch.__version__,
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "model": args.model, "batch": 128, "repeat": args.repeat,
        "code": _git_head(), "conv_forward": _conv_paths(snn, cpu),
        "conv_backward": getattr(cpu, "CONV_BACKWARD", "patch"),
        "layers": layers, "steps": steps, "profile": prof,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    b = layers["blocks"]
    for k in ("block1", "block2"):
        print(f"{k}: SNN {b[k]['snn_fwd_ms']:.1f}/{b[k]['snn_bwd_ms']:.1f} ms  ANN "
              f"{b[k]['ann_fwd_ms']:.2f}/{b[k]['ann_bwd_ms']:.2f} ms  ratio {b[k]['ratio_fwd_bwd']}x")
    print(f"step: SNN {steps['snn_step_ms']:.1f} ms  ANN {steps['ann_step_ms']:.1f} ms  ratio {steps['ratio']}x")
    if prof:
        print(f"epoch (extrapolated): {prof['epoch_train_seconds_extrapolated']} s  "
              f"{prof['epoch_parts_seconds_extrapolated']}  eval {prof['eval_seconds_extrapolated_15000']} s")
    print(f"load {result['machine']['loadavg_before']} -> {result['machine']['loadavg_after']}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
