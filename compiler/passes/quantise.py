"""Pass 2: quantise weights, thresholds and time (docs/yoso-spec.md sections 3 and 7).

Per layer (option per neuron) with w_max = 2^(bits.weight - 1) - 1 and tau = steps_per_alpha / alpha:

    s        = w_max / max |w|                       (per neuron: max over the neuron's row)
    w_int    = round_half_even(w * s)                in [-w_max, w_max]
    theta_int= round_half_even(theta * s * tau)      V in integer units is s * tau times the float V
    window   = floor(t_max * tau)  (exact rational of the stored float; t_max = inf -> hw default)

Conv layers: the same with the kernel [C_out, C_in, kh, kw] in place of the weight matrix; the per
neuron scale is one per output channel (its neurons share the kernel), expanded to the neurons.
Pool layers have no weights: thresholds 1 (a pooled neuron fires on its first delivery, spec
section 4b) and the window of the layer below (no later spike can arrive).

Worst cases checked against the bit widths (warnings name the layer, the value and the bits needed):
    A in [sum_i min(w_int, 0), sum_i max(w_int, 0)]       per neuron
    V >= window * sum_i min(w_int, 0)                     (V above theta only matters in softmax mode:
    V <= window * sum_i max(w_int, 0))
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from compiler.ir import CompileState, QuantLayer
from stdbp.errors import UserError


def bits_signed(x: int) -> int:
    """Smallest two's complement width holding x."""
    x = int(x)
    return (x.bit_length() if x >= 0 else (-x - 1).bit_length()) + 1


def window_steps(t_max: float, spa: int, alpha: float, default: int) -> int:
    if math.isinf(t_max):
        return default
    return math.floor(Fraction(t_max) * spa / Fraction(alpha))


def quantise(state: CompileState) -> None:
    hw, g, opt = state.hw, state.graph, state.options
    where = g.source or "model"
    spa = state.steps_per_alpha
    tau = Fraction(spa) / Fraction(g.alpha)
    w_max = hw.w_max
    state.quant = []
    prev_window = None
    for k, lay in enumerate(g.layers):
        label = f"layer {k} ({lay.name})"
        if lay.kind == "pool":
            win = prev_window if prev_window is not None else hw.max_step
            report = {"layer": k, "name": lay.name, "kind": "pool", "scale_mode": "none", "window_steps": win}
            state.quant.append(QuantLayer(index=k, name=lay.name, weight_int=np.zeros(0, np.int64),
                                          scales=np.ones(lay.n_out), threshold_int=np.ones(lay.n_out, np.int64),
                                          window_steps=win, fires=True, report=report))
            continue
        conv = lay.kind == "conv"
        # a conv kernel quantises like a dense matrix with one row per output channel
        w = lay.weight.reshape(lay.weight.shape[0], -1) if conv else lay.weight
        last = k == len(g.layers) - 1
        fires = not (last and opt.output_mode == "softmax")
        # softmax read-out compares V across neurons: they must share one scale
        mode = "layer" if (opt.scale_mode == "layer" or not fires) else "neuron"
        absmax = float(np.abs(w).max()) if w.size else 0.0
        if absmax == 0.0:
            raise UserError(where, f"{label}: all weights are zero", "retrain; a zero layer never fires")
        if mode == "layer":
            scales = np.full(w.shape[0], w_max / absmax)
        else:
            rows = np.abs(w).max(axis=1)
            scales = np.where(rows > 0, w_max / np.where(rows > 0, rows, 1.0), w_max / absmax)
        w_int = np.rint(w * scales[:, None]).astype(np.int64)
        w_int = np.clip(w_int, -w_max, w_max)  # |w * s| <= w_max up to float rounding
        theta_int = np.array([int(round(Fraction(lay.threshold) * Fraction(float(s)) * tau)) for s in scales],
                             dtype=np.int64)
        if theta_int.min() < 1:
            raise UserError(where, f"{label}: threshold {lay.threshold} quantises to {int(theta_int.min())} "
                            f"(scale {scales.min():.4g}, {spa} steps per alpha)",
                            "use more steps per alpha or a larger threshold")
        if theta_int.max() > hw.theta_max:
            need = int(theta_int.max()).bit_length()
            raise UserError(where, f"{label}: integer threshold {int(theta_int.max())} needs {need} bits, the "
                            f"hardware has {hw.threshold_bits}",
                            f"use fewer --steps-per-alpha or a description with bits.threshold >= {need} "
                            f"(and bits.potential >= {need + 1})")
        win = window_steps(lay.t_max, spa, g.alpha, hw.default_window_steps)
        if win > hw.max_step:
            state.warn(f"{label}: t_max {lay.t_max} is {win} steps, beyond the {hw.time_bits}-bit step field; "
                       f"window clamped to {hw.max_step} steps (t <= {hw.max_step / float(tau):.4g})")
            win = hw.max_step
        prev_window = win
        pos = np.where(w_int > 0, w_int, 0).sum(axis=1)
        neg = np.where(w_int < 0, w_int, 0).sum(axis=1)
        a_hi, a_lo = int(pos.max()), int(neg.min())
        v_lo = int(neg.min()) * win
        v_hi = int(pos.max()) * win
        report = {"layer": k, "name": lay.name, "kind": lay.kind, "scale_mode": mode, "scale_min": float(scales.min()),
                  "scale_max": float(scales.max()), "abs_w_max": absmax, "theta": lay.threshold,
                  "theta_int_min": int(theta_int.min()), "theta_int_max": int(theta_int.max()),
                  "window_steps": win, "t_max": None if math.isinf(lay.t_max) else lay.t_max,
                  "a_worst": [a_lo, a_hi], "v_worst_low": v_lo, "v_worst_high": v_hi if not fires else None,
                  "zero_weights": int((w_int == 0).sum())}
        if a_hi > hw.acc_max or a_lo < hw.acc_min:
            need = max(bits_signed(a_hi), bits_signed(a_lo))
            worst = int(np.argmax(np.maximum(pos - hw.acc_max, hw.acc_min - neg)))
            state.warn(f"{label}: accumulated weight A may saturate: worst case [{a_lo}, {a_hi}] (neuron {worst}) "
                       f"needs {need} bits, the hardware has {hw.acc_bits}")
        if v_lo < hw.v_min:
            state.warn(f"{label}: potential V may saturate low: worst case {v_lo} ({win} steps x {a_lo}) needs "
                       f"{bits_signed(v_lo)} bits, the hardware has {hw.potential_bits}")
        if not fires and v_hi > hw.v_max:
            state.warn(f"{label}: read-out potential V may saturate high: worst case {v_hi} needs "
                       f"{bits_signed(v_hi)} bits, the hardware has {hw.potential_bits}")
        if conv:  # per channel -> per neuron (channel-major neuron order)
            per = lay.n_out // w.shape[0]
            w_int = w_int.reshape(lay.weight.shape)
            scales, theta_int = np.repeat(scales, per), np.repeat(theta_int, per)
        state.quant.append(QuantLayer(index=k, name=lay.name, weight_int=w_int, scales=scales.astype(np.float64),
                                      threshold_int=theta_int, window_steps=win, fires=fires, report=report))
