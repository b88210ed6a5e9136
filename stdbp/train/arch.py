"""The paper's architecture notation, e.g. `784-800-10` or `28x28-16C5-P2-32C5-P2-800-128-10`.

Grammar (tokens separated by `-`):
- the first token is the input: `N` (a flat vector of N inputs) or `HxW` / `CxHxW` (an image);
- `<n>C<k>`: convolution with n output channels, k x k kernel, stride 1, no padding ("valid");
- `P<k>`: min-pool over spike times (= ANN max-pool), k x k window, stride k;
- `<n>`: a fully connected layer with n neurons; the last one is the output layer.
An image followed directly by a dense layer is flattened (`28x28-800-10` == `784-800-10` on
MNIST). Convolution and pooling need an image input and cannot follow a dense layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stdbp.errors import UserError

_CONV = re.compile(r"^(\d+)[cC](\d+)$")
_POOL = re.compile(r"^[pP](\d+)$")
_DENSE = re.compile(r"^(\d+)$")
_IMAGE = re.compile(r"^(\d+)[xX](\d+)(?:[xX](\d+))?$")


@dataclass(frozen=True)
class Layer:
    kind: str          # "conv", "pool" or "dense"
    size: int          # output channels (conv) or neurons (dense); 0 for pool
    kernel: int = 0    # kernel (conv) or window (pool)
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class Arch:
    text: str
    input_shape: tuple[int, ...]   # (N,) or (C, H, W)
    layers: tuple[Layer, ...]

    @property
    def is_conv(self) -> bool:
        return any(layer.kind != "dense" for layer in self.layers)

    @property
    def n_inputs(self) -> int:
        n = 1
        for d in self.input_shape:
            n *= d
        return n

    @property
    def n_classes(self) -> int:
        return self.layers[-1].size

    @property
    def pixel_shape(self) -> tuple[int, ...]:
        """Shape of one sample as fed to the model (ONNX contract: [784] dense, [1,28,28] conv)."""
        return self.input_shape if self.is_conv else (self.n_inputs,)

    def spiking_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.kind != "pool"]


def _bad(text: str, item: str) -> UserError:
    return UserError(f"--arch {text!r}", item,
                     "use the paper's notation, e.g. 784-800-10 or 28x28-16C5-P2-32C5-P2-800-128-10")


def parse_arch(text: str) -> Arch:
    """Parse the notation; a string it cannot parse raises a UserError naming the bad token."""
    tokens = [t.strip() for t in str(text).strip().split("-")]
    if len(tokens) < 2 or any(not t for t in tokens):
        raise _bad(text, "need an input and at least one layer, separated by '-'")
    first = tokens[0]
    if m := _IMAGE.match(first):
        dims = [int(g) for g in m.groups() if g is not None]
        shape: tuple[int, ...] = (1, *dims) if len(dims) == 2 else tuple(dims)
    elif m := _DENSE.match(first):
        shape = (int(m.group(1)),)
    else:
        raise _bad(text, f"input token {first!r} is neither N nor HxW nor CxHxW")
    if any(d <= 0 for d in shape):
        raise _bad(text, f"input token {first!r} has a zero size")
    input_shape = shape
    layers: list[Layer] = []
    for pos, tok in enumerate(tokens[1:], start=1):
        if m := _CONV.match(tok):
            n, k = int(m.group(1)), int(m.group(2))
            if len(shape) != 3:
                raise _bad(text, f"convolution {tok!r} (token {pos}) needs an image input, got shape {list(shape)}")
            c, h, w = shape
            if n <= 0 or k <= 0 or k > h or k > w:
                raise _bad(text, f"convolution {tok!r} (token {pos}) does not fit a {h}x{w} input")
            out = (n, h - k + 1, w - k + 1)
            layers.append(Layer("conv", n, k, shape, out))
        elif m := _POOL.match(tok):
            k = int(m.group(1))
            if len(shape) != 3:
                raise _bad(text, f"pooling {tok!r} (token {pos}) needs an image input, got shape {list(shape)}")
            c, h, w = shape
            if k <= 0 or k > h or k > w:
                raise _bad(text, f"pooling {tok!r} (token {pos}) does not fit a {h}x{w} input")
            out = (c, h // k, w // k)
            layers.append(Layer("pool", 0, k, shape, out))
        elif m := _DENSE.match(tok):
            n = int(m.group(1))
            if n <= 0:
                raise _bad(text, f"layer {tok!r} (token {pos}) has no neurons")
            flat = 1
            for d in shape:
                flat *= d
            layers.append(Layer("dense", n, 0, (flat,), (n,)))
        else:
            raise _bad(text, f"cannot parse token {tok!r} (token {pos}); expected N, <n>C<k> or P<k>")
        shape = layers[-1].out_shape
    if layers[-1].kind != "dense":
        raise _bad(text, "the last layer must be a dense output layer (the classes)")
    if layers[-1].size < 2:
        raise _bad(text, "the output layer needs at least 2 classes")
    return Arch(str(text).strip(), input_shape, tuple(layers))
