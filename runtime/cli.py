"""`stdbp-run MODEL --backend onnxruntime|yoso --data mnist|fashion-mnist|sample [...]`.

Runs a model on a data set in batches (progress bar), prints accuracy, frames per second and
the confusion matrix, and writes a JSON report (atomically; `runs/` by default, never
overwriting unless --force).

Backend extension point: options this command does not know (`--mode cycle --hw yoso.toml`) are
collected as `{"mode": "cycle", "hw": "yoso.toml"}` (a bare `--flag` -> True) and passed to the
backend's `prepare(model, **options)`. The onnxruntime backend accepts none and rejects them.
A MODEL that is a directory (`model.yoso/`) selects the yoso backend when --backend is "auto".
An ONNX MODEL with `--backend yoso` is compiled first, into `<report>.yoso/` beside the report.
Optional hook beyond the Backend protocol: a backend with `finalize(out_dir, labels, console=...)`
gets called after the last batch with a folder beside the JSON report (the report path without
its suffix); the dict it returns is stored under "backend_report" in the JSON report.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help="Run a model on onnxruntime or the YOSO emulator and report accuracy and speed.")

DATA_CHOICES = ("mnist", "fashion-mnist", "sample", "sample-fashion-mnist")
SAMPLES = {"sample": "mnist-test-sample.npz", "sample-fashion-mnist": "fashion-mnist-test-sample.npz"}


def parse_extra(args: list[str]) -> dict:
    """['--mode', 'cycle', '--fast', '--no-slow', '--hw=x'] -> {'mode': 'cycle', 'fast': True, 'slow': False, 'hw': 'x'}."""
    from stdbp.errors import UserError

    out, i = {}, 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or len(a) == 2:
            raise UserError("stdbp-run", f"unexpected argument {a!r}", "see stdbp-run --help")
        key = a[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value, i = args[i + 1], i + 1
        elif key.startswith("no-"):  # --no-early-stop, as stdbp-compile spells it
            key, value = key[3:], False
        else:
            value = True
        out[key.replace("-", "_")] = value
        i += 1
    return out


def load_data(data: str, split: str, limit: int | None, data_dir: Path | None):
    """-> (images uint8 [N, 28, 28], labels int64 [N], description)."""
    import numpy as np

    from stdbp.errors import UserError

    if data in SAMPLES or data.endswith(".npz"):
        path = Path(data) if data.endswith(".npz") else Path(__file__).resolve().parents[1] / "models" / "sample" / SAMPLES[data]
        if not path.is_file():
            raise UserError(path, "sample file not found", "use --data mnist or pass an .npz with images and labels")
        try:
            with np.load(path) as z:
                images, labels = z["images"], z["labels"]
        except Exception as exc:
            raise UserError(path, f"not a readable sample archive ({type(exc).__name__})",
                            "need an .npz with arrays images (uint8) and labels") from None
        desc = path.name
    elif data in ("mnist", "fashion-mnist"):
        from stdbp.data import load_dataset

        images, labels = load_dataset(data, split, data_dir)
        desc = f"{data}/{split}"
    else:
        raise UserError("--data", f"unknown data set {data!r}", f"one of {', '.join(DATA_CHOICES)} or an .npz path")
    if images.dtype != np.uint8 or len(images) != len(labels):
        raise UserError(desc, "images must be uint8 with one label each", "regenerate the sample")
    if limit is not None:
        if limit < 1:
            raise UserError("--limit", f"must be >= 1, got {limit}", "pass a positive number of images")
        images, labels = images[:limit], labels[:limit]
    return images, labels.astype(np.int64), desc


def confusion(labels, predictions, n_classes: int):
    """[classes, classes + 1]: rows = true class, columns = predicted class, last column = no spike."""
    import numpy as np

    cm = np.zeros((n_classes, n_classes + 1), dtype=np.int64)
    cols = np.where(predictions < 0, n_classes, predictions)
    np.add.at(cm, (labels, cols), 1)
    return cm


def model_dataset(model: Path) -> str | None:
    """The data set named in a model's metadata: ONNX `stdbp.dataset`, or the manifest of a model.yoso/."""
    import json

    try:
        if model.is_dir():
            meta = json.loads((model / "manifest.json").read_text())["meta"]["source"]["metadata"]
        else:
            import onnx

            meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
        return meta.get("stdbp.dataset")
    except Exception:  # unreadable: the backend's validation reports it properly
        return None


def _default_data(model: Path) -> str:
    """The bundled sample of the data set named in the model's metadata (MNIST if none)."""
    return "sample-fashion-mnist" if model_dataset(model) == "fashion-mnist" else "sample"


def run_batches(runner, images, batch_size: int, label: str, console):
    """Run `images` through a prepared backend in batches, with a progress bar.

    Returns (spike_times, predictions, per-batch counters, seconds spent inside `runner.run`)."""
    import time

    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    times, preds, counters, run_s = [], [], [], 0.0
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=len(images))
        for s in range(0, len(images), batch_size):
            t0 = time.perf_counter()
            res = runner.run(images[s:s + batch_size])
            run_s += time.perf_counter() - t0
            times.append(res.spike_times)
            preds.append(res.predictions)
            counters.append(res.counters)
            bar.advance(task, len(res.predictions))
    return np.concatenate(times), np.concatenate(preds), counters, run_s


def _sum_counters(items: list[dict]) -> dict:
    out: dict = {}
    for c in items:
        for k, v in c.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
            else:
                out.setdefault(k, v)
    return out


YOSO_EPILOG = ("YOSO backend options (after the others): --mode ttfs|softmax, --early-stop / --no-early-stop, "
               "--hw NAME|PATH (clock and energy description; default: the calibrated copy of the model's), "
               "--multiplex G (an ONNX model: compile with G time-multiplexed neuron groups per PE), "
               "--record (keep per-frame traces), --chunk N (frames per emulator call, default 256), "
               "--report-dir DIR / --plots-dir DIR (report.json, mesh.png, raster.png). "
               "An ONNX model with --backend yoso is compiled first.")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, epilog=YOSO_EPILOG)
def run(
    ctx: typer.Context,
    model: Path = typer.Argument(..., help="model.onnx (onnxruntime) or model.yoso/ (yoso)"),
    backend: str = typer.Option("auto", help="onnxruntime | yoso | auto (directory -> yoso, file -> onnxruntime)"),
    data: str = typer.Option(None, help="mnist | fashion-mnist | sample | sample-fashion-mnist | PATH.npz "
                             "(default: the bundled 500-image sample of the model's data set)"),
    split: str = typer.Option("test", help="train | test (mnist, fashion-mnist)"),
    limit: int = typer.Option(None, help="use only the first N images"),
    batch_size: int = typer.Option(128, help="images per backend call"),
    portable: bool = typer.Option(False, "--portable", help="onnxruntime: run the attached function bodies instead of the custom ops"),
    threads: int = typer.Option(None, help="onnxruntime intra-op threads (default: all cores)"),
    memory_mb: int = typer.Option(1024, help="--portable: memory budget per call; batches are split to fit"),
    data_dir: Path = typer.Option(None, help="folder with the IDX files (default: see stdbp.data)"),
    report: Path = typer.Option(None, "--report", "-o", help="JSON report path (default: runs/run-<model>-<backend>-<data>-<time>.json)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing report"),
) -> None:
    """Run MODEL on a data set; print accuracy, frames per second and the confusion matrix."""
    from stdbp.errors import cli_errors

    with cli_errors():
        _run(model, backend, data, split, limit, batch_size, portable, threads, memory_mb, data_dir,
             report, force, parse_extra(list(ctx.args)))


def _run(model, backend, data, split, limit, batch_size, portable, threads, memory_mb, data_dir,
         report, force, extra):
    import json
    import time

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from runtime.backends import get_backend
    from stdbp.errors import UserError
    from stdbp.fileio import atomic_write_json, refuse_overwrite

    if not model.exists():
        raise UserError(model, "no such model", "pass a model.onnx file or a model.yoso/ directory")
    if backend == "auto":
        backend = "yoso" if model.is_dir() else "onnxruntime"
    if batch_size < 1:
        raise UserError("--batch-size", f"must be >= 1, got {batch_size}", "pass a positive batch size")
    if split not in ("train", "test"):
        raise UserError("--split", f"unknown split {split!r}", "train or test")
    data = data or _default_data(model)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = report or Path("runs") / f"run-{model.stem}-{backend}-{Path(data).stem}-{stamp}.json"
    refuse_overwrite(report, force)
    extra_dir = report.with_suffix("")
    options = dict(extra)
    if backend == "onnxruntime":
        if extra:
            raise UserError("stdbp-run", f"unknown option(s) for the onnxruntime backend: "
                            f"{', '.join('--' + k.replace('_', '-') for k in extra)}", "see stdbp-run --help")
        options.update(portable=portable, threads=threads, memory_mb=memory_mb)
    elif portable or threads is not None:
        raise UserError("stdbp-run", f"--portable and --threads apply to the onnxruntime backend, not {backend}",
                        "drop them, or pass the backend's own options")
    images, labels, desc = load_data(data, split, limit, data_dir)
    if backend == "yoso" and model.is_file():  # an ONNX model for the chip: compile it first
        from runtime.compile_glue import compile_for_yoso

        compiled = report.with_suffix(".yoso")
        Console(stderr=True).print(f"compiling {model} -> {compiled}")
        notes: list[str] = []
        multiplex = str(options.pop("multiplex", 1))
        if not multiplex.isdigit() or int(multiplex) < 1:
            raise UserError("--multiplex", f"{multiplex!r} is not a number of neuron groups", "use 1, 2, 3 ...")
        multiplex = int(multiplex)
        model, _ = compile_for_yoso(model, compiled, hw=str(options["hw"]) if options.get("hw") else None,
                                    output_mode=str(options.get("mode") or "ttfs"), force=force, notes=notes,
                                    multiplex=multiplex)
        if multiplex > 1:  # the program carries its (derived) description: clock and energy come from it
            options.pop("hw", None)
        for note in notes:
            Console(stderr=True).print(f"note: {note}")
    runner = get_backend(backend)
    console = Console(stderr=True)
    t_prep = time.perf_counter()
    runner.prepare(str(model), **options)
    prep_s = time.perf_counter() - t_prep
    spike_times, predictions, counters, run_s = run_batches(runner, images, batch_size, f"{backend} {desc}", console)
    n_classes = spike_times.shape[1]
    if labels.max(initial=0) >= n_classes:
        raise UserError(desc, f"labels go up to {labels.max()} but the model has {n_classes} outputs",
                        "use the data set the model was trained on")
    n = len(labels)
    correct = int((predictions == labels).sum())
    cm = confusion(labels, predictions, n_classes)
    result = {
        "model": str(model), "backend": backend, "data": desc, "images": n,
        "accuracy": correct / n if n else None, "correct": correct,
        "no_output_spike": int((predictions < 0).sum()),
        "frames_per_second": n / run_s if run_s > 0 else None,
        "seconds_run": run_s, "seconds_prepare": prep_s, "batch_size": batch_size,
        "options": {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in options.items()},
        "counters": _sum_counters(counters),
        "confusion": {"rows": "true class", "columns": [str(c) for c in range(n_classes)] + ["none"],
                      "matrix": cm.tolist()},
    }
    out = Console()
    finalize = getattr(runner, "finalize", None)
    if callable(finalize):  # backend-specific report (YOSO: latency, energy, plots)
        refuse_overwrite(extra_dir, force)
        extra = finalize(extra_dir, labels, console=out)
        result["backend_report"] = json.loads(json.dumps(extra, default=str)) if extra is not None else None
        result["backend_report_dir"] = str(extra_dir)
    atomic_write_json(report, result)
    table = Table(title=f"confusion matrix ({desc}; rows true, columns predicted)")
    table.add_column("true", justify="right")
    for c in result["confusion"]["columns"]:
        table.add_column(c, justify="right")
    for r in range(n_classes):
        table.add_row(str(r), *[str(v) if v else "." for v in cm[r]])
    out.print(table)
    out.print(f"[bold]{backend}[/] {model}: accuracy {correct}/{n} = {100.0 * correct / max(n, 1):.2f} %, "
              f"{result['frames_per_second'] or 0:.1f} frames/s wall clock here (batch {batch_size}), "
              f"{result['no_output_spike']} without output spike")
    out.print(f"report: {report}")
