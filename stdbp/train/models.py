"""The SNN of an architecture (ReL-PSP layers) and the equal-shape, bias-free ANN.

SNN: `nn.Sequential(SpikeEncoder, [RelPspConv2d | SpikeMinPool2d]..., [Flatten], RelPspLinear...)`
taking uint8 pixels shaped as in the ONNX contract ([N, 784] dense-only, [N, 1, 28, 28] with
convolutions) and returning output spike times [N, classes]. Index 0 is always the encoder, so
the trainer can jitter input times between `model[0]` and `model[1:]`.

ANN: the same topology, no biases, ReLU clipped to [0, 1] (`ClipReLU`) after every hidden layer,
max-pool where the SNN min-pools, input x = s / 255 (= 1 - t / alpha). Its weights initialise the
SNN (`ann_init`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stdbp.train.arch import Arch


class ClipReLU(nn.Module):
    """min(max(x, 0), 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, 0.0, 1.0)


def build_snn(arch: Arch, *, threshold: float = 1.0, t_max: float = math.inf, alpha: float = 1.0,
              silent_zero: bool = False, delta_clip: float | None = None, backend: str = "auto",
              dtype: torch.dtype = torch.float32, neuron: str = "relpsp", tau: float = 1.0
              ) -> nn.Sequential:
    """`neuron="alpha"`: alpha-PSP dense layers (`stdbp.alpha`, time constant `tau`) instead of
    ReL-PSP ones; dense architectures only."""
    from stdbp.nn import RelPspConv2d, RelPspLinear, SpikeEncoder, SpikeMinPool2d

    if neuron == "alpha":
        from stdbp.alpha import AlphaPspLinear

        if arch.is_conv:
            from stdbp.errors import UserError

            raise UserError(f"--arch {arch.text}", "the alpha-PSP neuron has dense layers only",
                            "use a fully connected architecture (e.g. 784-800-10) or --neuron relpsp")

        def RelPspLinear(n_in, n_out, *, threshold, t_max, backend, delta_clip, dtype):  # noqa: N802
            return AlphaPspLinear(n_in, n_out, threshold=threshold, t_max=t_max, tau=tau,
                                  delta_clip=delta_clip, dtype=dtype)
    elif neuron != "relpsp":
        raise ValueError(f"unknown neuron {neuron!r} (relpsp or alpha)")

    mods: list[nn.Module] = [SpikeEncoder(alpha=alpha, silent_zero=silent_zero, dtype=dtype)]
    flattened = not arch.is_conv
    for layer in arch.layers:
        if layer.kind == "conv":
            mods.append(RelPspConv2d(layer.in_shape[0], layer.size, layer.kernel, threshold=threshold,
                                     t_max=t_max, backend=backend, delta_clip=delta_clip, dtype=dtype))
        elif layer.kind == "pool":
            mods.append(SpikeMinPool2d(layer.kernel))
        else:
            if not flattened:
                mods.append(nn.Flatten(1))
                flattened = True
            mods.append(RelPspLinear(layer.in_shape[0], layer.size, threshold=threshold, t_max=t_max,
                                     backend=backend, delta_clip=delta_clip, dtype=dtype))
    return nn.Sequential(*mods)


def build_ann(arch: Arch, dropout: float = 0.0) -> nn.Sequential:
    """`dropout` > 0 adds nn.Dropout after hidden dense activations (ANN training only; the
    conversion copies Linear/Conv2d weights and ignores it)."""
    mods: list[nn.Module] = []
    flattened = not arch.is_conv
    last = len(arch.layers) - 1
    for i, layer in enumerate(arch.layers):
        if layer.kind == "conv":
            mods += [nn.Conv2d(layer.in_shape[0], layer.size, layer.kernel, bias=False), ClipReLU()]
        elif layer.kind == "pool":
            mods.append(nn.MaxPool2d(layer.kernel))
        else:
            if not flattened:
                mods.append(nn.Flatten(1))
                flattened = True
            mods.append(nn.Linear(layer.in_shape[0], layer.size, bias=False))
            if i != last:
                mods.append(ClipReLU())
                if dropout > 0:
                    mods.append(nn.Dropout(dropout))
    return nn.Sequential(*mods)


def weight_layers(model: nn.Sequential) -> list[nn.Module]:
    """The layers with weights, in order (SNN: ReL-PSP layers; ANN: Conv2d / Linear)."""
    return [m for m in model if getattr(m, "weight", None) is not None and isinstance(m.weight, nn.Parameter)]


def spiking_layer_names(model: nn.Sequential) -> list[str]:
    names = []
    for m in weight_layers(model):
        kind = "conv" if m.weight.dim() == 4 else "fc"
        names.append(f"{kind}{len(names) + 1}")
    return names


def predict(t_out: torch.Tensor) -> torch.Tensor:
    """argmin over output times, ties to the lowest index; all-silent rows predict -1."""
    pred = torch.argmin(t_out, dim=1)  # torch.argmin returns the first minimal index
    silent = ~torch.isfinite(t_out).any(dim=1)
    return torch.where(silent, torch.full_like(pred, -1), pred)


def pixels_to_ann_input(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.to(torch.float32) / 255.0
