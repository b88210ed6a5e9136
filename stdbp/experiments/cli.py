"""`stdbp experiment`: the paper's experiments as commands.

    stdbp experiment dead-neurons --runs 3 --epochs 10 --train-subset 10000 --out runs/dead
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import typer

from stdbp.errors import UserError, cli_errors

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The paper's experiments (a group, so that `dead-neurons` stays a subcommand)."""


@app.command("dead-neurons")
def dead_neurons(
    out: str = typer.Option("runs/dead-neurons", "--out", "-o", help="folder for results.json and the figures"),
    runs: int = typer.Option(2, help="seeds per model (paper: 20)"),
    epochs: int = typer.Option(3, help="training epochs (paper: 100)"),
    hidden: int = typer.Option(800, help="hidden neurons of 784-H-10"),
    train_subset: int = typer.Option(2000, help="MNIST training images used"),
    test_subset: int = typer.Option(1000, help="MNIST test images for accuracy and dead neurons"),
    batch_size: int = typer.Option(128),
    lr: float = typer.Option(3e-4, help="Adam learning rate of the SNNs (1e-3 made ReL-PSP unstable from random init)"),
    ann_lr: float = typer.Option(1e-3, help="Adam learning rate of the ANN"),
    t_max: float = typer.Option(math.inf, help="SNN time window (inf: none)"),
    tau: float = typer.Option(1.0, help="alpha-PSP time constant"),
    init_mean: float = typer.Option(2.0, help="SNN initial weights: mean init_mean / fan_in"),
    init_std: float = typer.Option(3.0, help="SNN initial weights: std init_std / sqrt(fan_in)"),
    jitter_variance: float = typer.Option(0.0, help="Gaussian input jitter of the SNNs (0 = off)"),
    models: str = typer.Option("alpha,relpsp,ann", help="comma-separated subset of alpha,relpsp,ann"),
    seed: int = typer.Option(0),
    data_dir: Optional[str] = typer.Option(None, help="folder with the MNIST IDX files"),
    threads: Optional[int] = typer.Option(None, help="threads of torch and the spiking kernels"),
    force: bool = typer.Option(False, help="overwrite results in --out"),
) -> None:
    """Train alpha-PSP, ReL-PSP and ANN 784-H-10 networks from random init (paper Figs. 7-9)."""
    with cli_errors():
        if threads:
            os.environ["STDBP_NUM_THREADS"] = str(threads)
            import torch

            torch.set_num_threads(threads)
        from stdbp.experiments.dead_neurons import MODELS, ExperimentConfig, run_experiment
        from stdbp.experiments.plots import plot_all
        from stdbp.fileio import atomic_write_json

        kinds = tuple(m.strip() for m in models.split(",") if m.strip())
        if not kinds or any(k not in MODELS for k in kinds):
            raise UserError(f"--models {models}", "unknown model", f"use a comma-separated subset of {','.join(MODELS)}")
        for name, v in (("--runs", runs), ("--epochs", epochs), ("--hidden", hidden),
                        ("--train-subset", train_subset), ("--test-subset", test_subset),
                        ("--batch-size", batch_size)):
            if v < 1:
                raise UserError(f"{name} {v}", "must be at least 1", f"pass {name} 1 or more")
        dest = Path(out)
        if (dest / "results.json").exists() and not force:
            raise UserError(dest, "already holds results.json", "pass --force to overwrite, or -o another folder")
        cfg = ExperimentConfig(runs=runs, epochs=epochs, hidden=hidden, train_subset=train_subset,
                               test_subset=test_subset, batch_size=batch_size, lr=lr, ann_lr=ann_lr,
                               t_max=t_max, tau=tau, init_mean=init_mean, init_std=init_std,
                               jitter_variance=jitter_variance, seed=seed, models=kinds, data_dir=data_dir)
        res = run_experiment(cfg, log=lambda s: typer.echo(s))
        dest.mkdir(parents=True, exist_ok=True)
        atomic_write_json(dest / "results.json", res)
        paths = plot_all(res, dest)
        for kind, s in res["summary"].items():
            d, a, act = s["dead_fraction"], s["test_accuracy"], s["active_fraction"]
            typer.echo(f"{kind}: after {epochs} epochs dead {d['mean'][-1] * 100:.1f} +- {d['std'][-1] * 100:.1f} %, "
                       f"active {act['mean'][-1] * 100:.1f} +- {act['std'][-1] * 100:.1f} %, "
                       f"test {a['mean'][-1] * 100:.2f} +- {a['std'][-1] * 100:.2f} % (n = {d['n'][-1]})")
        typer.echo(f"wrote {dest / 'results.json'}, " + ", ".join(str(p) for p in paths))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
