"""`stdbp export ... --format nir` and `stdbp import model.nir -o model.onnx` (docs/interop.md)."""

from __future__ import annotations

from pathlib import Path

import typer

import_app = typer.Typer(add_completion=False, help="Import a NIR graph written by `stdbp export --format nir`.")


def _onnx_of(source: Path):
    """An ai.stdbp ModelProto from an .onnx file, a models/NAME folder (its model.onnx) or a checkpoint."""
    from stdbp.ops.validate import load_model

    if source.is_dir() and (source / "model.onnx").is_file() and not (source / "best.pt").is_file():
        source = source / "model.onnx"
    if source.suffix == ".onnx":
        return load_model(source)
    from stdbp.export import to_onnx
    from stdbp.export.cli import load_checkpoint

    model, arch, config, acc = load_checkpoint(source)
    return to_onnx(model, dataset=config.get("dataset"), accuracy=acc, arch=arch)


def export_nir(source: Path, output: Path, variant: str) -> None:
    from stdbp.nir_io import to_nir, write_graph

    graph = to_nir(_onnx_of(Path(source)), where=str(source), variant=variant)
    write_graph(graph, output)
    spiking = sum(type(n).__name__ in ("IF", "CubaLIF") for n in graph.nodes.values())
    typer.echo(f"wrote {output} (NIR, {variant} variant, {len(graph.nodes)} nodes, {spiking} spiking layers)")


@import_app.command("import")
def import_nir(
    graph_path: Path = typer.Argument(..., help="a .nir file (the exact variant of `stdbp export --format nir`)"),
    output: Path = typer.Option(Path("model.onnx"), "-o", "--output", help="ONNX file to write"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output"),
) -> None:
    """Rebuild the ai.stdbp ONNX model of a NIR graph (the round trip is exact: same weights, same spikes)."""
    from stdbp.errors import cli_errors

    with cli_errors():
        from stdbp.fileio import atomic_write_bytes, refuse_overwrite
        from stdbp.nir_io import from_nir, read_graph

        refuse_overwrite(output, force)
        model = from_nir(read_graph(graph_path), where=str(graph_path))
        atomic_write_bytes(output, model.SerializeToString())
        typer.echo(f"wrote {output} ({len(model.graph.node)} nodes)")
