"""Synthetic compiled programs: integer weights and thresholds -> a `YosoProgram`, no ONNX.

For tests, benchmarks and calibration development of the emulator before (or besides) the
compiler: the partition follows the spec (section 7.3: ``p = min(N, floor(W / m))`` whole neurons
per PE, split evenly in index order); the placement is simpler than the compiler's (PEs in
order along a snake from the host, so layers sit near it). The SRAM images come from
`artifact.build_sram_images`, exactly as the compiler writes them.
"""

from __future__ import annotations

import math

import numpy as np

from yoso_backend.artifact import HOST, LayerMap, PEMap, YosoProgram, build_sram_images
from yoso_backend.hardware import HardwareDescription, load_hardware


def snake_order(width: int, height: int) -> list[int]:
    """PE ids row by row, alternating direction (neighbours stay neighbours)."""
    order = []
    for y in range(height):
        xs = range(width) if y % 2 == 0 else range(width - 1, -1, -1)
        order += [y * width + x for x in xs]
    return order


def make_program(weights: list[np.ndarray], thresholds: list[np.ndarray], hw: HardwareDescription | str = "yoso-6x7",
                 windows: list[int] | int = 512, output_mode: str = "ttfs", early_stop: bool = False,
                 silent_zero: bool = False, steps_per_alpha: int | None = None,
                 placement: list[int] | None = None) -> YosoProgram:
    """A program for dense layers ``weights[l]`` int [n_out, n_in] with ``thresholds[l]`` int [n_out]."""
    hw = load_hardware(hw)
    L = len(weights)
    windows = [windows] * L if isinstance(windows, int) else list(windows)
    order = placement or snake_order(hw.mesh_width, hw.mesh_height)
    host_pe = hw.pe_id(hw.host_x, hw.host_y)
    order = [host_pe] + [p for p in order if p != host_pe] if placement is None else order
    layers, pes, groups = [], [], []
    nxt = 0
    for l, (w, th) in enumerate(zip(weights, thresholds)):
        n, m = w.shape
        per = min(hw.neurons_per_pe, hw.weights_per_pe // m)
        if per < 1:
            raise ValueError(f"layer {l}: fan-in {m} exceeds the weight SRAM")
        k = math.ceil(n / per)
        sizes = [n // k + (1 if r < n % k else 0) for r in range(k)]
        if nxt + k > len(order):
            raise ValueError("network does not fit the mesh")
        ids = order[nxt:nxt + k]
        nxt += k
        start = 0
        group = []
        for pe, cnt in zip(ids, sizes):
            x, y = hw.pe_xy(pe)
            group.append(PEMap(pe=pe, x=x, y=y, layer=l, neuron_start=start, neuron_count=cnt, fan_in=m, dests=[]))
            start += cnt
        groups.append(group)
        fires = not (output_mode == "softmax" and l == L - 1)
        layers.append(LayerMap(index=l, name=f"dense{l}", n_in=m, n_out=n, threshold=1.0, t_max=math.inf,
                               window_steps=int(windows[l]), scale_mode="layer", scales=np.ones(n),
                               threshold_int=np.asarray(th, np.int64), pes=ids, fires=fires))
    for l, group in enumerate(groups):
        nd = [p.pe for p in groups[l + 1]] if l + 1 < L else [HOST]
        for p in group:
            p.dests = list(nd)
        pes += group
    sram = {}
    for l, group in enumerate(groups):
        w = np.asarray(weights[l], np.int64)
        th = np.asarray(thresholds[l], np.int64)
        for p in group:
            sl = slice(p.neuron_start, p.neuron_start + p.neuron_count)
            sram[p.pe] = build_sram_images(hw, p, w[sl], th[sl])
    return YosoProgram(hw=hw, n_inputs=weights[0].shape[1], n_classes=weights[-1].shape[0], alpha=1.0,
                       silent_zero=silent_zero, steps_per_alpha=steps_per_alpha or hw.steps_per_alpha,
                       output_mode=output_mode, early_stop=early_stop, layers=layers, pes=pes,
                       input_dests=[p.pe for p in groups[0]], sram=sram, meta={"source": "yoso_backend.synth"})


def random_program(sizes: list[int], seed: int = 0, hw: HardwareDescription | str = "yoso-6x7",
                   w_lo: int = -40, w_hi: int = 90, theta_scale: float = 1.0, **kw) -> YosoProgram:
    """A random dense network whose neurons mostly fire within a window of ~512 steps."""
    rng = np.random.default_rng(seed)
    hw = load_hardware(hw)
    ws, ths = [], []
    for m, n in zip(sizes[:-1], sizes[1:]):
        w = rng.integers(w_lo, w_hi + 1, (n, m))
        w = np.clip(w, -hw.w_max, hw.w_max)
        # about a tenth of the inputs spiking ~100 steps early reach theta
        th = np.maximum(1, (theta_scale * 100 * np.maximum(w.clip(0).sum(1), 1) / 10)).astype(np.int64)
        ws.append(w)
        ths.append(np.minimum(th, hw.theta_max))
    return make_program(ws, ths, hw=hw, **kw)
