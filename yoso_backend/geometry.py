"""Connectivity of conv and min-pool layers, shared by the compiler, the reference and the emulator.

Neurons are numbered in ONNX flat order (channel-major): neuron (c, y, x) of a [C, H, W] map has
index (c * H + y) * W + x, so a layer's PE slices (contiguous index ranges) hold whole rows of
one channel after another. For every input i (a neuron of the layer below) the layer's *targets*
are the neurons whose window contains i:

    conv  (kernel [C_out, C_in, kh, kw], strides [sh, sw], pads [top, left, bottom, right]):
          out (o, y, x) <- in (c, y*sh + a - top, x*sw + b - left)   for c < C_in, a < kh, b < kw,
          weight position (o, c, a, b); inputs outside the map are padding (they never spike)
    pool  (window [kh, kw], strides, pads): out (c, y, x) <- in (c, y*sh + a - top, x*sw + b - left)

`targets(...)` returns them as CSR sorted by input, then by target index (ascending: the order in
which a PE updates its neurons and the destination order of the packets). numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("dense", "conv", "pool")


def out_size(n: int, k: int, s: int, lo: int, hi: int) -> int:
    return (n + lo + hi - k) // s + 1


@dataclass(frozen=True)
class Window:
    """Geometry of a conv or pool layer: input map [C, H, W] -> output map [C_out, H', W']."""

    kind: str                    # "conv" or "pool"
    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        kh, kw = self.kernel
        return (self.out_channels, out_size(h, kh, self.strides[0], self.pads[0], self.pads[2]),
                out_size(w, kw, self.strides[1], self.pads[1], self.pads[3]))

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def kernel_words(self) -> int:
        """Weights of one output channel (conv): C_in * kh * kw; a pool has none."""
        return self.in_shape[0] * self.kernel[0] * self.kernel[1] if self.kind == "conv" else 0

    def channel_of(self, neuron: np.ndarray | int):
        h, w = self.out_shape[1:]
        return np.asarray(neuron) // (h * w)

    def to_list(self) -> list[int]:
        """The 14 geometry words of program.bin (and the manifest)."""
        return [*self.in_shape, *self.out_shape, *self.kernel, *self.strides, *self.pads]

    @classmethod
    def from_list(cls, kind: str, words) -> "Window":
        w = [int(v) for v in words]
        return cls(kind, (w[0], w[1], w[2]), w[3], (w[6], w[7]), (w[8], w[9]), (w[10], w[11], w[12], w[13]))


def _pairs(g: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (input, target, weight position) triples, unsorted; weight position -1 for a pool."""
    c_in, h, w = g.in_shape
    o_n, oh, ow = g.out_shape
    kh, kw = g.kernel
    sh, sw = g.strides
    top, left = g.pads[0], g.pads[1]
    y, x, a, b = np.meshgrid(np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw), indexing="ij")
    iy = y * sh + a - top
    ix = x * sw + b - left
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    y, x, a, b, iy, ix = (v[ok] for v in (y, x, a, b, iy, ix))  # one entry per (y, x, a, b) in the map
    if g.kind == "pool":
        c = np.arange(c_in)[:, None]
        inp = (c * h + iy) * w + ix
        tgt = (c * oh + y) * ow + x
        return inp.ravel(), tgt.ravel(), np.full(inp.size, -1, np.int64)
    o = np.arange(o_n)[:, None, None]
    c = np.arange(c_in)[None, :, None]
    inp = (c * h + iy) * w + ix + 0 * o
    tgt = (o * oh + y) * ow + x + 0 * c
    wpos = ((o * c_in + c) * kh + a) * kw + b
    return inp.ravel(), tgt.ravel(), wpos.ravel()


def targets(g: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (off [n_in + 1], target [nnz], weight position [nnz]) sorted by input, then target."""
    inp, tgt, wpos = _pairs(g)
    order = np.lexsort((tgt, inp))
    inp, tgt, wpos = inp[order], tgt[order], wpos[order]
    off = np.zeros(g.n_in + 1, np.int64)
    np.cumsum(np.bincount(inp, minlength=g.n_in), out=off[1:])
    return off, tgt.astype(np.int64), wpos.astype(np.int64)


def fan_in(g: Window) -> np.ndarray:
    """Inputs per output neuron (fewer at padded borders)."""
    _inp, tgt, _w = _pairs(g)
    return np.bincount(tgt, minlength=g.n_out)


def toeplitz(g: Window, kernel: np.ndarray) -> np.ndarray:
    """The conv layer as the equivalent dense matrix [n_out, n_in] (zeros where not connected)."""
    inp, tgt, wpos = _pairs(g)
    m = np.zeros((g.n_out, g.n_in), np.int64)
    m[tgt, inp] = np.asarray(kernel, np.int64).reshape(-1)[wpos]
    return m


def pool_index(g: Window) -> np.ndarray:
    """int [n_out, kh * kw]: the inputs of each pooled neuron, -1 where the window is padding."""
    inp, tgt, _w = _pairs(g)
    order = np.lexsort((inp, tgt))
    inp, tgt = inp[order], tgt[order]
    counts = np.bincount(tgt, minlength=g.n_out)
    out = np.full((g.n_out, g.kernel[0] * g.kernel[1]), -1, np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(len(tgt)) - np.repeat(start, counts)
    out[tgt, col] = inp
    return out
