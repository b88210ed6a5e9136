"""Vectorised torch form of the exact ReL-PSP first spike (the GPU path; also runs on CPU).

Neuron (Eq. 8-11): V_j(t) = sum_i w_ij * max(0, t - t_i); it fires once, at the first t with
V_j(t) >= theta, t <= t_max, and then

    t_j = (theta + sum_{i in C} w_ij t_i) / W_C,   W_C = sum_{i in C} w_ij,   C = {i : t_i < t_j}.

Algorithm (per sample, all outputs at once):
  1. sort the input times t_(0) <= t_(1) <= ...; +inf inputs carry nothing;
  2. prefix sums over the sorted inputs W_k = sum_{m<=k} w_(m), T_k = sum_{m<=k} w_(m) t_(m);
  3. V is linear on the interval [t_(k), e_k], e_k = min(t_(k+1), t_max). The spike is in the
     first non-empty interval whose END value reaches the threshold, W_k e_k - T_k >= theta
     (robust: no division, never selects W_k <= 0); then t = (theta + T_k) / W_k, clamped
     into (t_(k), e_k] so that the causal mask t_i < t_out recomputed in backward is exactly
     the set used here (rounding can otherwise move t across an input time).
  4. backward (Eq. 13-14): delta_j = g_j / W_C, mask_ij = t_i < t_j,
     dL/dw_ij = sum_b mask (t_i - t_j) delta_j,  dL/dt_i = sum_j mask w_ij delta_j.

A plain vectorisation needs batch x in x out temporaries; every function works on batch chunks
of at most `chunk_elems` elements per temporary, so memory stays bounded. Infinite times are
replaced by 0 (and their weights masked) before any product: no inf * 0, no NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Elements per (chunk, in, out) temporary. CPU: 2**22 floats = 16 MiB in float32 (cache
# friendly); accelerators: 2**25 (128 MiB, fewer kernel launches). About 6 temporaries live at
# once, so the peak is ~6x this. None = pick by device.
DEFAULT_CHUNK_ELEMS: int | None = None
_CPU_CHUNK, _GPU_CHUNK = 1 << 22, 1 << 25


def _chunk(batch: int, per_sample: int, chunk_elems: int | None, device) -> int:
    if chunk_elems is None:
        chunk_elems = DEFAULT_CHUNK_ELEMS
    if chunk_elems is None:
        chunk_elems = _CPU_CHUNK if torch.device(device).type == "cpu" else _GPU_CHUNK
    return max(1, min(batch, chunk_elems // max(1, per_sample)))


def dense_forward(t_in: torch.Tensor, weight: torch.Tensor, threshold: float = 1.0,
                  t_max: float = math.inf, chunk_elems: int | None = None):
    """Exact first-spike times. t_in [B, in], weight [out, in] -> (t_out [B, out], wsum [B, out]).

    wsum is the causal weight sum W_C of each fired output, 0 where the output is silent.
    """
    t_in = t_in.detach()
    weight = weight.detach().to(t_in.dtype)
    batch, n_in = t_in.shape
    n_out = weight.shape[0]
    t_out = torch.empty(batch, n_out, dtype=t_in.dtype, device=t_in.device)
    wsum = torch.empty_like(t_out)
    if batch == 0:
        return t_out, wsum
    if n_in == 0:
        return t_out.fill_(math.inf), wsum.zero_()
    wt = weight.t().contiguous()  # [in, out]
    inf = torch.tensor(math.inf, dtype=t_in.dtype, device=t_in.device)
    tmax = torch.tensor(float(t_max), dtype=t_in.dtype, device=t_in.device)
    step = _chunk(batch, n_in * n_out, chunk_elems, t_in.device)
    for s in range(0, batch, step):
        ts, idx = torch.sort(t_in[s:s + step], dim=1)
        fin = torch.isfinite(ts)
        ts0 = torch.where(fin, ts, torch.zeros_like(ts))
        ws = wt[idx] * fin.unsqueeze(-1)  # [b, in, out], silent inputs weigh nothing
        w_cum = ws.cumsum(1)
        t_cum = (ws * ts0.unsqueeze(-1)).cumsum(1)
        del ws
        nxt = torch.cat([ts[:, 1:], inf.expand(ts.shape[0], 1)], dim=1)
        end = torch.minimum(nxt, tmax)
        valid = fin & (ts < end)  # non-empty interval starting at a real spike before t_max
        end_fin = torch.isfinite(end)
        end0 = torch.where(end_fin, end, torch.zeros_like(end))
        reach = (w_cum * end0.unsqueeze(-1) - t_cum) >= threshold
        # an unbounded last interval reaches any threshold iff the slope is positive
        cond = torch.where(end_fin.unsqueeze(-1), reach, torch.ones_like(reach))
        cond &= (w_cum > 0) & valid.unsqueeze(-1)
        fired = cond.any(1)
        k = cond.to(torch.uint8).argmax(1, keepdim=True)  # first True
        w_sel = w_cum.gather(1, k).squeeze(1)
        t_sel = t_cum.gather(1, k).squeeze(1)
        del w_cum, t_cum, cond, reach
        w_safe = torch.where(fired, w_sel, torch.ones_like(w_sel))
        t = (threshold + t_sel) / w_safe
        lo = torch.nextafter(ts0.gather(1, k.squeeze(1)), inf)
        hi = end.gather(1, k.squeeze(1))
        t = torch.minimum(torch.maximum(t, lo), hi)
        t_out[s:s + step] = torch.where(fired, t, inf)
        wsum[s:s + step] = torch.where(fired, w_sel, torch.zeros_like(w_sel))
    return t_out, wsum


def dense_backward(grad_out: torch.Tensor, t_in: torch.Tensor, weight: torch.Tensor,
                   t_out: torch.Tensor, wsum: torch.Tensor, delta_clip: float | None = None,
                   need_grad_t: bool = True, need_grad_w: bool = True,
                   chunk_elems: int | None = None):
    """Eq. 13-14 over the causal set -> (grad_t_in [B, in], grad_weight [out, in], n_clipped).

    n_clipped counts the deltas g/W_C whose magnitude exceeded `delta_clip` (0 if no clip).
    A gradient that is not needed is skipped (returned as zeros).
    """
    dtype = t_in.dtype
    weight = weight.detach().to(dtype)
    grad_out = grad_out.to(dtype)
    fired = torch.isfinite(t_out) & (wsum != 0)
    delta = torch.where(fired, grad_out / torch.where(fired, wsum, torch.ones_like(wsum)),
                        torch.zeros_like(wsum))
    n_clipped = 0
    if delta_clip is not None:
        over = delta.abs() > delta_clip
        n_clipped = int(over.sum())
        delta = delta.clamp(-delta_clip, delta_clip)
    batch, n_in = t_in.shape
    n_out = weight.shape[0]
    grad_t = torch.zeros_like(t_in)
    grad_w = torch.zeros(n_in, n_out, dtype=dtype, device=t_in.device)  # transposed
    if batch == 0 or n_in == 0:
        return grad_t, grad_w.t().contiguous(), n_clipped
    ti0 = torch.where(torch.isfinite(t_in), t_in, torch.zeros_like(t_in))
    to0 = torch.where(fired, t_out, torch.zeros_like(t_out))
    # mask (t_in < t_out) & fired: an inf t_out gets the sentinel -inf so nothing is below it
    t_cmp = torch.where(fired, t_out, torch.full_like(t_out, -math.inf))
    wt = weight.t()
    step = _chunk(batch, n_in * n_out, chunk_elems, t_in.device)
    for s in range(0, batch, step):
        sl = slice(s, s + step)
        mask = (t_in[sl].unsqueeze(-1) < t_cmp[sl].unsqueeze(1)).to(dtype)  # [b, in, out]
        d = delta[sl]
        # sum_b mask * t_i * delta_j  -  sum_b mask * t_j * delta_j
        if need_grad_w:
            grad_w += torch.einsum("bio,bi,bo->io", mask, ti0[sl], d)
            grad_w -= torch.einsum("bio,bo->io", mask, to0[sl] * d)
        if need_grad_t:
            grad_t[sl] = torch.einsum("bio,io,bo->bi", mask, wt, d)
    return grad_t, grad_w.t().contiguous(), n_clipped


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _patches(t_in: torch.Tensor, kernel: tuple[int, int], stride, padding):
    """[B, C, H, W] -> ([B*L, C*kh*kw] patches, (H', W')); padding is +inf ("no spike")."""
    ph, pw = _pair(padding)
    if ph or pw:
        t_in = F.pad(t_in, (pw, pw, ph, ph), value=math.inf)
    batch, _, height, width = t_in.shape
    kh, kw = kernel
    sh, sw = _pair(stride)
    oh, ow = (height - kh) // sh + 1, (width - kw) // sw + 1
    cols = F.unfold(t_in, kernel, stride=(sh, sw))  # [B, C*kh*kw, L]
    return cols.transpose(1, 2).reshape(batch * oh * ow, -1), (oh, ow)


def conv2d_forward(t_in, weight, stride=(1, 1), padding=(0, 0), threshold=1.0,
                   t_max=math.inf, chunk_elems: int | None = None):
    """ReL-PSP convolution = the dense neuron applied to each (+inf padded) patch.

    t_in [B, C, H, W], weight [O, C, kh, kw] -> (t_out [B, O, H', W'], wsum [B, O, H', W']).
    """
    batch = t_in.shape[0]
    n_o = weight.shape[0]
    kernel = (weight.shape[2], weight.shape[3])
    cols, (oh, ow) = _patches(t_in.detach(), kernel, stride, padding)
    t, w = dense_forward(cols, weight.reshape(n_o, -1), threshold, t_max, chunk_elems)
    shape = lambda x: x.reshape(batch, oh, ow, n_o).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return shape(t), shape(w)


def conv2d_backward(grad_out, t_in, weight, t_out, wsum, stride=(1, 1), padding=(0, 0),
                    delta_clip: float | None = None, need_grad_t: bool = True,
                    need_grad_w: bool = True, chunk_elems: int | None = None):
    """Backward of conv2d_forward -> (grad_t_in [B,C,H,W], grad_weight [O,C,kh,kw], n_clipped)."""
    batch, n_c, height, width = t_in.shape
    n_o = weight.shape[0]
    kernel = (weight.shape[2], weight.shape[3])
    ph, pw = _pair(padding)
    cols, (oh, ow) = _patches(t_in.detach(), kernel, stride, padding)
    flat = lambda x: x.permute(0, 2, 3, 1).reshape(batch * oh * ow, n_o)  # noqa: E731
    g_cols, g_w, n_clipped = dense_backward(flat(grad_out), cols, weight.reshape(n_o, -1),
                                            flat(t_out), flat(wsum), delta_clip, need_grad_t,
                                            need_grad_w, chunk_elems)
    g_cols = g_cols.reshape(batch, oh * ow, -1).transpose(1, 2)
    g_pad = F.fold(g_cols, (height + 2 * ph, width + 2 * pw), kernel, stride=_pair(stride))
    g_t = g_pad[:, :, ph:ph + height, pw:pw + width].contiguous()
    return g_t, g_w.reshape(weight.shape), n_clipped


def min_pool2d_forward(t_in: torch.Tensor, kernel, stride=None, padding=(0, 0)):
    """Earliest spike per window -> (t_out, argmin flat index into H*W of each (b, c) plane)."""
    kernel = _pair(kernel)
    stride = kernel if stride is None else _pair(stride)
    neg, idx = F.max_pool2d(-t_in, kernel, stride, _pair(padding), return_indices=True)
    return -neg, idx


def min_pool2d_backward(grad_out: torch.Tensor, argmin: torch.Tensor, in_shape) -> torch.Tensor:
    """Route each window's gradient to its earliest input (summed where windows overlap)."""
    batch, n_c, height, width = in_shape
    g = torch.zeros(batch, n_c, height * width, dtype=grad_out.dtype, device=grad_out.device)
    g.scatter_add_(2, argmin.reshape(batch, n_c, -1), grad_out.reshape(batch, n_c, -1))
    return g.reshape(in_shape)
