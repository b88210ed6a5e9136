"""`stdbp plot runs/NAME`: PNGs like the paper's Figures 6-9 from a training run."""

from __future__ import annotations

from typing import Optional

import typer

from stdbp.errors import cli_errors

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def plot(
    run_dir: str = typer.Argument(..., help="a stdbp-train run folder (runs/NAME)"),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="folder for the PNGs (default: RUN_DIR/plots)"),
    checkpoint: str = typer.Option("best.pt", help="checkpoint in RUN_DIR to plot"),
    samples: int = typer.Option(2000, help="test images for the spike-time histograms"),
    force: bool = typer.Option(False, "--force", help="overwrite PNGs already in the output folder"),
) -> None:
    """Write spike_times.png, gradients.png, weights.png, dead_neurons.png, curves.png."""
    with cli_errors():
        from pathlib import Path

        from rich.console import Console

        from stdbp.errors import UserError
        from stdbp.train.arch import parse_arch
        from stdbp.train.checkpoint import load_checkpoint
        from stdbp.train.datasets import load_train_data
        from stdbp.train.models import build_snn, spiking_layer_names
        from stdbp.train.plots import plot_metrics, plot_model
        from stdbp.train.runner import Run

        if samples < 1:
            raise UserError(f"--samples {samples}", "must be at least 1", "pass a positive count")
        if not (Path(run_dir) / "config.json").is_file():
            raise UserError(run_dir, "no config.json: not a stdbp-train run folder", "pass the --out folder of a stdbp-train run")
        run = Run(run_dir, writer=False)
        cfg = run.read_config()
        dest = Path(out) if out else Path(run_dir) / "plots"
        existing = sorted(p.name for p in dest.glob("*.png")) if dest.is_dir() else []
        if existing and not force:
            raise UserError(dest, f"already holds {', '.join(existing)}", "pass --force to overwrite, or -o another folder")
        paths = plot_metrics(run.metrics(), dest)
        state = load_checkpoint(Path(run_dir) / checkpoint)
        arch = parse_arch(cfg.arch)
        model = build_snn(arch, threshold=cfg.threshold, t_max=cfg.t_max, alpha=cfg.alpha,
                          silent_zero=cfg.silent_zero, neuron=cfg.neuron, tau=cfg.tau)
        model.load_state_dict(state["model"])
        data = load_train_data(cfg.data, arch.pixel_shape, image_shape=arch.input_shape, data_dir=cfg.data_dir, test_subset=samples,
                               train_subset=cfg.train_subset, seed=cfg.seed)
        paths += plot_model(model, data.x_test, data.y_test, data.x_train, data.y_train,
                            spiking_layer_names(model), dest, cfg.t_max, samples)
        console = Console()
        for p in paths:
            console.print(str(p), highlight=False)


if __name__ == "__main__":
    app()
