"""Torch API of the exact ReL-PSP neuron (spike times in, spike times out, autograd-capable).

Spike times are float tensors; +inf means "no spike". A neuron j fires at (Eq. 11)

    t_j = (theta + sum_{i in C} w_ij t_i) / W_C,   W_C = sum_{i in C} w_ij,   C = {i : t_i < t_j}

iff its potential V_j(t) = sum_i w_ij max(0, t - t_i) reaches theta at some t <= t_max; else
t_j = +inf. Backward (Eq. 13-14), causal inputs only, silent outputs get no gradient:

    dt_j/dw_ij = (t_i - t_j) / W_C,      dt_j/dt_i = w_ij / W_C.

CPU tensors run the compiled numba kernels (`stdbp.kernels.cpu`), other devices the chunked
vectorised torch path (`stdbp.kernels.torch_path`); `backend="torch"` forces the latter on CPU.

`delta_clip` (default off) clamps delta_j = g_j / W_C to [-delta_clip, delta_clip] (tiny W_C
makes it huge). `stats` (a dict, optional) receives cheap counters: `fired_fraction`,
`n_outputs`, `n_fired` from forward and an accumulated `n_clipped` from backward.
"""

from __future__ import annotations

import math

import torch

from stdbp.kernels import backend_for


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"expected an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _record(stats: dict | None, t_out: torch.Tensor) -> None:
    if stats is None:
        return
    n_fired = int(torch.isfinite(t_out).sum())
    stats["n_outputs"] = t_out.numel()
    stats["n_fired"] = n_fired
    stats["fired_fraction"] = n_fired / max(1, t_out.numel())


def _add_clipped(stats: dict | None, n: int) -> None:
    if stats is not None:
        stats["n_clipped"] = stats.get("n_clipped", 0) + int(n)


class _DenseFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t_in, weight, threshold, t_max, backend, delta_clip, stats):
        t_out, wsum = backend.dense_forward(t_in, weight, threshold, t_max)
        ctx.save_for_backward(t_in, weight, t_out, wsum)
        ctx.backend, ctx.delta_clip, ctx.stats = backend, delta_clip, stats
        ctx.mark_non_differentiable(wsum)
        return t_out, wsum

    @staticmethod
    def backward(ctx, grad_out, _grad_wsum):
        t_in, weight, t_out, wsum = ctx.saved_tensors
        need_t, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g_t, g_w, n_clip = ctx.backend.dense_backward(
            grad_out.contiguous(), t_in, weight, t_out, wsum, ctx.delta_clip, need_t, need_w)
        _add_clipped(ctx.stats, n_clip)
        return (g_t if need_t else None, g_w.to(weight.dtype) if need_w else None,
                None, None, None, None, None)


class _ConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t_in, weight, stride, padding, threshold, t_max, backend, delta_clip, stats):
        t_out, wsum = backend.conv2d_forward(t_in, weight, stride, padding, threshold, t_max)
        ctx.save_for_backward(t_in, weight, t_out, wsum)
        ctx.stride, ctx.padding = stride, padding
        ctx.backend, ctx.delta_clip, ctx.stats = backend, delta_clip, stats
        ctx.mark_non_differentiable(wsum)
        return t_out, wsum

    @staticmethod
    def backward(ctx, grad_out, _grad_wsum):
        t_in, weight, t_out, wsum = ctx.saved_tensors
        need_t, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g_t, g_w, n_clip = ctx.backend.conv2d_backward(
            grad_out.contiguous(), t_in, weight, t_out, wsum, ctx.stride, ctx.padding,
            ctx.delta_clip, need_t, need_w)
        _add_clipped(ctx.stats, n_clip)
        return (g_t if need_t else None, g_w.to(weight.dtype) if need_w else None,
                None, None, None, None, None, None, None)


def _check(t_in: torch.Tensor, weight: torch.Tensor, ndim: int, what: str) -> None:
    if t_in.dim() != ndim:
        raise ValueError(f"{what}: t_in must have {ndim} dimensions, got shape {tuple(t_in.shape)}")
    if not t_in.is_floating_point():
        raise TypeError(f"{what}: spike times must be a float tensor, got {t_in.dtype}")
    if t_in.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{what}: only float32 and float64 are supported, got {t_in.dtype}")


def relpsp_dense(t_in: torch.Tensor, weight: torch.Tensor, threshold: float = 1.0,
                 t_max: float = math.inf, *, backend: str = "auto",
                 delta_clip: float | None = None, stats: dict | None = None,
                 return_wsum: bool = False):
    """Fully connected ReL-PSP layer: t_in [B, in], weight [out, in] -> t_out [B, out].

    `return_wsum=True` also returns the causal weight sums W_C (0 where silent).
    """
    _check(t_in, weight, 2, "relpsp_dense")
    if weight.dim() != 2 or weight.shape[1] != t_in.shape[1]:
        raise ValueError(f"relpsp_dense: weight shape {tuple(weight.shape)} does not match "
                         f"t_in shape {tuple(t_in.shape)} (expected [out, {t_in.shape[1]}])")
    impl = backend_for(t_in.device.type, backend)
    t_out, wsum = _DenseFn.apply(t_in.contiguous(), weight, float(threshold), float(t_max),
                                 impl, delta_clip, stats)
    _record(stats, t_out)
    return (t_out, wsum) if return_wsum else t_out


def relpsp_conv2d(t_in: torch.Tensor, weight: torch.Tensor, stride=1, padding=0,
                  threshold: float = 1.0, t_max: float = math.inf, *, backend: str = "auto",
                  delta_clip: float | None = None, stats: dict | None = None,
                  return_wsum: bool = False):
    """ReL-PSP convolution (no bias): t_in [B, C, H, W], weight [O, C, kh, kw] -> [B, O, H', W'].

    Each output is the dense ReL-PSP neuron over its receptive field; padding is +inf.
    """
    _check(t_in, weight, 4, "relpsp_conv2d")
    if weight.dim() != 4 or weight.shape[1] != t_in.shape[1]:
        raise ValueError(f"relpsp_conv2d: weight shape {tuple(weight.shape)} does not match "
                         f"t_in shape {tuple(t_in.shape)}")
    stride, padding = _pair(stride), _pair(padding)
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"relpsp_conv2d: bad stride {stride} or padding {padding}")
    kh, kw = weight.shape[2:]
    if t_in.shape[2] + 2 * padding[0] < kh or t_in.shape[3] + 2 * padding[1] < kw:
        raise ValueError(f"relpsp_conv2d: kernel {(kh, kw)} larger than padded input "
                         f"{tuple(t_in.shape[2:])} + padding {padding}")
    impl = backend_for(t_in.device.type, backend)
    t_out, wsum = _ConvFn.apply(t_in.contiguous(), weight, stride, padding, float(threshold),
                                float(t_max), impl, delta_clip, stats)
    _record(stats, t_out)
    return (t_out, wsum) if return_wsum else t_out


class _MinPoolFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t_in, kernel, stride, padding, backend):
        t_out, idx = backend.min_pool2d_forward(t_in, kernel, stride, padding)
        ctx.save_for_backward(idx, t_out)
        ctx.in_shape, ctx.backend = t_in.shape, backend
        return t_out

    @staticmethod
    def backward(ctx, grad_out):
        from stdbp.kernels import torch_path

        idx, t_out = ctx.saved_tensors
        if ctx.backend is not torch_path:  # numba: drops silent windows itself
            return ctx.backend.min_pool2d_backward(grad_out.contiguous(), t_out, idx,
                                                   ctx.in_shape), None, None, None, None
        # a window with no spike passes no gradient (its "earliest" input is arbitrary)
        g = torch.where(torch.isfinite(t_out), grad_out, torch.zeros_like(grad_out))
        return torch_path.min_pool2d_backward(g, idx, ctx.in_shape), None, None, None, None


def spike_min_pool2d(t_in: torch.Tensor, kernel_size, stride=None, padding=0, *,
                     backend: str = "auto") -> torch.Tensor:
    """Min-pool over spike times (earliest spike wins, = ANN max-pool); padding is +inf.

    The gradient of each window goes to its earliest input only. CPU tensors: the numba
    kernels (`backend="torch"` forces the torch form), other devices torch.
    """
    if t_in.dim() != 4:
        raise ValueError(f"spike_min_pool2d: expected [B, C, H, W], got {tuple(t_in.shape)}")
    kernel = _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    impl = backend_for(t_in.device.type, backend)
    return _MinPoolFn.apply(t_in, kernel, stride, _pair(padding), impl)


def encode_intensity(pixels, alpha: float = 1.0, silent_zero: bool = False,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel intensities s in 0..255 -> spike times t = alpha * (255 - s) / 255 (paper V-A).

    `silent_zero=True`: black pixels (s == 0) never spike (+inf). Any shape; no gradient.
    """
    s = torch.as_tensor(pixels)
    if s.is_floating_point() and ((s < 0) | (s > 255)).any():
        raise ValueError("encode_intensity: pixel values must lie in 0..255")
    s = s.to(dtype)
    t = (alpha * (255.0 - s)) / 255.0
    if silent_zero:
        t = torch.where(s == 0, torch.full_like(t, math.inf), t)
    return t
