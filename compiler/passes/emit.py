"""Pass 5: emit the `YosoProgram` (manifest data, SRAM images per PE, program.bin/.txt via artifact).

Writing to disk is `yoso_backend.artifact.save_program` (atomic, refuses to overwrite unless
forced); this pass only builds the in-memory program and the mapping summary in `meta`.
"""

from __future__ import annotations

import numpy as np

from compiler.ir import CompileState
from stdbp.errors import UserError
from yoso_backend.artifact import HOST, LayerMap, PEMap, YosoProgram, build_sram_images, sram_specs
from yoso_backend.geometry import targets

COMPILER_VERSION = 2


def mapping_summary(state: CompileState) -> dict:
    """PEs per layer, SRAM use per PE, worst-case synaptic events per frame."""
    hw, g = state.hw, state.graph
    specs = sram_specs(hw)
    pes = []
    for sl in state.slices:
        pes.append({"pe": sl.pe, "xy": list(hw.pe_xy(sl.pe)), "layer": sl.layer,
                    "neurons": [sl.neuron_start, sl.neuron_start + sl.neuron_count - 1],
                    "weight_words": sl.weight_words, "weight_use": sl.weight_words / specs["weight"].depth,
                    "neuron_words": sl.neuron_count, "neuron_use": sl.neuron_count / specs["neuron"].depth})
    layers = []
    for rep, q in zip(state.partition_report["per_layer"], state.quant):
        lay = g.layers[rep["layer"]]
        # dense: every spike into a layer updates A of all its neurons (input spikes x n_out);
        # conv / pool: only the neurons whose window holds the input
        events = lay.n_in * lay.n_out if lay.kind == "dense" else int(targets(lay.window)[0][-1])
        layers.append({**rep, "window_steps": q.window_steps, "synaptic_events_max": events})
    return {"layers": layers, "pes": pes, "pes_used": len(state.slices), "pes_available": hw.n_pe,
            "synaptic_events_max": sum(r["synaptic_events_max"] for r in layers),
            "noc": state.placement_report}


def dest_tables(lists: list[tuple[int, ...]]) -> tuple[list[int], np.ndarray]:
    """Per-neuron destination lists -> (table, (first, count) per neuron): identical lists share
    one run of the table, in order of first use."""
    table: list[int] = []
    where: dict[tuple[int, ...], int] = {}
    ranges = np.zeros((len(lists), 2), np.int64)
    for j, dl in enumerate(lists):
        if dl not in where:
            where[dl] = len(table)
            table.extend(dl)
        ranges[j] = (where[dl], len(dl))
    return table, ranges


def _neuron_dests(state: CompileState, k: int, lo: int, hi: int) -> list[tuple[int, ...]]:
    """Destination PEs of neurons lo..hi-1 of layer k's input side (k = 0: the inputs)."""
    off, sl = state.fanout[k]
    pes = np.array([s.pe for s in state.layer_slices(k)], np.int64)
    return [tuple(int(p) for p in pes[sl[off[j]:off[j + 1]]]) for j in range(lo, hi)]


def emit_program(state: CompileState) -> None:
    hw, g, opt = state.hw, state.graph, state.options
    n_layers = len(g.layers)
    by_layer = {k: state.layer_slices(k) for k in range(n_layers)}
    depth = sram_specs(hw)["spike_addr"].depth
    pes, sram = [], {}
    for k in range(n_layers):
        q = state.quant[k]
        lay = g.layers[k]
        for sl in by_layer[k]:
            x, y = hw.pe_xy(sl.pe)
            lo, hi = sl.neuron_start, sl.neuron_start + sl.neuron_count
            if k + 1 < n_layers:
                dests, ranges = dest_tables(_neuron_dests(state, k + 1, lo, hi))
            else:
                dests, ranges = [HOST], None
            if hw.neurons_per_pe + len(dests) > depth:
                raise UserError(g.source or "model", f"layer {k} ({lay.name}) PE {sl.pe}: its neurons need a "
                                f"destination table of {len(dests)} words, the spike-address SRAM has "
                                f"{depth - hw.neurons_per_pe} after the {hw.neurons_per_pe} neuron words",
                                f"use a hardware description with pe.spike_address_depth >= {hw.neurons_per_pe + len(dests)}")
            pm = PEMap(pe=sl.pe, x=x, y=y, layer=k, neuron_start=sl.neuron_start, neuron_count=sl.neuron_count,
                       fan_in=sl.fan_in, dests=list(dests))
            if lay.kind == "dense":
                weights = q.weight_int[lo:hi]
            elif lay.kind == "conv":
                per = lay.window.out_shape[1] * lay.window.out_shape[2]
                weights = q.weight_int[lo // per: (hi - 1) // per + 1].reshape(-1)
            else:
                weights = np.zeros(0, np.int64)
            sram[sl.pe] = build_sram_images(hw, pm, weights, q.threshold_int[lo:hi], ranges)
            pes.append(pm)
    input_dests, input_ranges = dest_tables(_neuron_dests(state, 0, 0, g.n_inputs))
    layers = [LayerMap(index=k, name=g.layers[k].name, n_in=g.layers[k].n_in, n_out=g.layers[k].n_out,
                       threshold=g.layers[k].threshold, t_max=g.layers[k].t_max,
                       window_steps=state.quant[k].window_steps, scale_mode=state.quant[k].report["scale_mode"],
                       scales=state.quant[k].scales, threshold_int=state.quant[k].threshold_int,
                       pes=[s.pe for s in by_layer[k]], fires=state.quant[k].fires, kind=g.layers[k].kind,
                       geometry=None if g.layers[k].window is None else g.layers[k].window.to_list())
              for k in range(n_layers)]
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
                                layers=layers, pes=pes, input_dests=input_dests, sram=sram, meta=meta,
                                input_ranges=input_ranges)
