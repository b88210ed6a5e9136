"""Agreement of the integer reference (compiled for YOSO) with the float onnxruntime backend.

    python -m compiler.check_agreement models/mnist-fc800/model.onnx [--limit 2000] [-o agreement.json]

Measures, on a data set split (default: MNIST test, all 10 000 frames):
  agreement       fraction of frames whose integer prediction equals the float prediction
  acc_float       accuracy of onnxruntime (float32, custom op over stdbp.kernels) -- label == argmin t
  acc_int         accuracy of the integer reference on the compiled model.yoso (TTFS, early stop)
  drop_points     100 * (acc_float - acc_int)
  silent_*        frames with no output spike (prediction -1, counted wrong)
  spike-time error of the first output spike (frames where both spike): mean/max |t_int - t_float|
A prediction of -1 (no output spike) is always wrong. Writes JSON (atomic) and prints a summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def measure(model: Path, *, dataset: str = "mnist", split: str = "test", limit: int | None = None,
            hw: str = "yoso-6x7", scale: str = "layer", batch: int = 1000, data_dir: str | None = None,
            progress: bool = True) -> dict:
    import numpy as np
    from rich.progress import Progress

    from compiler import CompileOptions, compile_model
    from runtime.backends import get_backend
    from stdbp.data import load_dataset
    from yoso_backend.reference import run

    images, labels = load_dataset(dataset, split, data_dir)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    pixels = np.ascontiguousarray(images.reshape(len(images), -1))
    t0 = time.perf_counter()
    state = compile_model(model, CompileOptions(hw=hw, scale_mode=scale))
    t_compile = time.perf_counter() - t0
    prog = state.program
    float_backend = get_backend("onnxruntime")
    float_backend.prepare(str(model))
    pf, pi, tf, ti = [], [], [], []
    events = 0.0
    t_float = t_int = 0.0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{dataset} {split}", total=len(pixels))
        for s in range(0, len(pixels), batch):
            x = pixels[s:s + batch]
            t0 = time.perf_counter()
            fr = float_backend.run(x)
            t_float += time.perf_counter() - t0
            t0 = time.perf_counter()
            ir = run(prog, x)
            t_int += time.perf_counter() - t0
            pf.append(fr.predictions)
            pi.append(ir.predictions)
            tf.append(np.asarray(fr.spike_times, np.float64).min(axis=1))
            ti.append(ir.spike_times.min(axis=1))
            events += ir.counters["synaptic_events_mean"] * len(x)
            bar.advance(task, len(x))
    pf, pi, tf, ti = map(np.concatenate, (pf, pi, tf, ti))
    y = labels.astype(np.int64)
    both = np.isfinite(tf) & np.isfinite(ti)
    dt = np.abs(ti[both] - tf[both])
    acc_f, acc_i = float((pf == y).mean()), float((pi == y).mean())
    return {
        "model": str(model), "dataset": dataset, "split": split, "frames": int(len(y)),
        "hardware": prog.hw.name, "hardware_sha256": prog.hw.sha256, "scale_mode": scale,
        "output_mode": prog.output_mode, "steps_per_alpha": prog.steps_per_alpha,
        "windows": [l.window_steps for l in prog.layers], "compile_warnings": state.warnings,
        "agreement": float((pf == pi).mean()), "disagreements": int((pf != pi).sum()),
        "acc_float": acc_f, "acc_int": acc_i, "drop_points": 100.0 * (acc_f - acc_i),
        "silent_float": int((pf < 0).sum()), "silent_int": int((pi < 0).sum()),
        "first_spike_abs_err_mean": float(dt.mean()) if dt.size else None,
        "first_spike_abs_err_max": float(dt.max()) if dt.size else None,
        "synaptic_events_per_frame_mean": events / len(y) if len(y) else 0.0,
        "seconds": {"compile": t_compile, "float": t_float, "int": t_int},
    }


@app.command()
def main(
    model: Path = typer.Argument(..., help="ai.stdbp ONNX model"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="JSON report (default: print only)"),
    dataset: str = typer.Option("mnist", help="mnist or fashion-mnist"),
    split: str = typer.Option("test", help="train or test"),
    limit: Optional[int] = typer.Option(None, help="first N frames only"),
    hw: str = typer.Option("yoso-6x7", "--hw", help="hardware description"),
    scale: str = typer.Option("layer", "--scale", help="layer or neuron"),
    batch: int = typer.Option(1000, help="frames per batch"),
    force: bool = typer.Option(False, "--force", help="overwrite the JSON report"),
) -> None:
    """Compare integer-reference and onnxruntime predictions; write JSON."""
    from stdbp.errors import cli_errors

    with cli_errors():
        from stdbp.fileio import atomic_write_json, refuse_overwrite

        if out is not None:
            refuse_overwrite(out, force)
        rep = measure(model, dataset=dataset, split=split, limit=limit, hw=hw, scale=scale, batch=batch)
        if out is not None:
            atomic_write_json(out, rep)
        keys = ("frames", "agreement", "disagreements", "acc_float", "acc_int", "drop_points", "silent_float",
                "silent_int", "first_spike_abs_err_mean", "synaptic_events_per_frame_mean", "seconds")
        print(json.dumps({k: rep[k] for k in keys}, indent=1))


if __name__ == "__main__":
    app()
