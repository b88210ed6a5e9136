"""`stdbp demo`: the whole path on the shipped default, side by side.

Compiles the shipped MNIST 784-800-10 model for yoso-6x7, runs it on the bundled 500-image
sample through onnxruntime (the float model, real custom op) and through the bit-accurate YOSO
emulator, and prints accuracy, speed, latency, power and energy per frame next to the paper's
Table IV row. Everything lands in a fresh `runs/demo-<time>/` (never overwritten): the compiled
`model.yoso/`, `demo.json`, the YOSO report and its plots.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help="Compile the shipped model and run it on onnxruntime and YOSO, side by side.")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "mnist-fc800" / "model.onnx"
PAPER = {"accuracy_pct": 98.45, "latency_ms": 47.71, "fps": 21.0, "power_mw": 0.751, "energy_uj": 35.839}
# the paper's YOSO figures exist for MNIST 784-800-10 only; for its MNIST CNN only the accuracy (Table I)
PAPER_BY_ARCH = {"784-800-10": PAPER,
                 "28x28-16C5-P2-32C5-P2-800-128-10": {**dict.fromkeys(PAPER), "accuracy_pct": 99.4}}
SHIPPED = ("mnist-fc800", "mnist-cnn", "fashion-fc1000")


def _paper_row(model: Path, dataset: str | None) -> dict:
    import json

    card = model.parent / "card.json"
    arch = json.loads(card.read_text()).get("arch") if card.is_file() else None
    if dataset not in ("mnist", None):
        return dict.fromkeys(PAPER)
    return PAPER_BY_ARCH.get(arch, PAPER if arch is None else dict.fromkeys(PAPER))


@app.command()
def demo(
    model: Path = typer.Argument(DEFAULT_MODEL, help="ai.stdbp ONNX model (default: the shipped MNIST 784-800-10)"),
    data: str = typer.Option(None, help="sample | sample-fashion-mnist | mnist | fashion-mnist | PATH.npz "
                             "(default: the bundled sample of the model's data set)"),
    limit: int = typer.Option(None, help="use only the first N images"),
    name: str = typer.Option(None, "--model", help=f"a shipped model by name ({', '.join(SHIPPED)}), instead of MODEL"),
    hw: str = typer.Option(None, help="hardware description to compile for (default: yoso-6x7, or yoso-16x16 "
                           "for a network that does not fit it)"),
    out: Path = typer.Option(None, "--out", "-o", help="output folder (default: runs/demo-<time>)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output folder"),
) -> None:
    """Compile MODEL for YOSO, run it on both backends, print the comparison."""
    from stdbp.errors import cli_errors

    with cli_errors():
        if name is not None:
            from stdbp.errors import UserError

            if name not in SHIPPED:
                raise UserError("--model", f"{name!r} is not a shipped model", f"use one of {', '.join(SHIPPED)}")
            model = REPO / "models" / name / "model.onnx"
        _demo(model, data, limit, hw, out, force)


def _run_backend(name: str, model: Path, images, console, **options):
    from runtime.backends import get_backend
    from runtime.cli import run_batches

    runner = get_backend(name)
    runner.prepare(str(model), **options)
    times, preds, _, seconds = run_batches(runner, images, 128, name, console)
    return runner, preds, times, seconds


def _demo(model: Path, data: str | None, limit: int | None, hw: str | None, out: Path | None, force: bool) -> None:
    import shutil
    import time

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from runtime.cli import _default_data, load_data, model_dataset
    from runtime.compile_glue import compile_for_yoso
    from stdbp.errors import UserError
    from stdbp.fileio import atomic_write_json, refuse_overwrite

    if not model.is_file():
        raise UserError(model, "model not found", "pass an ai.stdbp ONNX model (the shipped one is models/mnist-fc800/model.onnx)")
    out = out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    refuse_overwrite(out, force)
    console = Console()
    images, labels, desc = load_data(data or _default_data(model), "test", limit, None)

    console.print(f"[bold]1/3[/] compiling {model} for {hw or 'yoso-6x7 (or the larger mesh if it does not fit)'}")
    created = not out.exists()
    notes: list[str] = []
    try:  # a model the compiler refuses leaves no empty output folder behind
        yoso_dir, mapping = compile_for_yoso(model, out / "model.yoso", hw=hw, force=True, notes=notes)
        from yoso_backend.artifact import load_program

        hw = load_program(yoso_dir, verify=False).hw.name
    except BaseException:
        if created and out.exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    for note in notes:
        console.print(f"    note: {note}")
    console.print(f"    {mapping.get('pes_used', '?')} PEs of {hw} used; program in {yoso_dir}")
    for w in mapping.get("warnings", []):
        console.print(f"    [yellow]warning:[/] {w}")

    console.print(f"[bold]2/3[/] onnxruntime (float model, ai.stdbp custom op) on {desc}")
    _, ort_pred, ort_times, ort_s = _run_backend("onnxruntime", model, images, console)
    console.print(f"[bold]3/3[/] YOSO emulator (bit-accurate, cycle model) on {desc}")
    yoso, yoso_pred, yoso_times, yoso_s = _run_backend("yoso", yoso_dir, images, console)
    rep = yoso.finalize(out / "yoso-report", labels)

    n = len(labels)
    ort_acc, yoso_acc = float((ort_pred == labels).mean()), float((yoso_pred == labels).mean())
    agree = float((ort_pred == yoso_pred).mean())
    result = {
        "model": str(model), "data": desc, "images": n, "hardware": hw, "compiled": str(yoso_dir),
        "onnxruntime": {"accuracy": ort_acc, "host_fps": n / ort_s},
        "yoso": {"accuracy": yoso_acc, "host_fps": n / yoso_s, "latency_ms": rep["latency_ms"]["mean"],
                 "chip_fps": rep["fps"], "power_mw": rep["power_mw"], "energy_uj_per_frame": rep["energy_uj_per_frame"],
                 "calibrated": rep["calibrated"], "report": str(out / "yoso-report" / "report.json")},
        "prediction_agreement": agree,
    }

    # the paper's YOSO figures are for MNIST 784-800-10; for any other model the column stays empty
    paper = _paper_row(model, model_dataset(model))
    result["paper"] = paper

    def p(key: str, fmt: str) -> str:
        return "-" if paper[key] is None else format(paper[key], fmt)

    cal = "" if rep["calibrated"] else " (uncalibrated)"
    if hw == "yoso-16x16":
        cal = " (extrapolated)"
    atomic_write_json(out / "demo.json", result)
    table = Table(title=f"{model.name} on {desc} ({n} images)")
    for col in ("", "onnxruntime", "YOSO emulator", "paper"):
        table.add_column(col, justify="right")
    table.add_row("accuracy %", f"{100 * ort_acc:.2f}", f"{100 * yoso_acc:.2f}", p("accuracy_pct", ".2f"))
    table.add_row("host frames/s", f"{n / ort_s:.0f}", f"{n / yoso_s:.0f}", "-")
    table.add_row(f"latency ms{cal}", "-", f"{rep['latency_ms']['mean']:.2f}", p("latency_ms", ".2f"))
    table.add_row(f"chip fps{cal}", "-", f"{rep['fps']:.1f}", p("fps", ".0f"))
    table.add_row(f"power mW{cal}", "-", f"{rep['power_mw']:.3f}", p("power_mw", ".3f"))
    table.add_row(f"energy uJ/frame{cal}", "-", f"{rep['energy_uj_per_frame']:.3f}", p("energy_uj", ".3f"))
    console.print(table)
    console.print("onnxruntime: float32 model; YOSO: 8-bit integer program on the emulator; host frames/s include"
                  " first-call compilation; chip figures are the emulator's cycle and energy model")
    console.print(f"predictions identical on {100 * agree:.1f} % of images (float vs 8-bit integer chip)")
    console.print(f"results: {out / 'demo.json'}; YOSO report and plots: {out / 'yoso-report'}")
