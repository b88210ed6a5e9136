"""torch.nn wrappers of `stdbp.functional` (ReL-PSP layers, min-pool, encoder).

Parameters are plain weights named `weight` (no bias). The hyper-parameters are attributes
(threshold, t_max, stride, padding, kernel_size, alpha, silent_zero) so that the ONNX exporter
can read them. Each ReL-PSP layer keeps cheap statistics of its last forward call in
`self.stats` (`fired_fraction`, `n_fired`, `n_outputs`; `n_clipped` accumulates over backward
calls until `reset_stats()`); `last_fired_fraction` is a shortcut.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stdbp import functional as SF


def _pair(v) -> tuple[int, int]:
    return SF._pair(v)


class _RelPspBase(nn.Module):
    def __init__(self, threshold: float, t_max: float, backend: str, delta_clip, record_stats):
        super().__init__()
        self.threshold = float(threshold)
        self.t_max = float(t_max)
        self.backend = backend
        self.delta_clip = delta_clip
        self.record_stats = bool(record_stats)
        self.stats: dict = {}

    @property
    def last_fired_fraction(self) -> float | None:
        return self.stats.get("fired_fraction")

    def reset_stats(self) -> None:
        self.stats = {}

    def _stats(self):
        return self.stats if self.record_stats else None


class RelPspLinear(_RelPspBase):
    """Fully connected ReL-PSP layer; weight [out_features, in_features] like nn.Linear."""

    def __init__(self, in_features: int, out_features: int, threshold: float = 1.0,
                 t_max: float = math.inf, *, backend: str = "auto",
                 delta_clip: float | None = None, record_stats: bool = True,
                 dtype=None, device=None):
        super().__init__(threshold, t_max, backend, delta_clip, record_stats)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype,
                                               device=device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # positive mean so that a fresh layer fires: uniform in [0, 2 / in] * threshold * 4
        bound = 4.0 * self.threshold / max(1, self.in_features)
        nn.init.uniform_(self.weight, -0.5 * bound, 1.5 * bound)

    def forward(self, t_in: torch.Tensor) -> torch.Tensor:
        return SF.relpsp_dense(t_in, self.weight, self.threshold, self.t_max,
                               backend=self.backend, delta_clip=self.delta_clip,
                               stats=self._stats())

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"threshold={self.threshold}, t_max={self.t_max}")


class RelPspConv2d(_RelPspBase):
    """ReL-PSP convolution (no bias); weight [out_channels, in_channels, kh, kw]; +inf padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 threshold: float = 1.0, t_max: float = math.inf, *, backend: str = "auto",
                 delta_clip: float | None = None, record_stats: bool = True,
                 dtype=None, device=None):
        super().__init__(threshold, t_max, backend, delta_clip, record_stats)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size,
                                               dtype=dtype, device=device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 4.0 * self.threshold / max(1, fan_in)
        nn.init.uniform_(self.weight, -0.5 * bound, 1.5 * bound)

    def forward(self, t_in: torch.Tensor) -> torch.Tensor:
        return SF.relpsp_conv2d(t_in, self.weight, self.stride, self.padding, self.threshold,
                                self.t_max, backend=self.backend, delta_clip=self.delta_clip,
                                stats=self._stats())

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, threshold={self.threshold}, "
                f"t_max={self.t_max}")


class SpikeMinPool2d(nn.Module):
    """Earliest-spike pooling (min over spike times); gradient to the earliest input."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = _pair(padding)

    def forward(self, t_in: torch.Tensor) -> torch.Tensor:
        return SF.spike_min_pool2d(t_in, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class SpikeEncoder(nn.Module):
    """uint8 pixels -> spike times alpha * (255 - s) / 255; silent_zero: black never spikes."""

    def __init__(self, alpha: float = 1.0, silent_zero: bool = False,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.alpha = float(alpha)
        self.silent_zero = bool(silent_zero)
        self.dtype = dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return SF.encode_intensity(pixels, self.alpha, self.silent_zero, self.dtype)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, silent_zero={self.silent_zero}"
