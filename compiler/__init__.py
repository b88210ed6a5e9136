"""stdbp-compile: ONNX (`ai.stdbp`) -> YOSO program `model.yoso/` (docs/yoso-spec.md).

    state = compile_model("model.onnx", CompileOptions(hw="yoso-6x7"))
    save_program(state.program, "model.yoso")

A small typed IR (`compiler.ir`) and ordered passes (`compiler.passes`): import + design-rule check,
quantise, partition, place, emit. onnx + numpy only; never torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the package import stays light: `compiler.cli` must not pull numpy at import
    from compiler.ir import CompileOptions, CompileState


def __getattr__(name: str):
    if name in ("CompileOptions", "CompileState"):
        from compiler import ir

        return getattr(ir, name)
    raise AttributeError(name)


def compile_graph(graph, options: "CompileOptions | None" = None, hw=None) -> "CompileState":
    """Run the passes after import on an imported `Graph`."""
    from compiler.ir import CompileOptions, CompileState
    from compiler.passes import PASSES
    from yoso_backend.hardware import HardwareDescription, load_hardware, multiplexed

    options = options or CompileOptions()
    base = hw if isinstance(hw, HardwareDescription) else load_hardware(hw if hw is not None else options.hw)
    state = CompileState(hw=multiplexed(base, int(options.multiplex)), options=options, graph=graph)
    for _name, fn in PASSES:
        fn(state)
    return state


def compile_model(model: "str | os.PathLike | object", options: "CompileOptions | None" = None, hw=None) -> "CompileState":
    """Import (path or onnx.ModelProto) and compile. Raises stdbp.errors.UserError for bad input."""
    from compiler.passes.importer import import_model, import_onnx

    if isinstance(model, (str, os.PathLike)):
        graph = import_onnx(model)
    else:
        graph = import_model(model, "model")
    return compile_graph(graph, options, hw)


__all__ = ["CompileOptions", "CompileState", "compile_model", "compile_graph"]
