"""Seconds per MNIST training epoch: SNN 784-800-10, SNN CNN, and the equal-shape ANNs.

    python bench/train_epoch.py --out bench/results/train_epoch.json [--batches 40] [--full]

Times `--batches` batches of 128 (Adam step included, jitter on, paper encoding unless
--silent-zero) and extrapolates to the 469 batches of an epoch; `--full` times whole epochs.
Writes JSON (machine, threads, per network: measured seconds, batches, seconds per epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import torch


def _time_snn(arch_text, batches, silent_zero, x, y, t_max=4.0):
    from stdbp.data import SpikeJitter
    from stdbp.train.arch import parse_arch
    from stdbp.train.loop import spike_loss
    from stdbp.train.models import build_snn

    arch = parse_arch(arch_text)
    model = build_snn(arch, t_max=t_max, silent_zero=silent_zero)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    jit = SpikeJitter(0.14, torch.Generator().manual_seed(0))
    xs = x.reshape(len(y), *arch.pixel_shape)

    def step(b):
        idx = slice(b * 128, (b + 1) * 128)
        t_out = model[1:](jit(model[0](xs[idx])))
        loss, _ = spike_loss(t_out, y[idx], t_max)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(0)  # numba compile / cache load
    t0 = time.perf_counter()
    for b in range(batches):
        step(b % 469)
    return time.perf_counter() - t0


def _time_ann(arch_text, batches, x, y):
    import torch.nn.functional as F

    from stdbp.train.arch import parse_arch
    from stdbp.train.models import build_ann

    arch = parse_arch(arch_text)
    ann = build_ann(arch)
    opt = torch.optim.Adam(ann.parameters(), lr=1e-3)
    xs = x.reshape(len(y), *arch.pixel_shape).float() / 255

    def step(b):
        idx = slice(b * 128, (b + 1) * 128)
        loss = F.cross_entropy(ann(xs[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(0)
    t0 = time.perf_counter()
    for b in range(batches):
        step(b % 469)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results/train_epoch.json")
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--full", action="store_true", help="time whole epochs (469 batches)")
    ap.add_argument("--silent-zero", action="store_true", help="black pixels never spike")
    ap.add_argument("--nets", default="784-800-10,28x28-16C5-P2-32C5-P2-800-128-10")
    args = ap.parse_args()

    from stdbp.data import load_dataset
    from stdbp.fileio import atomic_write_json

    images, labels = load_dataset("mnist", "train")
    x = torch.from_numpy(images.copy()).reshape(60000, -1)
    y = torch.from_numpy(labels.astype("int64"))
    per_epoch = math.ceil(60000 / 128)
    batches = per_epoch if args.full else args.batches
    results = {}
    for net in args.nets.split(","):
        snn_s = _time_snn(net, batches, args.silent_zero, x, y)
        ann_s = _time_ann(net, batches, x, y)
        results[net] = {
            "batches_timed": batches,
            "snn_seconds": snn_s, "snn_seconds_per_epoch": snn_s / batches * per_epoch,
            "ann_seconds": ann_s, "ann_seconds_per_epoch": ann_s / batches * per_epoch,
            "snn_over_ann": snn_s / ann_s,
        }
        print(net, json.dumps(results[net]), flush=True)
    report = {
        "benchmark": "train_epoch", "batch_size": 128, "batches_per_epoch": per_epoch,
        "extrapolated": not args.full, "silent_zero": args.silent_zero, "jitter_variance": 0.14,
        "t_max": 4.0, "torch_threads": torch.get_num_threads(),
        "kernel_threads": __import__("stdbp.kernels.cpu", fromlist=["num_threads"]).num_threads(),
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_average_at_end": os.getloadavg(), "goal_784_800_10_epoch_s": 60, "results": results,
    }
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
