"""Random ai.stdbp networks (numpy only) shared by the ops, export and runtime tests."""

from __future__ import annotations

import math

import numpy as np

from stdbp.export.graph import Layer, build_model


def random_pixels(rng, n: int, shape, p_zero: float = 0.5, levels: int | None = None) -> np.ndarray:
    """uint8 pixels, a fraction p_zero black; `levels` quantises (more ties)."""
    x = rng.integers(1, 256, size=(n, *shape))
    if levels:
        x = (x // (256 // levels)) * (256 // levels)
        x = np.clip(x, 0, 255)
    x[rng.random(x.shape) < p_zero] = 0
    return x.astype(np.uint8)


def dense_layers(rng, sizes=(784, 64, 10), *, t_max=math.inf, silent_zero=1, alpha=1.0,
                 threshold=1.0, mean=3.0, spread=8.0) -> list[Layer]:
    layers = [Layer("SpikeEncode", {"alpha": float(alpha), "silent_zero": int(silent_zero)})]
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        # positive mean ~ fires after a few dozen inputs; spread gives silent neurons and ties
        w = rng.normal(mean * threshold / n_in, spread * threshold / n_in, size=(n_out, n_in))
        layers.append(Layer("RelPspDense", {"threshold": float(threshold), "t_max": float(t_max)},
                            w.astype(np.float32)))
    return layers


def conv_layers(rng, *, t_max=math.inf, silent_zero=0, pads=(0, 0, 0, 0), hidden=20, mean=2.0, spread=6.0) -> list[Layer]:
    """28x28 -> 4C5(pads) -> P2 -> 6C3 s2 -> P2 -> flatten -> hidden -> 10."""
    attrs = {"threshold": 1.0, "t_max": float(t_max)}

    def w(shape):
        fan = int(np.prod(shape[1:]))
        return rng.normal(mean / fan, spread / fan, size=shape).astype(np.float32)

    h = (28 + pads[0] + pads[2] - 5) + 1
    wd = (28 + pads[1] + pads[3] - 5) + 1
    h, wd = h // 2, wd // 2
    h, wd = (h - 3) // 2 + 1, (wd - 3) // 2 + 1
    h, wd = h // 2, wd // 2
    flat = 6 * h * wd
    return [
        Layer("SpikeEncode", {"alpha": 1.0, "silent_zero": int(silent_zero)}),
        Layer("RelPspConv2d", {**attrs, "kernel_shape": [5, 5], "strides": [1, 1], "pads": list(pads)}, w((4, 1, 5, 5))),
        Layer("SpikeMinPool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]}),
        Layer("RelPspConv2d", {**attrs, "kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 0, 0, 0]}, w((6, 4, 3, 3))),
        Layer("SpikeMinPool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]}),
        Layer("Flatten"),
        Layer("RelPspDense", attrs, w((hidden, flat))),
        Layer("RelPspDense", attrs, w((10, hidden))),
    ]


def numpy_forward(layers, pixels):
    """The network through the ops' numpy implementations."""
    from stdbp.ops import OPS

    t = pixels
    for layer in layers:
        if layer.op == "Flatten":
            t = t.reshape(t.shape[0], -1)
        else:
            args = (t,) if layer.weight is None else (t, layer.weight)
            t = OPS[layer.op].compute(*args, **layer.attrs)
    return t


def model(layers, input_shape=(784,)):
    return build_model(layers, input_shape)
