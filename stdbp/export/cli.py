"""`stdbp export CHECKPOINT -o model.onnx` and `stdbp inspect model.onnx`.

Checkpoints `stdbp export` reads (loaded with torch.load(weights_only=True): no code runs):
- stdbp-train's own format (`stdbp.train.checkpoint`, "format": "stdbp-train-checkpoint/1"):
  `model` (state_dict), `config` (TrainConfig as a dict: arch, data, threshold, t_max, alpha,
  silent_zero, ...), `best_accuracy`; a run folder is accepted too (best.pt, else checkpoint.pt);
- a plain dict: `arch` (paper notation, e.g. "784-800-10"), `model_state` (state_dict),
  `config` (threshold, t_max, alpha, silent_zero, dataset; optionally accuracy), `accuracy`.
The network is rebuilt with `stdbp.train.models.build_snn(parse_arch(arch), ...)`.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

export_app = typer.Typer(add_completion=False, help="Export a training checkpoint to ONNX (op set ai.stdbp).")
inspect_app = typer.Typer(add_completion=False, help="Print an ONNX model's graph, op attributes and metadata.")

CONFIG_KEYS = ("threshold", "t_max", "alpha", "silent_zero")


def load_checkpoint(path: Path):
    """-> (nn.Sequential, arch text, config dict, accuracy or None); UserError on a bad checkpoint."""
    import torch

    from stdbp.errors import UserError

    if path.is_dir():  # a stdbp-train run folder, or a shipped models/NAME folder
        path = next((p for p in (path / "best.pt", path / "checkpoint.pt", path / "model.pt") if p.is_file()),
                    path / "best.pt")
    if not path.is_file():
        raise UserError(path, "no such checkpoint file", "pass the checkpoint written by stdbp-train")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle of something else, ...
        raise UserError(path, f"not a readable checkpoint ({type(exc).__name__})",
                        "pass the checkpoint written by stdbp-train") from None
    # a run's checkpoint, or a shipped models/NAME/model.pt (its accuracy is on the card beside it)
    if (isinstance(ckpt, dict) and ckpt.get("format") in ("stdbp-train-checkpoint/1", "stdbp-model/1")
            and "arch" in ckpt.get("config", {})):
        config = dict(ckpt["config"])
        accuracy = ckpt.get("best_accuracy")
        card = path.parent / "card.json"
        if accuracy is None and ckpt["format"] == "stdbp-model/1" and card.is_file():
            import json

            accuracy = json.loads(card.read_text()).get("test_accuracy")
        ckpt = {"arch": config["arch"], "model_state": ckpt.get("model"), "config": config, "accuracy": accuracy}
        config.setdefault("dataset", config.get("data"))
    if not isinstance(ckpt, dict) or not {"arch", "model_state", "config"} <= set(ckpt):
        raise UserError(path, "checkpoint must be a dict with keys arch, model_state, config",
                        "pass the checkpoint written by stdbp-train")
    config = dict(ckpt["config"])
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise UserError(path, f"config lacks {', '.join(missing)}", "pass the checkpoint written by stdbp-train")
    from stdbp.train.arch import parse_arch
    if config.get("neuron", "relpsp") != "relpsp":
        from stdbp.alpha import NO_EXPORT

        raise UserError(path, f"a {config['neuron']} checkpoint: {NO_EXPORT}",
                        "export a network trained with --neuron relpsp")
    from stdbp.train.models import build_snn

    arch = str(ckpt["arch"])
    model = build_snn(parse_arch(arch), threshold=float(config["threshold"]), t_max=float(config["t_max"]),
                      alpha=float(config["alpha"]), silent_zero=bool(config["silent_zero"]))
    try:
        model.load_state_dict(ckpt["model_state"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(path, f"weights do not match arch {arch}: {first}", "re-train or fix the arch") from None
    accuracy = ckpt.get("accuracy", config.get("accuracy"))
    if accuracy is not None and not 0.0 <= float(accuracy) <= 1.0:
        accuracy = None  # e.g. -1.0 = "not evaluated yet"
    return model, arch, config, (None if accuracy is None else float(accuracy))


@export_app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="checkpoint written by stdbp-train (or its run folder)"),
    output: Path = typer.Option(Path("model.onnx"), "-o", "--output", help="ONNX file to write"),
    dataset: str = typer.Option(None, help="data set name for the metadata (default: from the checkpoint)"),
    accuracy: float = typer.Option(None, help="accuracy for the metadata (default: from the checkpoint)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output"),
    fmt: str = typer.Option("onnx", "--format", help="onnx (ai.stdbp ops), or nir (a NIR graph, docs/interop.md); "
                            "nir also takes an .onnx model"),
    variant: str = typer.Option("exact", "--variant", help="NIR only: exact (Linear -> I -> IF), or snntorch "
                                "(leak-free CubaLIF in snnTorch's conventions; neurons may fire again)"),
) -> None:
    """Write CHECKPOINT as an ONNX model: one ai.stdbp node per layer, function bodies attached."""
    from stdbp.errors import UserError, cli_errors

    with cli_errors():
        from stdbp.fileio import atomic_write_bytes, refuse_overwrite

        refuse_overwrite(output, force)
        if fmt == "nir":
            from stdbp.export.nir_cli import export_nir

            export_nir(checkpoint, output, variant)
            return
        if fmt != "onnx":
            raise UserError("--format", f"{fmt!r} is not a format", "use onnx or nir")
        model, arch, config, acc = load_checkpoint(checkpoint)
        from stdbp.export import to_onnx

        proto = to_onnx(model, dataset=dataset or config.get("dataset"),
                        accuracy=acc if accuracy is None else accuracy, arch=arch)
        atomic_write_bytes(output, proto.SerializeToString())
        typer.echo(f"wrote {output} ({arch}, {len(proto.graph.node)} nodes)")


def describe(model) -> dict:
    """Graph, attributes, shapes and metadata of a validated model, as plain data."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    nodes = []
    for n in model.graph.node:
        attrs = {}
        for a in n.attribute:
            v = onnx.helper.get_attribute_value(a)
            attrs[a.name] = [int(x) for x in v] if isinstance(v, (list, tuple)) else v
        nodes.append({"name": n.name, "op": f"{n.domain + '.' if n.domain else ''}{n.op_type}",
                      "inputs": list(n.input), "outputs": list(n.output), "attributes": attrs,
                      "weight_shape": next((inits[i] for i in n.input if i in inits), None),
                      "output_shape": shapes.get(n.output[0])})
    return {
        "ir_version": model.ir_version,
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "functions": [f"{f.domain}.{f.name}" for f in model.functions],
        "input": {"name": model.graph.input[0].name, "shape": shapes.get(model.graph.input[0].name)},
        "output": {"name": model.graph.output[0].name, "shape": shapes.get(model.graph.output[0].name)},
        "nodes": nodes,
        "parameters": sum(math.prod(d) for d in inits.values()),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


@inspect_app.command()
def inspect(
    model_path: Path = typer.Argument(..., help="an .onnx model"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Validate MODEL_PATH and print its graph (one row per node), attributes and metadata."""
    from stdbp.errors import cli_errors

    with cli_errors():
        import json

        from rich.console import Console
        from rich.table import Table

        from stdbp.ops.validate import load_model

        info = describe(load_model(model_path))
        if as_json:
            typer.echo(json.dumps(info, indent=2))
            return
        console = Console()
        console.print(f"[bold]{model_path}[/]  IR {info['ir_version']}, opsets {info['opsets']}, "
                      f"{info['parameters']:,} parameters, functions: {', '.join(info['functions'])}")
        console.print(f"input  {info['input']['name']} uint8 {info['input']['shape']}\n"
                      f"output {info['output']['name']} float {info['output']['shape']}")
        table = Table(title="graph (ai.stdbp ops unless marked onnx)")
        for col in ("#", "op", "weight", "output", "attributes"):
            table.add_column(col, overflow="fold")
        dims = lambda d: "x".join(str(x) for x in d) if d else ""  # noqa: E731
        for i, n in enumerate(info["nodes"]):
            attrs = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                             for k, v in n["attributes"].items())
            op = n["op"].removeprefix("ai.stdbp.") if n["op"].startswith("ai.stdbp.") else f"{n['op']} (onnx)"
            table.add_row(str(i), op, dims(n["weight_shape"]), dims(n["output_shape"]), attrs)
        console.print(table)
        meta = Table(title="metadata")
        meta.add_column("key")
        meta.add_column("value")
        for k, v in info["metadata"].items():
            meta.add_row(k, v)
        console.print(meta)
