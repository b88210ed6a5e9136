"""`stdbp-train` (= `stdbp train`): train a ReL-PSP network with STDBP.

    stdbp-train --data mnist --arch 784-800-10 --epochs 150 --out runs/mnist-fc800

Defaults are the paper's recipe (V-B). Multi-process data parallel: launch with
`torchrun --nproc_per_node=N -m stdbp.train.cli ...` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from stdbp.errors import cli_errors

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=False)


class RichReporter:
    """A rich progress bar (loss, accuracy, samples/s) plus one printed line per epoch."""

    def __init__(self, console):
        self.console = console
        self.progress = None
        self.task = None
        self._plain = None  # not a terminal (nohup, CI): a plain line every 10 % instead of a bar

    def start(self, phase, total, epoch, epochs):
        if not self.console.is_terminal:
            import time

            self._plain = {"name": f"{phase} {epoch}/{epochs}", "total": total, "done": 0, "next": 0.1,
                           "t0": time.perf_counter()}
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.stop()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("acc {task.fields[acc]}"),
            TextColumn("{task.fields[speed]} img/s"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(f"{phase} {epoch}/{epochs}", total=total, loss="-", acc="-", speed="-")

    def advance(self, n, loss=None, acc=None):
        if self._plain is not None:
            import time

            p = self._plain
            p["done"] += n
            frac = p["done"] / max(1, p["total"])
            if frac >= p["next"]:
                p["next"] = min(1.0, round(frac, 1) + 0.1)
                rate = p["done"] / max(1e-9, time.perf_counter() - p["t0"])
                extra = f"  loss {loss:.4f}  acc {acc * 100:.2f} %" if loss is not None else ""
                self.console.print(f"  {p['name']}: {frac * 100:3.0f} %{extra}  {rate:.0f} img/s", highlight=False)
            return
        if self.progress is None:
            return
        fields = {}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        if acc is not None:
            fields["acc"] = f"{acc * 100:.2f}%"
        task = self.progress.tasks[0]
        if task.speed:
            fields["speed"] = f"{task.speed:.0f}"
        self.progress.update(self.task, advance=n, **fields)

    def stop(self):
        self._plain = None
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def line(self, text):
        self.console.print(text, highlight=False)


def _dist_setup(device: str):
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        from datetime import timedelta

        # rank 0 alone trains the ANN before the first collective: allow it hours, not 30 min
        dist.init_process_group(backend=backend, timeout=timedelta(hours=12))
    rank = dist.get_rank()
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return rank, dist.get_world_size(), device


@app.command()
def train(
    out: str = typer.Option(..., "--out", "-o", help="run folder (runs/NAME)"),
    data: str = typer.Option("mnist", help="mnist, fashion-mnist, imagefolder:PATH (PATH/<class>/*.png), or a folder of images per class"),
    arch: str = typer.Option("784-800-10", help="paper notation, e.g. 28x28-16C5-P2-32C5-P2-800-128-10"),
    epochs: Optional[int] = typer.Option(None, help="SNN training epochs [default: 150; with --resume: the run's own]"),
    batch_size: int = typer.Option(128, help="global batch size"),
    lr: float = typer.Option(2e-4, help="initial learning rate (Adam)"),
    lr_final: float = typer.Option(5e-5, help="learning rate of the last epoch (exponential decay)"),
    beta1: float = typer.Option(0.9),
    beta2: float = typer.Option(0.999),
    jitter_variance: float = typer.Option(0.14, help="variance of the Gaussian input jitter (0 = off)"),
    threshold: float = typer.Option(1.0, help="firing threshold theta"),
    t_max: float = typer.Option(4.0, help="time window: a neuron silent by t_max never fires (inf allowed)"),
    alpha: float = typer.Option(1.0, help="encoding time scale: t = alpha (255 - s) / 255"),
    silent_zero: bool = typer.Option(False, help="black pixels never spike (paper: they spike at alpha)"),
    delta_clip: Optional[float] = typer.Option(None, help="clip delta = g / W_C to +-this (off by default)"),
    init: str = typer.Option("ann", help="ann (paper) or scratch"),
    ann_epochs: int = typer.Option(10, help="epochs of ANN pre-training"),
    ann_lr: float = typer.Option(1e-3),
    ann_lr_final: float = typer.Option(1e-4),
    coverage: float = typer.Option(0.9, help="ANN-active hidden neurons that must fire after conversion"),
    coverage_search: bool = typer.Option(False, help="try coverages 0.5-0.95, keep the conversion with the best calibration accuracy"),
    ann_dropout: float = typer.Option(0.0, help="dropout after the ANN's hidden dense layers (ANN training only)"),
    ann_from: Optional[str] = typer.Option(None, help="reuse a trained ANN (a run's ann.pt) instead of training one"),
    silent_target_push: float = typer.Option(0.0, help="opt-in hinge on silent targets' potential at t_max (0 = paper)"),
    augment_shift: int = typer.Option(0, help="opt-in: shift each training image by up to N pixels (not in the paper)"),
    seed: int = typer.Option(0),
    train_subset: Optional[int] = typer.Option(None, help="use only N training images"),
    test_subset: Optional[int] = typer.Option(None, help="use only N test images"),
    val_split: int = typer.Option(0, help="hold out N training images; best.pt is chosen on them (0: on the test set, as the paper)"),
    data_dir: Optional[str] = typer.Option(None, help="folder with the IDX files (else STDBP_DATA_DIR, caches)"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    threads: Optional[int] = typer.Option(None, help="threads of torch and of the spiking kernels (default: all cores)"),
    resume: bool = typer.Option(False, help="continue the run in --out exactly where it stopped"),
    force: bool = typer.Option(False, help="overwrite an existing run in --out"),
    stop_after: Optional[int] = typer.Option(None, help="end this call after N epochs (resume later)"),
    image_size: Optional[str] = typer.Option(None, help="imagefolder: resize to HxW, or native [default: the --arch input, else 160x250]"),
    per_class: str = typer.Option("200,50", help="imagefolder: TRAIN,VAL images per class (paper 200,50); the rest is the test set"),
    neuron: str = typer.Option("relpsp", help="relpsp (the paper's neuron) or alpha (alpha-PSP baseline, dense only, no export)"),
    tau: float = typer.Option(1.0, help="alpha-PSP time constant (--neuron alpha)"),
) -> None:
    """Train; writes config.json, metrics.jsonl, checkpoint.pt, best.pt (and model.onnx) to --out."""
    with cli_errors():
        from rich.console import Console

        if threads:
            import torch

            torch.set_num_threads(threads)
            os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
            # the compiled kernels' own thread pool (stdbp.threads); without this, --threads 1
            # still split every kernel call over all cores, and two 1-thread runs side by side
            # stalled on each other's threads
            os.environ["STDBP_NUM_THREADS"] = str(threads)
        from stdbp.train.runner import TrainConfig
        from stdbp.train.trainer import train as run_training

        rank, world, device = _dist_setup(device)
        cfg = TrainConfig(data=data, arch=arch, epochs=150 if epochs is None else epochs, batch_size=batch_size, lr=lr, lr_final=lr_final,
                          beta1=beta1, beta2=beta2, jitter_variance=jitter_variance, threshold=threshold,
                          t_max=t_max, alpha=alpha, silent_zero=silent_zero, delta_clip=delta_clip, init=init,
                          ann_epochs=ann_epochs, ann_lr=ann_lr, ann_lr_final=ann_lr_final, coverage=coverage, coverage_search=coverage_search, ann_from=ann_from, ann_dropout=ann_dropout,
                          silent_target_push=silent_target_push, augment_shift=augment_shift,
                          seed=seed, train_subset=train_subset, test_subset=test_subset, val_split=val_split, data_dir=data_dir,
                          device=device, neuron=neuron, tau=tau,
                          image_size=image_size, per_class=per_class)
        console = Console(quiet=rank != 0, width=None if sys.stdout.isatty() else 200)
        summary = run_training(cfg, out, resume=resume, force=force, epochs_given=epochs is not None,
                               reporter=RichReporter(console),
                               rank=rank, world=world, stop_after=stop_after)
        if summary["status"] == "diverged":
            raise typer.Exit(3)
        if summary["status"] == "interrupted":
            raise typer.Exit(130)
        chosen = "" if summary["selected_on"] == "test" else " (epoch chosen on the validation images)"
        console.print(f"done: best test accuracy {summary['best_test_accuracy'] * 100:.2f} %{chosen} "
                      f"after {summary['epochs_done']} epochs; ONNX: {summary.get('onnx', '-')}", highlight=False)


def main() -> None:  # `python -m stdbp.train.cli` (torchrun)
    app()


if __name__ == "__main__":
    main()
