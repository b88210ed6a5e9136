"""The alpha-PSP neuron beside ReL-PSP: numpy kernels' wrappers, autograd function, nn layer.

    V_j(t) = sum_i w_ij K(t - t_i),   K(x) = (x / tau) e^(1 - x / tau)  (x > 0),  paper Eq. 2,

first threshold crossing found exactly (root-finding on each causal interval), gradients by the
implicit function theorem (paper Eq. 4-7). See `stdbp.kernels._alpha` for the algorithm.
Dense layers only; CPU only; float64 inside whatever the tensors' dtype (the output is cast
back; backward uses the float64 spike times forward saved, so its causal sets are forward's).
It is a research baseline for the paper's Figs. 7-9: it has no ONNX op and no YOSO mapping.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

NEURONS = ("relpsp", "alpha")
NO_EXPORT = ("alpha-PSP networks have no ONNX op and no YOSO mapping "
             "(export and compilation support ReL-PSP only)")


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64))


def _check(t_in, w, threshold, tau):
    if t_in.ndim != 2 or w.ndim != 2 or w.shape[1] != t_in.shape[1]:
        raise ValueError(f"alpha_dense: t_in {t_in.shape} and weight {w.shape} do not match "
                         f"(expected [B, in] and [out, in])")
    if not threshold > 0 or not tau > 0:
        raise ValueError(f"alpha_dense: threshold ({threshold}) and tau ({tau}) must be > 0")
    if np.isnan(t_in).any() or (t_in == -np.inf).any() or not np.isfinite(w).all():
        raise ValueError("alpha_dense: spike times must be finite or +inf, weights finite")


def dense_forward(t_in, weight, threshold: float = 1.0, t_max: float = math.inf,
                  tau: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """t_in [B, in], weight [out, in] -> (t_out [B, out], slope dV/dt at t_out [B, out]), float64."""
    from stdbp.kernels import _alpha
    from stdbp.kernels.cpu import _run, _split

    t_in, w = _f64(t_in), _f64(weight)
    _check(t_in, w, threshold, tau)
    wT = np.ascontiguousarray(w.T)
    t_out = np.empty((t_in.shape[0], w.shape[0]))
    slope = np.empty_like(t_out)
    _run(_alpha.forward_rows, _split(t_in.shape[0]), t_in, wT, float(threshold), float(t_max),
         float(tau), t_out, slope)
    return t_out, slope


# "auto": the all-causal pairs through BLAS products, the rest through the event kernel;
# "never": every pair through the event kernel (tests compare the two)
BACKWARD_PRODUCTS = "auto"


def dense_backward(grad_out, t_in, weight, t_out, slope, tau: float = 1.0,
                   delta_clip: float | None = None, need_t: bool = True, need_w: bool = True):
    """-> (dL/dt_in [B, in], dL/dw [out, in], number of clipped deltas), float64.

    Pairs (b, j) whose output fires after every spiking input of the sample (in the input
    layer: nearly all) factor into matrix products, with E = e^((t_i - r)/tau) and
    D = delta_j e^(1 + (r - t_j)/tau) / tau:
        dL/dw = -(D t_out)^T E + D^T (E t_in),
        dL/dt = E / tau * ((tau + t_in) (D W) - (D t_out) W);
    the other pairs take the event kernel. Same sums, another rounding order."""
    from stdbp.kernels import _alpha
    from stdbp.kernels.cpu import _run, _split

    g, t_in, w = _f64(grad_out), _f64(t_in), _f64(weight)
    t_out, slope = _f64(t_out), _f64(slope)
    n_b = t_in.shape[0]
    parts = _split(n_b)
    dj = np.empty_like(t_out)
    ex = np.empty_like(t_in)
    direct = np.empty(n_b, np.bool_)
    full = np.empty(t_out.shape, np.bool_)
    clipped = np.zeros(len(parts), np.int64)
    clip = float(delta_clip) if delta_clip else -1.0
    _run(_alpha.deltas, parts, g, t_in, t_out, slope, float(tau), clip, dj, ex, direct, full,
         clipped)
    g_t = np.zeros_like(t_in)
    g_w = np.zeros((len(parts), w.shape[1], w.shape[0]))
    if BACKWARD_PRODUCTS != "never" and full.any():
        d_full = np.where(full, dj, 0.0)
        dj = np.where(full, 0.0, dj)
        t_fin = np.where(np.isfinite(t_out), t_out, 0.0)
        t_in0 = np.where(np.isfinite(t_in), t_in, 0.0)
        dt = d_full * t_fin
        from stdbp.kernels._blas import blas_threads
        from stdbp.threads import num_threads

        with blas_threads(num_threads()):
            if need_w:
                g_w[0] += (ex * t_in0).T @ d_full - ex.T @ dt
            if need_t:
                g_t += ex / tau * ((tau + t_in0) * (d_full @ w) - dt @ w)
    if dj.any():
        wT = np.ascontiguousarray(w.T)
        _run(_alpha.masked_rows, parts, dj, ex, direct, t_in, wT, t_out, float(tau), bool(need_t),
             bool(need_w), g_t, g_w)
    return g_t, np.ascontiguousarray(g_w.sum(axis=0).T), int(clipped.sum())


class _AlphaDenseFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t_in, weight, threshold, t_max, tau, delta_clip, stats):
        if t_in.device.type != "cpu":
            raise ValueError("alpha_dense runs on CPU tensors only")
        t_out, slope = dense_forward(t_in.detach().numpy(), weight.detach().numpy(),
                                     threshold, t_max, tau)
        t64, s64 = torch.from_numpy(t_out), torch.from_numpy(slope)
        ctx.save_for_backward(t_in, weight, t64, s64)
        ctx.tau, ctx.delta_clip, ctx.stats = tau, delta_clip, stats
        return t64.to(t_in.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        t_in, weight, t64, s64 = ctx.saved_tensors
        need_t, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g_t, g_w, n_clip = dense_backward(grad_out.detach().numpy(), t_in.detach().numpy(),
                                          weight.detach().numpy(), t64.numpy(), s64.numpy(),
                                          ctx.tau, ctx.delta_clip, need_t, need_w)
        if ctx.stats is not None:
            ctx.stats["n_clipped"] = ctx.stats.get("n_clipped", 0) + n_clip
        return (torch.from_numpy(g_t).to(t_in.dtype) if need_t else None,
                torch.from_numpy(g_w).to(weight.dtype) if need_w else None,
                None, None, None, None, None)


def alpha_dense(t_in: torch.Tensor, weight: torch.Tensor, threshold: float = 1.0,
                t_max: float = math.inf, tau: float = 1.0, *, delta_clip: float | None = None,
                stats: dict | None = None) -> torch.Tensor:
    """Fully connected alpha-PSP layer: t_in [B, in], weight [out, in] -> t_out [B, out]."""
    from stdbp.functional import _record

    out = _AlphaDenseFn.apply(t_in.contiguous(), weight, float(threshold), float(t_max),
                              float(tau), delta_clip, stats)
    _record(stats, out)
    return out


class AlphaPspLinear(nn.Module):
    """Fully connected alpha-PSP layer; weight [out_features, in_features]; like RelPspLinear
    (same `stats`, `reset_stats`, `threshold`, `t_max`) plus the PSP time constant `tau`."""

    def __init__(self, in_features: int, out_features: int, threshold: float = 1.0,
                 t_max: float = math.inf, tau: float = 1.0, *, delta_clip: float | None = None,
                 record_stats: bool = True, dtype=None, device=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.threshold, self.t_max, self.tau = float(threshold), float(t_max), float(tau)
        self.delta_clip = delta_clip
        self.record_stats = bool(record_stats)
        self.stats: dict = {}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype,
                                               device=device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the ReL-PSP layer's initialisation: positive mean, so that a fresh layer fires
        # (K peaks at 1, so a weight sum of about 2 reaches theta = 1 when inputs cluster)
        bound = 4.0 * self.threshold / max(1, self.in_features)
        nn.init.uniform_(self.weight, -0.5 * bound, 1.5 * bound)

    @property
    def last_fired_fraction(self) -> float | None:
        return self.stats.get("fired_fraction")

    def reset_stats(self) -> None:
        self.stats = {}

    def forward(self, t_in: torch.Tensor) -> torch.Tensor:
        return alpha_dense(t_in, self.weight, self.threshold, self.t_max, self.tau,
                           delta_clip=self.delta_clip,
                           stats=self.stats if self.record_stats else None)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"threshold={self.threshold}, t_max={self.t_max}, tau={self.tau}")
