"""program.bin and program.txt of a compiled `model.yoso/` (docs/yoso-spec.md section 6).

program.bin: little-endian uint32 configuration words; program.txt: the same program, readable, one
fact per line in a stable order so that two compilations diff line by line. Both are derived from a
`YosoProgram` and checked against the manifest when a program is loaded (`artifact.load_program`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


from yoso_backend.artifact import (FORMAT_VERSION, HOST, LAYER_KINDS, LAYER_RECORD_WORDS, MAGIC, OUTPUT_MODES,
                                   SRAM_NAMES, YosoProgram)


def encode_program_bin(prog: YosoProgram) -> bytes:
    """Header (16 words), layer records (24 words: 9 + 14 geometry + 1 spare), PE records (8 words),
    the host's destination table, its (first, count) per input, PE destination tables."""
    hw = prog.hw
    words = [MAGIC, FORMAT_VERSION, hw.mesh_width, hw.mesh_height, len(prog.layers), len(prog.pes),
             prog.n_inputs, prog.n_classes, prog.steps_per_alpha, OUTPUT_MODES.index(prog.output_mode),
             int(prog.early_stop), int(prog.silent_zero), hw.host_x, hw.host_y, len(prog.input_dests), 0]
    record_of = {p.pe: r for r, p in enumerate(prog.pes)}
    for lay in prog.layers:
        geo = list(lay.geometry) if lay.geometry is not None else [0] * 14
        words += [lay.index, lay.n_in, lay.n_out, lay.window_steps, len(lay.pes), int(lay.fires),
                  int(lay.scale_mode == "neuron"), record_of[lay.pes[0]], LAYER_KINDS.index(lay.kind)] + geo + [0]
    for p in prog.pes:
        words += [p.pe, p.x, p.y, p.layer, p.neuron_start, p.neuron_count, p.fan_in, len(p.dests)]
    words += list(prog.input_dests)
    words += [int(v) for v in np.asarray(prog.input_ranges).reshape(-1)]
    for p in prog.pes:
        words += [0xFFFFFFFF if d == HOST else d for d in p.dests]
    return np.asarray(words, dtype="<u4").tobytes()


def decode_program_bin(data: bytes) -> dict[str, Any]:
    """Inverse of encode_program_bin, as plain dicts (used to check program.bin against the manifest)."""
    w = np.frombuffer(data, dtype="<u4").astype(np.int64)
    if len(w) < 16 or w[0] != MAGIC:
        raise ValueError("not a YOSO program (bad magic)")
    n_layers, n_pes, n_idest = int(w[4]), int(w[5]), int(w[14])
    head = dict(zip(["magic", "format_version", "mesh_width", "mesh_height", "n_layers", "n_pes", "n_inputs",
                     "n_classes", "steps_per_alpha", "output_mode", "early_stop", "silent_zero", "host_x",
                     "host_y", "n_input_dests"], map(int, w[:15])))
    pos = 16
    layers = []
    for _ in range(n_layers):
        r = w[pos: pos + LAYER_RECORD_WORDS]
        rec = dict(zip(["index", "n_in", "n_out", "window_steps", "n_pe", "fires", "per_neuron", "first_pe_record",
                        "kind"], map(int, r[:9])))
        rec["geometry"] = [int(v) for v in r[9:23]]
        layers.append(rec)
        pos += LAYER_RECORD_WORDS
    pes = []
    for _ in range(n_pes):
        r = w[pos: pos + 8]
        pes.append(dict(zip(["pe", "x", "y", "layer", "neuron_start", "neuron_count", "fan_in", "n_dest"], map(int, r))))
        pos += 8
    input_dests = [int(v) for v in w[pos: pos + n_idest]]
    pos += n_idest
    input_ranges = [int(v) for v in w[pos: pos + 2 * head["n_inputs"]]]
    pos += 2 * head["n_inputs"]
    for p in pes:
        p["dests"] = [HOST if v == 0xFFFFFFFF else int(v) for v in w[pos: pos + p["n_dest"]]]
        pos += p["n_dest"]
    if pos != len(w):
        raise ValueError(f"program.bin has {len(w) - pos} trailing words")
    return {"header": head, "layers": layers, "pes": pes, "input_dests": input_dests, "input_ranges": input_ranges}


def render_program_text(prog: YosoProgram) -> str:
    """Readable program: one line per fact, stable order, so two compilations diff line by line."""
    hw = prog.hw
    out = [f"# YOSO program format {FORMAT_VERSION}; hardware {hw.name} r{hw.revision} sha256 {hw.sha256}",
           f"mode {prog.output_mode} early_stop {int(prog.early_stop)}",
           f"input n {prog.n_inputs} alpha {prog.alpha!r} silent_zero {int(prog.silent_zero)} "
           f"steps_per_alpha {prog.steps_per_alpha} step = (255 - pixel) * {prog.steps_per_alpha} / 255",
           f"classes {prog.n_classes}",
           "input_dests " + " ".join(f"pe{d}" for d in prog.input_dests),
           "input_ranges sha256 " + hashlib.sha256(np.asarray(prog.input_ranges, "<i8").tobytes()).hexdigest()]
    for lay in prog.layers:
        scale = f"{float(lay.scales[0])!r}" if lay.scale_mode == "layer" else f"per-neuron [{float(lay.scales.min())!r}, {float(lay.scales.max())!r}]"
        geo = "" if lay.geometry is None else f"geometry {' '.join(map(str, lay.geometry))} "
        out.append(f"layer {lay.index} {lay.name} {lay.kind} {lay.n_in} -> {lay.n_out} {geo}theta {lay.threshold!r} "
                   f"t_max {lay.t_max!r} window {lay.window_steps} fires {int(lay.fires)} scale {scale} "
                   f"pes {' '.join(f'pe{p}' for p in lay.pes)}")
    for p in prog.pes:
        dests = " ".join("host" if d == HOST else f"pe{d}" for d in p.dests)
        out.append(f"pe {p.pe} xy {p.x} {p.y} layer {p.layer} neurons {p.neuron_start}..{p.neuron_start + p.neuron_count - 1} "
                   f"fan_in {p.fan_in} weights {prog.pe_weight_words(p.pe)}/{hw.weights_per_pe} dests {dests}")
    for p in prog.pes:
        kind = prog.layers[p.layer].kind
        if kind == "conv":  # one line per stored kernel (shared by the channel's neurons)
            lo, _hi = prog.pe_channels(p.pe)
            theta = prog.pe_thresholds(p.pe)
            _c, h_out, w_out = prog.layers[p.layer].window().out_shape
            per = h_out * w_out
            for o, ker in enumerate(prog.pe_kernel(p.pe)):
                row = ker.reshape(-1)
                j = max(0, (lo + o) * per - p.neuron_start)
                digest = hashlib.sha256(row.astype("<i2").tobytes()).hexdigest()[:12]
                out.append(f"k pe{p.pe} channel {lo + o} theta {int(theta[j])} wsum+ {int(row[row > 0].sum())} "
                           f"wsum- {int(row[row < 0].sum())} nz {int(np.count_nonzero(row))} w {digest}")
            continue
        if kind == "pool":
            continue
        w = prog.pe_weights(p.pe)
        theta = prog.pe_thresholds(p.pe)
        for j in range(p.neuron_count):
            row = w[j]
            digest = hashlib.sha256(row.astype("<i2").tobytes()).hexdigest()[:12]
            out.append(f"n pe{p.pe} {p.neuron_start + j} theta {int(theta[j])} wsum+ {int(row[row > 0].sum())} "
                       f"wsum- {int(row[row < 0].sum())} nz {int(np.count_nonzero(row))} w {digest}")
    for p in prog.pes:
        for name in SRAM_NAMES:
            out.append(f"sram pe{p.pe} {name} sha256 {hashlib.sha256(prog.sram[p.pe][name].tobytes()).hexdigest()}")
    return "\n".join(out) + "\n"


