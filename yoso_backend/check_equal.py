"""Emulator vs integer reference on a data set: every fire step of every layer, counted.

    python -m yoso_backend.check_equal model.yoso --data mnist [--limit N] [--no-early-stop] [-o out.json]

Runs `reference.run` (the oracle) and `Emulator.run` chunk by chunk and counts, per layer, the fire
steps that differ (with early stop the reference's later spikes are cut at the frame's end, as the
emulator never runs them). Exit code 1 when any differs. Reads a compiled program and uint8 frames
only (no ONNX).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


def compare(prog, images: np.ndarray, early_stop: bool = True, chunk: int = 500, progress=None) -> dict:
    import copy

    from yoso_backend import reference
    from yoso_backend.emulator import Emulator

    prog = copy.copy(prog)
    prog.early_stop = bool(early_stop) and prog.output_mode == "ttfs"
    emu = Emulator(prog)
    n_layers = len(prog.layers)
    bad = np.zeros(n_layers, np.int64)
    checked = np.zeros(n_layers, np.int64)
    bad_frames = 0
    pred_bad = 0
    t_ref = t_emu = 0.0
    for a in range(0, len(images), chunk):
        px = images[a:a + chunk].reshape(min(chunk, len(images) - a), -1)
        t = time.perf_counter()
        ref = reference.run(prog, px)
        t_ref += time.perf_counter() - t
        t = time.perf_counter()
        res = emu.run(px)
        t_emu += time.perf_counter() - t
        frame_bad = np.zeros(len(px), bool)
        for lay, want in enumerate(ref.fire_steps):
            diff = res.fire[lay + 1] != want
            bad[lay] += int(diff.sum())
            checked[lay] += want.size
            frame_bad |= diff.any(axis=1)
        pred_bad += int((res.predictions != ref.predictions).sum())
        bad_frames += int(frame_bad.sum())
        if progress is not None:
            progress(a + len(px))
    return {"frames": int(len(images)), "early_stop": bool(prog.early_stop),
            "fire_steps_checked": int(checked.sum()), "fire_steps_differing": int(bad.sum()),
            "per_layer_differing": [int(b) for b in bad], "frames_differing": bad_frames,
            "predictions_differing": pred_bad, "seconds": {"reference": t_ref, "emulator": t_emu},
            "emulator_fps": len(images) / t_emu if t_emu else None}


@app.command()
def main(program: Path = typer.Argument(..., help="compiled model.yoso/ directory"),
         data: str = typer.Option("mnist", "--data", help="mnist, fashion-mnist, sample, sample-fashion-mnist or .npz"),
         split: str = typer.Option("test", "--split"),
         limit: Optional[int] = typer.Option(None, "--limit", help="first N frames only"),
         data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
         early_stop: bool = typer.Option(True, "--early-stop/--no-early-stop"),
         out: Optional[Path] = typer.Option(None, "-o", "--out", help="JSON report"),
         force: bool = typer.Option(False, "--force", help="overwrite the JSON report")) -> None:
    from rich.console import Console
    from rich.progress import Progress

    from runtime.cli import load_data
    from stdbp.errors import cli_errors
    from stdbp.fileio import atomic_write_json, refuse_overwrite
    from yoso_backend.artifact import load_program

    with cli_errors():
        if out is not None:
            refuse_overwrite(out, force)
        prog = load_program(program)
        images, _labels, desc = load_data(data, split, limit, data_dir)
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(f"emulator vs reference on {desc}", total=len(images))
            rep = compare(prog, images, early_stop, progress=lambda n: bar.update(task, completed=n))
        rep.update(program=str(program), data=desc)
        if out is not None:
            atomic_write_json(out, rep)
        print(json.dumps(rep, indent=1))
        if rep["fire_steps_differing"] or rep["predictions_differing"]:
            sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
