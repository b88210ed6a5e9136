"""Pass 1b: design-rule check of the imported graph against the hardware description.

Errors (UserError, one line): a fan-in larger than a PE's weight SRAM (a neuron must live on one
PE: partial sums are not combined across PEs), a conv kernel (C_in * kh * kw weights of one output
channel) larger than it, layer sizes beyond the flit's index field, an input
step beyond the flit's step field, unknown options. Warnings: inexact input-time encoding.
Whether the whole network fits the mesh is decided by the partition pass (it knows the counts).
"""

from __future__ import annotations

from compiler.ir import CompileState
from stdbp.errors import UserError
from yoso_backend.hardware import builtin_names, load_hardware


def wider_description(need_index_bits: int, current: str, layers=None) -> str:
    """The fix for a layer beyond the index field: the built-in descriptions that have the bits
    (with the time-multiplexing each needs to hold `layers`, when given)."""
    from compiler.passes.partition import fitting_multiplex

    base = current.split("-tm")[0].removesuffix("-calibrated")
    fixes = []
    for name in builtin_names():
        hw = load_hardware(name)
        if name.endswith("-calibrated") or name == base or hw.index_bits < need_index_bits:
            continue
        groups = fitting_multiplex(layers, hw) if layers is not None else 1
        if groups is not None:
            fixes.append(f"--hw {name}" + (f" --multiplex {groups}" if groups > 1 else ""))
    if fixes:
        return "use " + " or ".join(fixes) + f" (bits.neuron_index >= {need_index_bits})"
    return f"use a hardware description with bits.neuron_index >= {need_index_bits}"


def design_rule_check(state: CompileState) -> None:
    hw, g, opt = state.hw, state.graph, state.options
    where = g.source or "model"
    if opt.output_mode not in ("ttfs", "softmax"):
        raise UserError("--output-mode", f"{opt.output_mode!r} is not a mode", "use ttfs or softmax")
    if opt.scale_mode not in ("layer", "neuron"):
        raise UserError("--scale", f"{opt.scale_mode!r} is not a scale mode", "use layer or neuron")
    spa = hw.steps_per_alpha if opt.steps_per_alpha is None else int(opt.steps_per_alpha)
    if spa < 1:
        raise UserError("--steps-per-alpha", f"{spa} must be >= 1", "use 255 (exact 8-bit input times)")
    state.steps_per_alpha = spa
    if spa > hw.max_step:
        raise UserError(where, f"steps_per_alpha {spa}: the input step of a 0 pixel ({spa}) exceeds the "
                        f"{hw.time_bits}-bit step field (max {hw.max_step})",
                        f"use --steps-per-alpha <= {hw.max_step}")
    if spa % 255:
        state.warn(f"steps_per_alpha {spa} is not a multiple of 255: input steps (255 - pixel) * {spa} / 255 "
                   "are rounded half up (not exact)")
    if g.n_inputs > (1 << hw.index_bits):
        raise UserError(where, f"{g.n_inputs} inputs exceed the {hw.index_bits}-bit index field of a spike flit "
                        f"(max {1 << hw.index_bits})", wider_description((g.n_inputs - 1).bit_length(), hw.name))
    for k, lay in enumerate(g.layers):
        label = f"layer {k} ({lay.name}, {lay.kind}, {lay.n_in} -> {lay.n_out})"
        if lay.kind == "conv" and lay.window.kernel_words > hw.weights_per_pe:
            kw = lay.window.kernel_words
            raise UserError(where, f"{label}: one output channel's kernel has {kw} weights (C_in x kh x kw), more "
                            f"than the {hw.weights_per_pe} weights of one PE",
                            f"use a hardware description with pe.weights >= {kw}, or fewer input channels")
        if lay.kind == "dense" and lay.n_in > hw.weights_per_pe:
            raise UserError(where, f"{label}: fan-in {lay.n_in} exceeds the {hw.weights_per_pe} weights of one PE "
                            "(a neuron cannot be split over PEs)",
                            f"use a hardware description with pe.weights >= {lay.n_in}")
        if lay.n_out > (1 << hw.index_bits):
            raise UserError(where, f"{label}: {lay.n_out} neurons exceed the {hw.index_bits}-bit index field "
                            f"(max {1 << hw.index_bits}) of {hw.name}",
                            wider_description((lay.n_out - 1).bit_length(), hw.name, g.layers) + ", or fewer neurons")
