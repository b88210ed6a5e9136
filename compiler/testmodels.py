"""Small deterministic ai.stdbp models for tests, goldens and examples (onnx + numpy, no torch).

`dense_model([784, 800, 10], seed=0)` builds SpikeEncode -> RelPspDense x L with random weights
scaled so that a typical input makes a good share of the neurons fire.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def dense_weights(sizes: Sequence[int], seed: int = 0, gain: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for m, n in zip(sizes[:-1], sizes[1:]):
        # mean positive so that sum_i w_ji > 0 for most neurons (they fire); spread ~ 1/sqrt(m)
        w = rng.normal(loc=1.0 / m, scale=gain / math.sqrt(m), size=(n, m))
        out.append(w.astype(np.float32))
    return out


def dense_model(sizes: Sequence[int], seed: int = 0, *, threshold: float = 0.1, t_max: float = math.inf,
                alpha: float = 1.0, silent_zero: int = 0, weights: list[np.ndarray] | None = None,
                gain: float = 1.0):
    """An onnx.ModelProto: pixels uint8 [N, sizes[0]] -> spike_times [N, sizes[-1]]."""
    from stdbp.export.graph import Layer, build_model, metadata

    ws = weights if weights is not None else dense_weights(sizes, seed, gain)
    layers = [Layer("SpikeEncode", {"alpha": float(alpha), "silent_zero": int(silent_zero)})]
    for w in ws:
        layers.append(Layer("RelPspDense", {"threshold": float(threshold), "t_max": float(t_max)}, np.asarray(w, np.float32)))
    meta = metadata(encoding={"alpha": alpha, "silent_zero": silent_zero}, threshold=threshold, t_max=t_max,
                    dataset="synthetic", accuracy=None, arch="-".join(map(str, sizes)))
    return build_model(layers, [sizes[0]], meta=meta, name="dense-" + "-".join(map(str, sizes)))


def conv_model():
    """A tiny conv network (for the "not supported yet" error)."""
    from stdbp.export.graph import Layer, build_model

    rng = np.random.default_rng(0)
    layers = [Layer("SpikeEncode", {"alpha": 1.0, "silent_zero": 0}),
              Layer("RelPspConv2d", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [0, 0, 0, 0],
                                     "threshold": 1.0, "t_max": math.inf},
                    rng.normal(size=(2, 1, 3, 3)).astype(np.float32)),
              Layer("Flatten"),
              Layer("RelPspDense", {"threshold": 1.0, "t_max": math.inf},
                    rng.normal(size=(3, 2 * 26 * 26)).astype(np.float32))]
    return build_model(layers, [1, 28, 28])


def cnn_model(in_shape=(1, 12, 12), layers=(("conv", 3, 3, 1, 0), ("pool", 2, 2, 0), ("dense", 10)), seed: int = 0,
              *, threshold: float = 0.5, t_max: float = math.inf, silent_zero: int = 0, gain: float = 1.0):
    """A small random conv network: pixels uint8 [N, C, H, W] -> spike_times.

    layers: ("conv", out_channels, kernel, stride, pad) | ("pool", kernel, stride, pad) | ("dense", n);
    a Flatten is inserted before the first dense layer.
    """
    from stdbp.export.graph import Layer, build_model

    from yoso_backend.geometry import out_size

    rng = np.random.default_rng(seed)
    c, h, w = in_shape
    out = [Layer("SpikeEncode", {"alpha": 1.0, "silent_zero": int(silent_zero)})]
    flat = None
    for spec in layers:
        if spec[0] == "conv":
            _k, o, k, s, p = spec
            fan = c * k * k
            wt = rng.normal(loc=1.0 / fan, scale=gain / math.sqrt(fan), size=(o, c, k, k)).astype(np.float32)
            out.append(Layer("RelPspConv2d", {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4,
                                              "threshold": float(threshold), "t_max": float(t_max)}, wt))
            c, h, w = o, out_size(h, k, s, p, p), out_size(w, k, s, p, p)
        elif spec[0] == "pool":
            _k, k, s, p = spec
            out.append(Layer("SpikeMinPool", {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4}))
            h, w = out_size(h, k, s, p, p), out_size(w, k, s, p, p)
        else:
            if flat is None:
                out.append(Layer("Flatten"))
                flat = c * h * w
            n = spec[1]
            wt = rng.normal(loc=1.0 / flat, scale=gain / math.sqrt(flat), size=(n, flat)).astype(np.float32)
            out.append(Layer("RelPspDense", {"threshold": float(threshold), "t_max": float(t_max)}, wt))
            flat = n
    return build_model(out, list(in_shape), name="cnn-test")
