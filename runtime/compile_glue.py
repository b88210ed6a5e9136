"""ONNX in, `model.yoso/` out, for runners handed an ONNX model with the YOSO backend.

The emulator runs compiled programs only (it knows nothing of ONNX); this glue lives in the
runtime, which may use both the compiler and the backends.
"""

from __future__ import annotations

from pathlib import Path


def compile_for_yoso(model: Path, out: Path, *, hw: str = "yoso-6x7", output_mode: str = "ttfs",
                     force: bool = False) -> tuple[Path, dict]:
    """Compile `model` (ai.stdbp ONNX) into `out`; returns (out, mapping summary). UserError on bad input."""
    from compiler import CompileOptions, compile_model
    from stdbp.fileio import refuse_overwrite
    from yoso_backend.artifact import save_program

    refuse_overwrite(out, force)
    state = compile_model(model, CompileOptions(hw=hw, output_mode=output_mode))
    save_program(state.program, out, force=force)
    mapping = dict(state.program.meta.get("mapping", {}))
    mapping["warnings"] = list(state.warnings)
    return out, mapping
