"""`stdbp-compile MODEL.onnx [--hw yoso-6x7] [-o model.yoso/]`: compile for YOSO, print the mapping.

Module-level imports stay light (typer, rich, stdlib); numpy/onnx load inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help="Compile an ai.stdbp ONNX model to a YOSO program (model.yoso/).")


def print_summary(state, out: Path | None, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    prog, hw = state.program, state.hw
    summary = prog.meta["mapping"]
    t = Table(title=f"{hw.name}: {summary['pes_used']} of {summary['pes_available']} PEs", title_justify="left")
    for col in ("layer", "shape", "PEs", "paper C", "neurons/PE", "window", "scale", "theta_int", "max syn. events"):
        t.add_column(col, justify="right")
    for lay, q in zip(summary["layers"], state.quant):
        r = q.report
        if r["scale_mode"] == "none":  # a pool layer: no weights, no threshold
            scale = theta = "-"
        else:
            scale = f"{r['scale_min']:.4g}" if r["scale_mode"] == "layer" else f"{r['scale_min']:.3g}..{r['scale_max']:.3g}"
            theta = str(r["theta_int_min"]) if r["theta_int_min"] == r["theta_int_max"] else f"{r['theta_int_min']}..{r['theta_int_max']}"
        t.add_row(f"{lay['layer']} {lay['name']} ({lay.get('kind', 'dense')})", f"{lay['n_in']}x{lay['n_out']}", str(lay["pes"]),
                  str(lay["paper_bound_C"]), str(lay["neurons_per_pe_max"]), str(lay["window_steps"]), scale, theta,
                  f"{lay['synaptic_events_max']:,}")
    console.print(t)
    pes = summary["pes"]
    wuse = [p["weight_use"] for p in pes]
    nuse = [p["neuron_use"] for p in pes]
    console.print(f"SRAM use per PE: weight {min(wuse):.1%}..{max(wuse):.1%}, neuron/A {min(nuse):.1%}..{max(nuse):.1%} "
                  f"(W = {hw.weights_per_pe}, N = {hw.neurons_per_pe})")
    # the mesh, row by row: layer and weight-SRAM use of every router's PE (H marks the host port)
    cell = {p["pe"]: f"L{p['layer']} {p['weight_use']:.0%}" for p in pes}
    console.print(f"mesh (x ->, y down; layer:weight use; host at west of ({hw.host_x},{hw.host_y})):")
    for y in range(hw.mesh_height):
        row = [cell.get(hw.pe_id(x, y), "   .    ") for x in range(hw.mesh_width)]
        console.print(f"  y={y}  " + " ".join(f"{c:>8}" for c in row), highlight=False)
    noc = summary["noc"]
    console.print(f"synaptic events per frame <= {summary['synaptic_events_max']:,} (every input and neuron spiking); "
                  f"NoC <= {noc['max_flits_per_frame']:,} flits, {noc['mean_hops_per_flit']:.2f} hops/flit")
    meas = summary.get("measured")
    if meas:
        per = ", ".join(f"layer {p['layer']} {p['synaptic_events_mean']:,.0f}" for p in meas["per_layer"])
        console.print(f"measured on {meas['frames']} frames of {Path(meas['sample']).name}: "
                      f"{meas['synaptic_events_mean']:,.0f} synaptic events per frame ({per})")
    for w in state.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    if out is not None:
        console.print(f"wrote {out}")


@app.command()
def compile(
    model: Path = typer.Argument(..., help="ai.stdbp ONNX model (dense, conv and min-pool layers)"),
    hw: str = typer.Option("yoso-6x7", "--hw", help="hardware description: built-in name or .toml/.json path"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="output directory (default: MODEL with .yoso)"),
    force: bool = typer.Option(False, "--force", help="replace an existing output directory"),
    output_mode: str = typer.Option("ttfs", "--output-mode", help="ttfs (first output spike) or softmax (read out V)"),
    early_stop: bool = typer.Option(True, "--early-stop/--no-early-stop", help="TTFS: end the frame at the first output spike"),
    scale: str = typer.Option("layer", "--scale", help="quantisation scale: layer or neuron"),
    steps_per_alpha: Optional[int] = typer.Option(None, "--steps-per-alpha", help="time steps per alpha (default: hardware's)"),
    multiplex: int = typer.Option(1, "--multiplex", help="time-multiplexing: G neuron groups per PE, served in turn "
                                  "(G x the PE's SRAM in banks; the extra sweep and update cycles are counted)"),
    summary_json: Optional[Path] = typer.Option(None, "--json", help="also write the mapping summary as JSON"),
    sample: str = typer.Option("auto", "--sample", help="frames (.npz `images`) to measure synaptic events on: "
                               "auto (bundled sample of the model's data set), none, or a path"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no summary table"),
) -> None:
    """Compile MODEL for YOSO and write model.yoso/ (manifest, program, SRAM images)."""
    from stdbp.errors import cli_errors

    with cli_errors():
        from compiler import CompileOptions, compile_model
        from compiler.events import find_sample, measure_events
        from stdbp.fileio import atomic_write_json, refuse_overwrite
        from yoso_backend.artifact import save_program

        out = out if out is not None else model.with_suffix(".yoso")
        refuse_overwrite(out, force)
        if summary_json is not None:
            refuse_overwrite(summary_json, force)
        opts = CompileOptions(hw=hw, output_mode=output_mode, early_stop=early_stop, scale_mode=scale,
                              steps_per_alpha=steps_per_alpha, multiplex=multiplex)
        state = compile_model(model, opts)
        sample_path = find_sample(state.graph.metadata, sample)
        if sample_path is not None:
            state.program.meta["mapping"]["measured"] = measure_events(state.program, sample_path)
        save_program(state.program, out, force=force)
        if summary_json is not None:
            atomic_write_json(summary_json, {"output": str(out), "hardware": state.hw.name,
                                             "hardware_sha256": state.hw.sha256, "warnings": state.warnings,
                                             "quantisation": [q.report for q in state.quant],
                                             **state.program.meta["mapping"]})
        if not quiet:
            print_summary(state, out)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
