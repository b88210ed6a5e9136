"""Pass 5: emit the `YosoProgram` (manifest data, SRAM images per PE, program.bin/.txt via artifact).

Writing to disk is `yoso_backend.artifact.save_program` (atomic, refuses to overwrite unless
forced); this pass only builds the in-memory program and the mapping summary in `meta`.
"""

from __future__ import annotations

from compiler.ir import CompileState
from yoso_backend.artifact import HOST, LayerMap, PEMap, YosoProgram, build_sram_images, sram_specs

COMPILER_VERSION = 1


def mapping_summary(state: CompileState) -> dict:
    """PEs per layer, SRAM use per PE, worst-case synaptic events per frame."""
    hw, g = state.hw, state.graph
    specs = sram_specs(hw)
    pes = []
    for sl in state.slices:
        pes.append({"pe": sl.pe, "xy": list(hw.pe_xy(sl.pe)), "layer": sl.layer,
                    "neurons": [sl.neuron_start, sl.neuron_start + sl.neuron_count - 1],
                    "weight_words": sl.fan_in * sl.neuron_count, "weight_use": sl.fan_in * sl.neuron_count / specs["weight"].depth,
                    "neuron_words": sl.neuron_count, "neuron_use": sl.neuron_count / specs["neuron"].depth})
    layers = []
    for rep, q in zip(state.partition_report["per_layer"], state.quant):
        lay = g.layers[rep["layer"]]
        # every spike into a layer updates A of all its neurons: events = input spikes x n_out
        inputs_max = lay.n_in
        layers.append({**rep, "window_steps": q.window_steps,
                       "synaptic_events_max": inputs_max * lay.n_out})
    return {"layers": layers, "pes": pes, "pes_used": len(state.slices), "pes_available": hw.n_pe,
            "synaptic_events_max": sum(r["synaptic_events_max"] for r in layers),
            "noc": state.placement_report}


def emit_program(state: CompileState) -> None:
    hw, g, opt = state.hw, state.graph, state.options
    n_layers = len(g.layers)
    by_layer = {k: state.layer_slices(k) for k in range(n_layers)}
    pes, sram = [], {}
    for k in range(n_layers):
        q = state.quant[k]
        dests = [s.pe for s in by_layer[k + 1]] if k + 1 < n_layers else [HOST]
        for sl in by_layer[k]:
            x, y = hw.pe_xy(sl.pe)
            pm = PEMap(pe=sl.pe, x=x, y=y, layer=k, neuron_start=sl.neuron_start, neuron_count=sl.neuron_count,
                       fan_in=sl.fan_in, dests=list(dests))
            lo, hi = sl.neuron_start, sl.neuron_start + sl.neuron_count
            sram[sl.pe] = build_sram_images(hw, pm, q.weight_int[lo:hi], q.threshold_int[lo:hi])
            pes.append(pm)
    layers = [LayerMap(index=k, name=g.layers[k].name, n_in=g.layers[k].n_in, n_out=g.layers[k].n_out,
                       threshold=g.layers[k].threshold, t_max=g.layers[k].t_max,
                       window_steps=state.quant[k].window_steps, scale_mode=state.quant[k].report["scale_mode"],
                       scales=state.quant[k].scales, threshold_int=state.quant[k].threshold_int,
                       pes=[s.pe for s in by_layer[k]], fires=state.quant[k].fires) for k in range(n_layers)]
    meta = {"compiler_version": COMPILER_VERSION,
            "source": {"path": str(g.source), "sha256": g.source_sha256, "metadata": g.metadata},
            "options": {"hw": hw.name, "output_mode": opt.output_mode, "early_stop": bool(opt.early_stop),
                        "scale_mode": opt.scale_mode, "steps_per_alpha": state.steps_per_alpha},
            "quantisation": [q.report for q in state.quant],
            "warnings": list(state.warnings),
            "mapping": mapping_summary(state)}
    state.program = YosoProgram(hw=hw, n_inputs=g.n_inputs, n_classes=g.n_classes, alpha=g.alpha,
                                silent_zero=g.silent_zero, steps_per_alpha=state.steps_per_alpha,
                                output_mode=opt.output_mode,
                                early_stop=bool(opt.early_stop) and opt.output_mode == "ttfs",
                                layers=layers, pes=pes, input_dests=[s.pe for s in by_layer[0]], sram=sram, meta=meta)
