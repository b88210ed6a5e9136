"""Integer reference of YOSO: runs a compiled model.yoso/ layer by layer, by docs/yoso-spec.md section 4.

No NoC, no cycles: only the arithmetic, bit for bit. It reads nothing but the program (weights and
thresholds are decoded from the SRAM images), never imports onnx or torch, and is the oracle of the
emulator.

Semantics (spec section 4), one global time base, steps k = 0, 1, ..., window:
    (1) every neuron not yet fired:          V_j <- sat_V(V_j + A_j)
    (2) every neuron not yet fired with V_j >= theta_j fires at step k (once; then it is disabled)
    (3) the spikes of step k (input spikes with step k, spikes fired at step k by the layer below)
        are delivered in ascending input index i:  A_j <- sat_A(A_j + w_ji)   for every j of the layer
with A = V = 0 before step 0 and sat_X(x) = min(max(x, X_min), X_max). A conv layer is exactly a
dense layer whose matrix is the kernel laid out over the windows (`geometry.toeplitz`: zeros where
an input is not in a neuron's window; adding 0 leaves a saturated A unchanged). A min-pool neuron
fires at the first step at which a spike of its window is delivered (spec section 4b):
    fire_j = min { k_i : i in window(j), 0 <= k_i <= window }        (silent if there is none)
Without saturation the rules give
    V_j(k) = sum_{i: k_i <= k} w_ji (k - k_i)
which is the continuous ReL-PSP potential at t = k exactly, so the fire step is ceil(t_j) of the
exact spike time (tested in tests/yoso_backend/test_reference.py).

Why numba and not vectorised numpy: A saturates spike by spike in a fixed order (step (3)), which is
inherently sequential per (sample, neuron); the kernel below is a line-by-line transcription of the
three rules, compiled (parallel over samples), which keeps it obviously correct; a second kernel
computes the same arithmetic segment by segment between delivery steps (the default: it does not
pay for empty steps of long windows). The tests check both against a pure-Python transcription,
each other, and, without saturation, the closed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from stdbp.errors import UserError
from yoso_backend.artifact import YosoProgram
from yoso_backend.geometry import pool_index, targets

NO_SPIKE = -1


@njit(cache=True, parallel=True)
def _layer_kernel(steps, w_t, theta, window, fires, acc_min, acc_max, v_min, v_max, fire_out, v_out):  # pragma: no cover - numba
    n_samples, m = steps.shape
    n = w_t.shape[1]
    for b in prange(n_samples):
        st = steps[b]
        order = np.argsort(st, kind="mergesort")  # stable: ascending step, ties by ascending index
        ptr = 0
        while ptr < m and st[order[ptr]] < 0:  # silent inputs (NO_SPIKE) are never delivered
            ptr += 1
        acc = np.zeros(n, np.int64)
        pot = np.zeros(n, np.int64)
        fired = np.zeros(n, np.bool_)
        n_fired = 0
        for k in range(window + 1):
            for j in range(n):  # (1) integrate
                if not fired[j]:
                    x = pot[j] + acc[j]
                    pot[j] = min(max(x, v_min), v_max)
            if fires:  # (2) fire check
                for j in range(n):
                    if not fired[j] and pot[j] >= theta[j]:
                        fired[j] = True
                        fire_out[b, j] = k
                        n_fired += 1
                if n_fired == n:
                    break  # nothing can change any more
            while ptr < m and st[order[ptr]] == k:  # (3) deliver the spikes of step k
                i = order[ptr]
                for j in range(n):
                    x = acc[j] + w_t[i, j]
                    acc[j] = min(max(x, acc_min), acc_max)
                ptr += 1
            # Shortcut, not a semantic change: once no spike is left to deliver within the window and
            # every unfired neuron has A <= 0, no neuron can fire any more, and the remaining
            # r = window - k integrations of a constant A <= 0 give V = max(V + r*A, V_min) exactly.
            if fires and (ptr == m or st[order[ptr]] > window):
                rising = False
                for j in range(n):
                    if not fired[j] and acc[j] > 0:
                        rising = True
                        break
                if not rising:
                    r = window - k
                    for j in range(n):
                        if not fired[j]:
                            pot[j] = max(pot[j] + r * acc[j], v_min)
                    break
        for j in range(n):
            v_out[b, j] = pot[j]


@njit(cache=True, parallel=True)
def _segment_kernel(steps, w_t, theta, window, fires, acc_min, acc_max, v_min, v_max, fire_out, v_out):  # pragma: no cover - numba
    """Same result as `_layer_kernel`, jumping from one delivery step to the next.

    Between the delivery at step s and the next one at step s' (or the window end), A is constant,
    so the L = s' - s integrations of rule 1 are, exactly (V_min <= V <= V_max before, theta <= V_max):
        A > 0:  V(s + d) = min(V + d A, V_max); the first d with V + d A >= theta is
                d* = ceil((theta - V) / A) (> 0, as V < theta for an unfired neuron): fire at s + d*
                if d* <= L (V frozen there), else V <- min(V + L A, V_max)
        A <= 0: V <- max(V + L A, V_min), no fire (V only falls, and it was < theta)
    then rule 3 delivers the spikes of step s'. Cost O(delivery steps x n) instead of O(window x n).
    """
    n_samples, m = steps.shape
    n = w_t.shape[1]
    for b in prange(n_samples):
        st = steps[b]
        order = np.argsort(st, kind="mergesort")
        ptr = 0
        while ptr < m and st[order[ptr]] < 0:
            ptr += 1
        acc = np.zeros(n, np.int64)
        pot = np.zeros(n, np.int64)
        fired = np.zeros(n, np.bool_)
        done = -1  # steps 0..done have been fully processed (rules 1-3)
        while done < window:
            if ptr < m and st[order[ptr]] <= window:
                nxt = st[order[ptr]]
            else:
                nxt = window
            span = nxt - done
            for j in range(n):  # rules 1-2 for steps done+1 .. nxt
                if fired[j]:
                    continue
                a = acc[j]
                v = pot[j]
                if a > 0:
                    if fires and theta[j] <= v_max:
                        d = (theta[j] - v + a - 1) // a
                        if d <= span:
                            fired[j] = True
                            fire_out[b, j] = done + d
                            pot[j] = min(v + d * a, v_max)
                            continue
                    pot[j] = min(v + span * a, v_max)
                else:
                    pot[j] = max(v + span * a, v_min)
            while ptr < m and st[order[ptr]] == nxt:  # rule 3 at step nxt
                i = order[ptr]
                for j in range(n):
                    x = acc[j] + w_t[i, j]
                    acc[j] = min(max(x, acc_min), acc_max)
                ptr += 1
            done = nxt
        for j in range(n):
            v_out[b, j] = pot[j]


def run_layer(steps_in: np.ndarray, weights: np.ndarray, thresholds: np.ndarray, window: int, *,
              acc_range: tuple[int, int], v_range: tuple[int, int], fires: bool = True,
              method: str = "segments") -> tuple[np.ndarray, np.ndarray]:
    """One fully connected layer.

    steps_in   int [B, m], step of each input spike, NO_SPIKE (-1) = silent
    weights    int [n, m]; thresholds int [n] (>= 1); window: last step (inclusive)
    method     "steps": the literal loop over every step k = 0..window (rules 1-3 as written);
               "segments" (default): the same arithmetic jumping between delivery steps (exact;
               tests assert both are equal, and equal to a pure-Python transcription)
    returns    fire_steps int32 [B, n] (NO_SPIKE = silent), potentials int64 [B, n] (V at the end:
               after step `window`, or frozen at the fire step for neurons that fired)
    """
    steps_in = np.ascontiguousarray(steps_in, dtype=np.int64)
    w_t = np.ascontiguousarray(np.asarray(weights, dtype=np.int64).T)
    theta = np.ascontiguousarray(thresholds, dtype=np.int64)
    n_samples = steps_in.shape[0]
    n = w_t.shape[1]
    if steps_in.ndim != 2 or steps_in.shape[1] != w_t.shape[0] or theta.shape != (n,):
        raise ValueError(f"shape mismatch: steps {steps_in.shape}, weights {weights.shape}, thresholds {theta.shape}")
    fire_out = np.full((n_samples, n), NO_SPIKE, dtype=np.int32)
    v_out = np.zeros((n_samples, n), dtype=np.int64)
    kernels = {"segments": _segment_kernel, "steps": _layer_kernel}
    if method not in kernels:
        raise ValueError(f"method {method!r}: use 'segments' (fast, exact) or 'steps' (literal step loop)")
    if n_samples:
        kernels[method](steps_in, w_t, theta, int(window), bool(fires), int(acc_range[0]), int(acc_range[1]),
                      int(v_range[0]), int(v_range[1]), fire_out, v_out)
    return fire_out, v_out


def run_pool(steps_in: np.ndarray, window, last_step: int) -> np.ndarray:
    """Min-pool layer: the earliest delivered step (0 <= k <= last_step) of each window, else NO_SPIKE."""
    st = np.asarray(steps_in, np.int64)
    big = np.iinfo(np.int64).max
    st = np.where((st >= 0) & (st <= last_step), st, big)
    idx = pool_index(window)
    win = np.where(idx >= 0, st[:, np.maximum(idx, 0)], big)  # [B, n_out, kh * kw]
    out = win.min(axis=2)
    return np.where(out == big, NO_SPIKE, out).astype(np.int32)


def input_steps(prog: YosoProgram, pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels [N, ...] -> int32 steps [N, n_inputs]: step = round_half_up((255 - s) * spa / 255).

    Exact (no rounding) when steps_per_alpha is a multiple of 255. silent_zero: s == 0 -> NO_SPIKE.
    """
    px = np.asarray(pixels)
    if px.dtype != np.uint8:
        raise UserError("pixels", f"dtype {px.dtype}, expected uint8", "pass raw 0..255 images")
    px = px.reshape(px.shape[0], -1) if px.ndim > 1 else px.reshape(1, -1)
    if px.shape[1] != prog.n_inputs:
        raise UserError("pixels", f"{px.shape[1]} values per frame, the model has {prog.n_inputs} inputs",
                        "pass [N, 784] or [N, 1, 28, 28] images")
    s = px.astype(np.int64)
    steps = ((255 - s) * prog.steps_per_alpha + 127) // 255
    if prog.silent_zero:
        steps = np.where(s == 0, NO_SPIKE, steps)
    return steps.astype(np.int32)


@dataclass
class ReferenceResult:
    fire_steps: list[np.ndarray]        # per layer int32 [N, n_out], NO_SPIKE = silent
    spike_times: np.ndarray             # float64 [N, classes]: step * alpha / steps_per_alpha, +inf = silent
    predictions: np.ndarray             # int64 [N], -1 = no output spike (TTFS)
    potentials: np.ndarray | None       # int64 [N, classes]: V at the end of the window (softmax mode)
    counters: dict = field(default_factory=dict)


def ttfs_prediction(out_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Earliest output step wins, ties -> lowest index, all silent -> -1. Returns (pred, first step)."""
    big = np.iinfo(np.int64).max
    s = np.where(out_steps < 0, big, out_steps.astype(np.int64))
    pred = np.argmin(s, axis=1) if s.shape[1] else np.zeros(len(s), np.int64)
    first = s.min(axis=1) if s.shape[1] else np.full(len(s), big)
    pred = np.where(first == big, -1, pred).astype(np.int64)
    return pred, np.where(first == big, NO_SPIKE, first)


def run(prog: YosoProgram, pixels: np.ndarray) -> ReferenceResult:
    """Run a compiled program on uint8 frames; see the module docstring for the semantics."""
    hw = prog.hw
    acc_range, v_range = (hw.acc_min, hw.acc_max), (hw.v_min, hw.v_max)
    steps = input_steps(prog, pixels)
    n = steps.shape[0]
    fire_steps, layer_inputs = [], [steps]
    potentials = None
    for lay in prog.layers:
        if lay.kind == "pool":
            fs = run_pool(layer_inputs[-1], lay.window(), lay.window_steps)
            v = np.zeros(fs.shape, np.int64)
        else:
            w = prog.layer_weights(lay.index)
            theta = prog.layer_thresholds(lay.index)
            fs, v = run_layer(layer_inputs[-1], w, theta, lay.window_steps, acc_range=acc_range, v_range=v_range,
                              fires=lay.fires)
        fire_steps.append(fs)
        layer_inputs.append(fs)
        potentials = v
    out = fire_steps[-1]
    if prog.output_mode == "softmax":
        last = prog.layers[-1]
        pred = np.argmax(potentials, axis=1).astype(np.int64)  # ties -> lowest index
        spike_times = np.full(out.shape, np.inf)
        end = np.full(n, last.window_steps, dtype=np.int64)
    else:
        potentials = None
        pred, first = ttfs_prediction(out)
        if prog.early_stop:
            # the frame ends after step k* of the first output spike: no spike of any layer after k*
            # happens (predictions are unchanged: they depend on steps <= k* only)
            cut = first[:, None]
            fire_steps = [np.where((cut >= 0) & (fs > cut), NO_SPIKE, fs).astype(np.int32) for fs in fire_steps]
            out = fire_steps[-1]
            end = np.where(first >= 0, first, max(l.window_steps for l in prog.layers)).astype(np.int64)
        else:
            end = np.full(n, max(l.window_steps for l in prog.layers), dtype=np.int64)
        spike_times = np.where(out >= 0, out * (prog.alpha / prog.steps_per_alpha), np.inf)
    counters = _counters(prog, layer_inputs, end)
    return ReferenceResult(fire_steps=fire_steps, spike_times=spike_times, predictions=pred,
                           potentials=potentials, counters=counters)


def _counters(prog: YosoProgram, layer_inputs: list[np.ndarray], end: np.ndarray) -> dict:
    """Spikes delivered to each layer (step <= min(window, end of frame)) and synaptic events (x fan-out)."""
    per_layer = []
    for lay, st in zip(prog.layers, layer_inputs):
        last = np.minimum(end, lay.window_steps)[:, None]
        ok = (st >= 0) & (st <= last)
        delivered = ok.sum(axis=1)
        # targets per input: every neuron (dense), the neurons whose window holds it (conv, pool)
        if lay.kind == "dense":
            events = float(delivered.mean() * lay.n_out) if len(delivered) else 0.0
        else:
            fan = np.diff(targets(lay.window())[0])
            events = float((ok.astype(np.int64) @ fan).mean()) if len(delivered) else 0.0
        per_layer.append({"layer": lay.index, "input_spikes_mean": float(delivered.mean()) if len(delivered) else 0.0,
                          "synaptic_events_mean": events})
    total = sum(p["synaptic_events_mean"] for p in per_layer)
    return {"per_layer": per_layer, "synaptic_events_mean": total, "frames": int(layer_inputs[0].shape[0])}
