"""`stdbp`: one driver whose subcommands are the project's tools.

Subcommands are imported only when called, so `stdbp compile` never imports torch (the compiler
knows nothing of torch) and `stdbp --help` is instant. Each tool also has its own entry point
(`stdbp-train`, `stdbp-compile`, `stdbp-run`), pointing at the same typer apps.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, attribute holding a typer.Typer, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("stdbp.train.cli", "app", "train a ReL-PSP network with STDBP (= stdbp-train)"),
    "plot": ("stdbp.train.plot_cli", "app", "plot a training run (spike-time, dead-neuron, gradient histograms)"),
    "export": ("stdbp.export.cli", "export_app", "export a checkpoint to ONNX (ai.stdbp ops)"),
    "inspect": ("stdbp.export.cli", "inspect_app", "print an ONNX model's graph, attributes and metadata"),
    "import": ("stdbp.export.nir_cli", "import_app", "import a NIR graph (stdbp export --format nir) as ONNX"),
    "compile": ("compiler.cli", "app", "compile an ONNX model to a YOSO program (= stdbp-compile)"),
    "run": ("runtime.cli", "app", "run a model on onnxruntime or the YOSO emulator (= stdbp-run)"),
    "demo": ("runtime.demo", "app", "compile the shipped model, run it on onnxruntime and YOSO side by side"),
    "experiment": ("stdbp.experiments.cli", "app", "the paper's experiments (dead-neurons: alpha-PSP vs ReL-PSP vs ANN)"),
    "calibrate": ("yoso_backend.cli", "calibrate_app", "fit YOSO clock and static power to the paper's figures"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: stdbp COMMAND [ARGS]...", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "`stdbp COMMAND --help` for a command's options."]
    return "\n".join(lines)


def _load(name: str):
    module, attr, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), attr)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    if argv[0] in ("-V", "--version"):
        from stdbp import __version__

        print(__version__)
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r} (fix: one of {', '.join(COMMANDS)})", file=sys.stderr)
        raise SystemExit(2)
    _load(name)(args=rest, prog_name=f"stdbp {name}")


def train_main() -> None:
    _load("train")(prog_name="stdbp-train")


def compile_main() -> None:
    _load("compile")(prog_name="stdbp-compile")


def run_main() -> None:
    _load("run")(prog_name="stdbp-run")
