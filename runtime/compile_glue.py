"""ONNX in, `model.yoso/` out, for runners handed an ONNX model with the YOSO backend.

The emulator runs compiled programs only (it knows nothing of ONNX); this glue lives in the
runtime, which may use both the compiler and the backends.
"""

from __future__ import annotations

from pathlib import Path


# tried in order when no --hw is given: the chip the paper built, then the extrapolated large mesh
AUTO_HW = ("yoso-6x7", "yoso-16x16")


def compile_for_yoso(model: Path, out: Path, *, hw: str | None = None, output_mode: str = "ttfs",
                     force: bool = False, notes: list[str] | None = None, multiplex: int = 1) -> tuple[Path, dict]:
    """Compile `model` (ai.stdbp ONNX) into `out`; returns (out, mapping summary). UserError on bad input.

    hw None: the first of AUTO_HW the network fits (a note in `notes` says when it is not the first)."""
    from compiler import CompileOptions, compile_model
    from stdbp.errors import UserError
    from stdbp.fileio import refuse_overwrite
    from yoso_backend.artifact import save_program

    refuse_overwrite(out, force)
    first_error = None
    for name in ([hw] if hw else AUTO_HW):
        try:
            state = compile_model(model, CompileOptions(hw=name, output_mode=output_mode, multiplex=multiplex))
            break
        except UserError as err:
            if hw or ("does not fit" not in str(err) and "index field" not in str(err)):
                raise
            first_error = first_error or err
    else:
        raise first_error
    if first_error is not None and notes is not None:
        notes.append(f"{model} does not fit {AUTO_HW[0]} ({first_error.item}); compiled for "
                     f"{state.hw.name} (an extrapolated description: see its notes)")
    save_program(state.program, out, force=force)
    mapping = dict(state.program.meta.get("mapping", {}))
    mapping["warnings"] = list(state.warnings)
    return out, mapping
