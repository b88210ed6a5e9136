"""`stdbp calibrate MODEL.yoso/`: fit the YOSO clock and static power to the paper's figures.

Runs the compiled reference model (MNIST 784-800-10; compile it first with `stdbp compile`) on the
emulator, measures the mean cycles and the mean dynamic energy per frame, fits (calibrate.fit)

    f_clk = mean cycles / 47.71 ms,   P_static = (35.839 uJ - mean dynamic energy) / 47.71 ms

and writes a copy of the model's hardware description with these two values marked
``source = "calibrated"`` (default: yoso_backend/hw/<name>-calibrated.toml, which the YOSO backend
then uses for clock and energy). It re-runs the energy model from the written file and checks that
both targets are reproduced within 0.1 %.
"""

from __future__ import annotations

from pathlib import Path

import typer

calibrate_app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0])

SAMPLES = {"sample": "mnist-test-sample.npz", "sample-fashion-mnist": "fashion-mnist-test-sample.npz"}


def load_pixels(data: str, split: str, limit: int | None):
    """-> (uint8 images [N, 784], int64 labels [N], description)."""
    import numpy as np

    from stdbp.errors import UserError

    if data in SAMPLES or data.endswith(".npz"):
        path = Path(data) if data.endswith(".npz") else Path(__file__).resolve().parents[1] / "models" / "sample" / SAMPLES[data]
        if not path.is_file():
            raise UserError(path, "sample file not found", "use --data mnist or an .npz with images and labels")
        with np.load(path) as z:
            images, labels = z["images"], z["labels"]
        desc = path.name
    elif data in ("mnist", "fashion-mnist"):
        from stdbp.data import load_dataset

        images, labels = load_dataset(data, split)
        desc = f"{data}/{split}"
    else:
        raise UserError("--data", f"unknown data set {data!r}", "mnist, fashion-mnist, sample or a .npz path")
    if limit is not None:
        if limit < 1:
            raise UserError("--limit", f"must be >= 1, got {limit}", "pass a positive number of frames")
        images, labels = images[:limit], labels[:limit]
    return images.reshape(len(images), -1), labels.astype(np.int64), desc


@calibrate_app.command()
def calibrate(
    model: Path = typer.Argument(..., help="the compiled reference model (model.yoso/ of MNIST 784-800-10)"),
    data: str = typer.Option("mnist", help="mnist | sample | PATH.npz (frames to average over)"),
    split: str = typer.Option("test", help="train | test"),
    limit: int = typer.Option(None, help="use only the first N frames"),
    out: Path = typer.Option(None, help="description to write (default yoso_backend/hw/<name>-calibrated.toml)"),
    latency_ms: float = typer.Option(47.71, help="target latency per frame (paper: 47.71 ms)"),
    energy_uj: float = typer.Option(35.839, help="target energy per frame (paper: 35.839 uJ)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing description"),
) -> None:
    """Fit clock and static power so that MODEL reproduces the target latency and energy per frame."""
    from stdbp.errors import cli_errors

    with cli_errors():
        _calibrate(model, data, split, limit, out, latency_ms * 1e-3, energy_uj * 1e-6, force)


def _calibrate(model, data, split, limit, out, t_target, e_target, force):
    import tomllib

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from stdbp.errors import UserError
    from stdbp.fileio import atomic_write_text, refuse_overwrite
    from yoso_backend import calibrate as C
    from yoso_backend.emulator import Emulator
    from yoso_backend.energy import EnergyModel
    from yoso_backend.hardware import HW_DIR, from_dict

    if not Path(model).is_dir():
        raise UserError(model, "not a compiled model directory",
                        "compile the reference model first: stdbp compile model.onnx -o model.yoso")
    emu = Emulator.load(model)
    prog, hw = emu.program, emu.hw
    out = Path(out) if out else HW_DIR / f"{hw.name.removesuffix('-calibrated')}-calibrated.toml"
    refuse_overwrite(out, force)
    con = Console(stderr=True)
    arch = [prog.n_inputs] + [l.n_out for l in prog.layers]
    if arch != [784, 800, 10]:
        con.print(f"[yellow]warning:[/] {model} is {'-'.join(map(str, arch))}, the paper's figures are for 784-800-10")
    images, labels, desc = load_pixels(data, split, limit)
    energy = EnergyModel.from_hw(hw)  # dynamic energies do not depend on the clock or the static power
    cycles, dyn, correct = 0.0, 0.0, 0
    with Progress(TextColumn("[bold]calibrate {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=con, transient=True) as bar:
        task = bar.add_task(desc, total=len(images))
        for s in range(0, len(images), 1024):
            res = emu.run(images[s:s + 1024])
            cycles += float(res.cycles.sum())
            dyn += float(energy.dynamic_j(res.frame_counters).sum())
            correct += int((res.predictions == labels[s:s + 1024]).sum())
            bar.advance(task, len(res.cycles))
    n = len(images)
    src = prog.meta.get("source") if isinstance(prog.meta, dict) else None
    src = src if isinstance(src, dict) else {}
    ident = f"{src.get('path', model)} (sha256 {str(src.get('sha256', ''))[:12]})" if src.get("sha256") else str(model)
    cal = C.fit(cycles / n, dyn / n, t_target, e_target, frames=n, model=f"{ident} on {desc}", date=C.today())
    raw = C.calibrated_description(hw, cal)
    text = C.to_toml(raw)
    new_hw = from_dict(tomllib.loads(text), where=str(out))  # what we write must load back
    check = EnergyModel.from_hw(new_hw)
    t_got = cycles / n / check.f_clk_hz
    e_got = dyn / n + check.p_static_w * t_got
    if abs(t_got / t_target - 1) > 1e-3 or abs(e_got / e_target - 1) > 1e-3:
        raise UserError(out, f"calibration does not reproduce the targets ({t_got * 1e3:.4f} ms, {e_got * 1e6:.4f} uJ)",
                        "report this as a bug")
    atomic_write_text(out, text)
    table = Table(title=f"calibration on {n} frames of {desc} (accuracy {100 * correct / n:.2f} %)")
    paper_targets = abs(t_target / C.PAPER_LATENCY_S - 1) < 1e-9 and abs(e_target / C.PAPER_ENERGY_J - 1) < 1e-9
    for col in ("quantity", "measured / fitted", "target (paper)" if paper_targets else "target (--latency-ms, --energy-uj)"):
        table.add_column(col, justify="right")
    table.add_row("mean cycles per frame", f"{cal.mean_cycles:.1f}", "")
    table.add_row("mean dynamic energy uJ/frame", f"{cal.mean_dynamic_j * 1e6:.4f}", "")
    table.add_row("clock MHz (calibrated)", f"{cal.f_clk_hz / 1e6:.6f}", "")
    table.add_row("static power mW (calibrated)", f"{cal.p_static_w * 1e3:.6f}", "")
    table.add_row("latency ms/frame", f"{t_got * 1e3:.4f}", f"{t_target * 1e3:.2f}")
    table.add_row("energy uJ/frame", f"{e_got * 1e6:.4f}", f"{e_target * 1e6:.3f}")
    table.add_row("average power mW", f"{e_got / t_got * 1e3:.4f}", f"{e_target / t_target * 1e3:.4f}")
    Console().print(table)
    Console().print(f"wrote {out}")
