"""Compiled CPU kernels of the exact ReL-PSP neuron (numba, numpy in / numpy out).

Used by the torch autograd functions (CPU tensors) and by the ONNX Runtime custom op, so they
take and return plain numpy arrays (float32 or float64, C-contiguous; other layouts are
converted). Every kernel splits its work (over the batch, or over the output neurons) across a
thread pool running `nogil` numba code (see `_neuron`), and never builds a batch x in x out
tensor. Threads: `STDBP_NUM_THREADS`, default the CPUs this process may use.

Forward, per sample (event driven): sort the input times; walk them in time order and keep for
every output the running sums W_j = sum w_ij, T_j = sum w_ij t_i of the inputs seen so far.
After each group of simultaneous inputs, V_j is linear up to e = min(next input time, t_max);
an unfired output whose END value reaches the threshold, W_j e - T_j >= theta (never true for
W_j <= 0), fires at t_j = (theta + T_j) / W_j, clamped into (t_group, e] so the causal set
{i : t_i < t_j} recomputed by backward is exactly the set used here. The walk stops once every
output fired or the next input is at/after t_max (an input at t_max adds nothing by t_max).
When every input spikes, the last group (MNIST's black pixels at alpha) is taken from the
weights' column sums, G = sum_i w_ij - W_j, instead of being summed row by row.
Dense layers with more than 32 outputs whose inputs sit mostly in big groups of equal times
(other than that last one) walk cache-sized blocks of outputs (`_dense`), sharing the group
sums between samples; the results are bit-identical to the plain walk.

Backward (Eq. 13-14): delta_j = g_j / W_C (0 for silent outputs), and with the causal mask
t_i < t_j recomputed from the saved times,
    dL/dw_ij = sum_b (t_i - t_j) delta_j [t_i < t_j],   dL/dt_i = sum_j w_ij delta_j [t_i < t_j].
No infinite time is ever multiplied, so no NaN. Dense (`_dense_grad`): when most pairs (b, j)
have their output firing after every input of the sample (mask all ones on the spiking
inputs; in the input layer that is nearly all of them), those go through two BLAS matrix
products on `STDBP_NUM_THREADS` threads (same sums, BLAS rounding order: equal to the event
form within float rounding, not bit for bit); the other pairs through the masked event kernel.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from stdbp.kernels._blas import blas_threads
from stdbp.kernels._conv import (conv_forward_ranked, min_pool_backward,
                                 patch_offsets)
from stdbp.kernels._conv_grad import conv_backward_fired
from stdbp.kernels._conv_scatter import conv_forward_scatter
from stdbp.kernels._dense import dense_forward_rows, pack_blocks
from stdbp.kernels._dense_grad import (augmented_times, causal_split, masked_block,
                                       scatter_columns, spiking_columns, zero_silent)
from stdbp.kernels._neuron import active, column_sums, gather_patch, scatter_add_patch, walk
from stdbp.threads import num_threads  # also read by the bench scripts as cpu.num_threads

_FLOATS = (np.float32, np.float64)


# ---------------------------------------------------------------------------------------------
# input checks shared by the wrappers (cheap; they keep the jitted code free of surprises)
def _as_float(a, name: str, dtype=None, check_nan: bool = False) -> np.ndarray:
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in _FLOATS else np.float32
    a = np.ascontiguousarray(a, dtype=dtype)
    if not a.flags.writeable:
        # read-only buffers (e.g. from ONNX Runtime) would make numba compile a second
        # specialisation of every kernel; a copy is far cheaper than that compile
        a = a.copy()
    if check_nan:
        # spike times: finite or +inf (no spike); weights: finite. One compiled pass.
        if not _all_in_range(a.reshape(-1), name == "weight"):
            raise ValueError(f"{name} contains NaN or infinite values (spike times must be "
                             f"finite or +inf, weights finite)")
    return a


@njit(cache=True, nogil=True)
def _all_in_range(a, finite):
    """Every value > -inf (so not NaN either) and, if `finite`, < +inf too."""
    hi = np.inf
    bad = False  # a bool "or" reduction: vectorised, no early exit needed
    if finite:
        for i in range(a.shape[0]):
            bad |= not (abs(a[i]) < hi)
    else:
        for i in range(a.shape[0]):
            bad |= not (a[i] > -hi)
    return not bad


def _params(dtype, threshold: float, t_max: float) -> np.ndarray:
    """[theta, t_max, +inf] in the working dtype (keeps float32 math in float32)."""
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    if math.isnan(t_max):
        raise ValueError("t_max must not be NaN")
    return np.array([threshold, t_max, np.inf], dtype=dtype)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list, np.ndarray)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


# ---------------------------------------------------------------------------------------------
# threads: contiguous ranges of the work on a shared pool (the jitted code releases the GIL)
_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        # a forked child (e.g. a data-loader worker) inherits the pool object but not its
        # threads: it must start its own
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=num_threads(),
                                       thread_name_prefix="stdbp-kernel")
            _POOL_PID = os.getpid()
        return _POOL


def _split(n: int) -> list[tuple[int, int, int]]:
    """[(task, lo, hi)] covering range(n) in at most num_threads() contiguous pieces."""
    k = max(1, min(num_threads(), n))
    return [(i, n * i // k, n * (i + 1) // k) for i in range(k)]


def _run(fn, parts, *args) -> None:
    """fn(*args, task, lo, hi) for every part; on the pool when there is more than one."""
    if len(parts) == 1:
        fn(*args, *parts[0])
        return
    futures = [_pool().submit(fn, *args, *part) for part in parts]
    for f in futures:
        f.result()


# ---------------------------------------------------------------------------------------------
# dense
@njit(cache=True, nogil=True)
def _dense_forward_rows_narrow(t_in, wT, s_all, p, t_out, wsum, task, lo, hi):
    """Unblocked walk, one sample at a time: for a few outputs (per-group overheads dominate
    the blocked kernel there) and whenever `_use_blocked` says no. Same arithmetic as the
    blocked kernel: bit-identical results."""
    n_out = wT.shape[1]
    w_acc = np.empty(n_out, dtype=t_in.dtype)
    t_acc = np.empty(n_out, dtype=t_in.dtype)
    g_acc = np.empty(n_out, dtype=t_in.dtype)
    for b in range(lo, hi):
        order, n_act = active(t_in[b], p[1])
        walk(t_in[b], order, n_act, wT, s_all, p, w_acc, t_acc, g_acc, t_out[b], wsum[b])


_NARROW = 32  # at most this many outputs: the unblocked walk
_SHARE_ROWS = 16  # samples that estimate the tied share of a batch
_TIED_SHARE = 0.5  # the blocked kernel when at least this share of active inputs are in big ties
# "auto" (measured choice), or "blocked" / "walk" to force a forward path (tests)
FORWARD_PATH = "auto"
# "auto" (BLAS products when most fired pairs are all-causal), "always" or "never" (tests)
BACKWARD_PRODUCTS = "auto"


@njit(cache=True, nogil=True)
def _tied_share(t_in, t_max, min_group, n_rows):
    """Share of the inputs spiking before t_max that sit in groups of >= min_group equal
    times, over the first n_rows samples (an estimate for the batch: what the blocked
    kernel's shared group sums would save). A sample's last group is left out when every
    input spikes: both kernels take it from the column sums. Counts values with a small
    open-addressing table per sample, no sort."""
    n_b, n_in = t_in.shape
    size = 1
    while size < 2 * n_in:
        size *= 2
    keys = np.empty(size, t_in.dtype)
    counts = np.zeros(size, np.int64)
    tied = 0
    active_n = 0
    for b in range(min(n_b, n_rows)):
        counts[:] = 0
        n_act = 0
        top = -np.inf
        for i in range(n_in):
            v = t_in[b, i]
            if not v < t_max:
                continue
            n_act += 1
            top = max(top, v)
            h = (int(v * 1048576.0) * 2654435761) & (size - 1)
            while counts[h] != 0 and keys[h] != v:
                h = (h + 1) & (size - 1)
            keys[h] = v
            counts[h] += 1
        for h in range(size):
            c = counts[h]
            if n_act == n_in and c > 1 and keys[h] == top:
                n_act -= c  # the last group, every input spiking: free in both kernels
            elif c >= min_group:
                tied += c
        active_n += n_act
    return tied / active_n if active_n else 0.0


def _use_blocked(t_in, t_max) -> bool:
    """The blocked kernel (`_dense`) shares work between samples and outputs when most inputs
    arrive in big groups of equal times that must be summed (MNIST's black pixels at alpha
    when some input never spikes). Measured at 784 -> 800, batch 128, one thread: with every
    pixel spiking (the black group from the column sums) the walk takes 2.9 ms, the blocked
    kernel 4.8; with silent black pixels 2.5 and 4.6 ms; on jittered training batches and
    trained networks, where outputs fire early, the walk with its early exit was 1.2-2.5x
    faster. (Random 512 -> 800 weights, outputs firing late: blocked 10.6, walk 13 ms.)"""
    if FORWARD_PATH != "auto":
        return FORWARD_PATH == "blocked"
    from stdbp.kernels._dense import MIN_SLOT

    return _tied_share(t_in, t_in.dtype.type(t_max), MIN_SLOT, _SHARE_ROWS) >= _TIED_SHARE


def dense_forward(t_in, weight, threshold: float = 1.0, t_max: float = math.inf):
    """t_in [B, in], weight [out, in] -> (t_out [B, out], wsum [B, out]); +inf = no spike."""
    t_in = _as_float(t_in, "t_in", check_nan=True)
    weight = _as_float(weight, "weight", t_in.dtype)
    if t_in.ndim != 2 or weight.ndim != 2 or weight.shape[1] != t_in.shape[1]:
        raise ValueError(f"dense_forward: shapes t_in {t_in.shape}, weight {weight.shape}")
    p = _params(t_in.dtype, threshold, t_max)
    batch, n_out = t_in.shape[0], weight.shape[0]
    t_out = np.empty((batch, n_out), dtype=t_in.dtype)
    wsum = np.empty((batch, n_out), dtype=t_in.dtype)
    if n_out <= _NARROW or not batch or not _use_blocked(t_in, t_max):
        w_t = np.ascontiguousarray(weight.T)
        s_all, finite = column_sums(w_t)  # also the weights' NaN check
        if not finite:
            _as_float(weight, "weight", check_nan=True)  # raises the common message
        if batch:
            _run(_dense_forward_rows_narrow, _split(batch), t_in, w_t, s_all, p, t_out, wsum)
    else:
        _as_float(weight, "weight", check_nan=True)
        _run(dense_forward_rows, _split(batch), t_in, pack_blocks(weight), p, t_out, wsum)
    return t_out, wsum


@njit(cache=True, nogil=True)
def _delta_rows(grad_out, t_out, wsum, clip, delta, n_clipped, task, lo, hi):
    """Rows [lo, hi) of [B, N]: delta = g / W where the output fired, else 0; |delta| > clip
    clamped to +-clip and counted into n_clipped[task] (clip = +inf: no clamp)."""
    inf = np.inf
    zero = delta.dtype.type(0.0)
    count = 0
    for b in range(lo, hi):
        for j in range(delta.shape[1]):
            w = wsum[b, j]
            d = grad_out[b, j] / w if (t_out[b, j] < inf and w != 0) else zero
            if d > clip:
                d = clip
                count += 1
            elif d < -clip:
                d = -clip
                count += 1
            delta[b, j] = d
    n_clipped[task] = count


def dense_delta(grad_out, t_out, wsum, delta_clip: float | None = None):
    """delta = g / W_C for fired outputs (0 otherwise), optionally clamped -> (delta, n_clipped).
    One compiled pass per thread over the batch (the numpy version took 5 passes, single
    threaded: 3 ms of a conv1 backward)."""
    delta = np.empty_like(t_out)
    if delta.size == 0:
        return delta, 0
    batch = t_out.shape[0]
    rows = (grad_out.reshape(batch, -1), t_out.reshape(batch, -1), wsum.reshape(batch, -1))
    clip = np.inf if delta_clip is None else float(delta_clip)
    parts = _split(batch)
    counts = np.zeros(len(parts), np.int64)
    _run(_delta_rows, parts, *rows, t_out.dtype.type(clip), delta.reshape(batch, -1), counts)
    return delta, int(counts.sum())


def dense_backward(grad_out, t_in, weight, t_out, wsum, delta_clip: float | None = None):
    """Eq. 13-14 over the causal set -> (grad_t_in [B, in], grad_weight [out, in])."""
    g_t, g_w, _ = dense_backward_counted(grad_out, t_in, weight, t_out, wsum, delta_clip)
    return g_t, g_w


def dense_backward_counted(grad_out, t_in, weight, t_out, wsum, delta_clip=None,
                           need_grad_t: bool = True, need_grad_w: bool = True):
    """dense_backward that also returns how many deltas the clip changed; a gradient that is
    not needed (need_grad_t / need_grad_w False) is skipped and returned as zeros.

    Pairs (b, j) whose mask is all ones (output j fires after every input of sample b) go
    through BLAS matrix products (see `_dense_grad.causal_split`; same sums, rounded in BLAS
    order); the others through the masked event kernel."""
    t_in = _as_float(t_in, "t_in")
    dt = t_in.dtype
    t_out = _as_float(t_out, "t_out", dt)
    grad_out = _as_float(grad_out, "grad_out", dt)
    wsum = _as_float(wsum, "wsum", dt)
    weight = _as_float(weight, "weight", dt)
    if not (need_grad_t or need_grad_w) or t_in.shape[0] == 0:
        _, n_clipped = dense_delta(grad_out, t_out, wsum, delta_clip)
        return np.zeros_like(t_in), np.zeros_like(weight), n_clipped
    batch = t_in.shape[0]
    # the clip in the working dtype, as numpy compares and clips in dense_delta
    clip = dt.type(-1.0 if delta_clip is None else delta_clip)
    d_aug, d_mixed, mu, every, n_all, n_mixed, n_clipped = causal_split(
        grad_out, wsum, clip, t_in, t_out)
    if n_all and (BACKWARD_PRODUCTS == "never" or (BACKWARD_PRODUCTS == "auto" and n_all < n_mixed)):
        # few all-causal pairs (outputs firing early, as in a trained network): the products
        # would cost a full matrix product for little; every pair through the masked kernel.
        # The split is disjoint (one of the two is 0 at every pair), so the sum is exact.
        d_mixed += d_aug[:batch]
        n_mixed, n_all = n_mixed + n_all, 0
    g_t = g_w = None
    if n_all:
        with blas_threads(num_threads()):
            if need_grad_t:
                g_t = d_aug[:batch] @ weight
                if not every:
                    zero_silent(g_t, t_in)
            if need_grad_w:
                n_in = t_in.shape[1]
                cols = np.arange(n_in) if every else spiking_columns(t_in)
                g_w = d_aug.T @ augmented_times(t_in, mu, every, cols)
                if cols.shape[0] < n_in:
                    g_w = scatter_columns(g_w, cols, n_in)
    g_t = np.zeros_like(t_in) if g_t is None else g_t
    g_w = np.zeros_like(weight) if g_w is None else g_w
    if n_mixed:
        parts = _split(weight.shape[0])
        m_w = np.zeros_like(weight) if n_all else g_w
        g_t_parts = np.zeros((len(parts), batch, t_in.shape[1]) if need_grad_t
                             else (len(parts), 0, 0), dtype=dt)
        _run(masked_block, parts, d_mixed, t_in, weight, t_out, m_w, g_t_parts,
             bool(need_grad_t), bool(need_grad_w))
        if need_grad_w and n_all:
            g_w += m_w
        if need_grad_t:
            g_t += g_t_parts.sum(axis=0) if len(parts) > 1 else g_t_parts[0]
    return g_t, g_w, n_clipped


# ---------------------------------------------------------------------------------------------
# conv2d: the dense neuron over every (+inf padded) receptive field
@njit(cache=True, nogil=True)
def _conv2d_forward_rows(t_in, wT, s_all, kh, kw, sh, sw, ph, pw, p, t_out, wsum, task, lo,
                         hi):
    n_o = wT.shape[1]
    oh, ow = t_out.shape[2], t_out.shape[3]
    vals = np.empty(wT.shape[0], dtype=t_in.dtype)
    w_acc = np.empty(n_o, dtype=t_in.dtype)
    t_acc = np.empty(n_o, dtype=t_in.dtype)
    g_acc = np.empty(n_o, dtype=t_in.dtype)
    t_buf = np.empty(n_o, dtype=t_in.dtype)
    w_buf = np.empty(n_o, dtype=t_in.dtype)
    for pos in range(lo, hi):
        b = pos // (oh * ow)
        y = (pos // ow) % oh
        x = pos % ow
        gather_patch(t_in, b, y * sh - ph, x * sw - pw, kh, kw, vals, p[2])
        order, n_act = active(vals, p[1])
        walk(vals, order, n_act, wT, s_all, p, w_acc, t_acc, g_acc, t_buf, w_buf)
        for o in range(n_o):
            t_out[b, o, y, x] = t_buf[o]
            wsum[b, o, y, x] = w_buf[o]


def _conv_args(t_in, weight, stride, padding, check_nan=False):
    t_in = _as_float(t_in, "t_in", check_nan=check_nan)
    weight = _as_float(weight, "weight", t_in.dtype, check_nan=check_nan)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    if t_in.ndim != 4 or weight.ndim != 4 or weight.shape[1] != t_in.shape[1]:
        raise ValueError(f"conv2d: shapes t_in {t_in.shape}, weight {weight.shape}")
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"conv2d: bad stride {(sh, sw)} or padding {(ph, pw)}")
    if t_in.shape[2] + 2 * ph < weight.shape[2] or t_in.shape[3] + 2 * pw < weight.shape[3]:
        raise ValueError(f"conv2d: kernel {weight.shape[2:]} larger than the padded input")
    return t_in, weight, sh, sw, ph, pw


def conv2d_forward(t_in, weight, stride=(1, 1), padding=(0, 0), threshold: float = 1.0,
                   t_max: float = math.inf):
    """t_in [B,C,H,W], weight [O,C,kh,kw] -> (t_out [B,O,H',W'], wsum); padding = +inf."""
    t_in, weight, sh, sw, ph, pw = _conv_args(t_in, weight, stride, padding, check_nan=True)
    p = _params(t_in.dtype, threshold, t_max)
    batch, _, height, width = t_in.shape
    n_o, _, kh, kw = weight.shape
    oh, ow = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    t_out = np.empty((batch, n_o, oh, ow), dtype=t_in.dtype)
    wsum = np.empty_like(t_out)
    w_t = np.ascontiguousarray(weight.reshape(n_o, -1).T)
    if t_out.size:
        s_all, _ = column_sums(w_t)
        path = _conv_forward_path(t_in.shape[1] * height * width, w_t.shape[0], oh * ow, n_o,
                                  t_in.itemsize)
        if path == "scatter":
            _run(conv_forward_scatter, _split(batch), t_in, w_t, s_all, kh, kw, sh, sw, ph, pw,
                 p, t_out, wsum)
        elif path == "ranked":
            kbase = patch_offsets(t_in.shape[1], height, width, kh, kw)
            _run(conv_forward_ranked, _split(batch), t_in, w_t, s_all, kbase, kh, kw, sh, sw,
                 ph, pw, p, t_out, wsum)
        else:
            _run(_conv2d_forward_rows, _split(batch * oh * ow), t_in, w_t, s_all, kh, kw, sh,
                 sw, ph, pw, p, t_out, wsum)
    return t_out, wsum


# "auto": the event-driven forward (`_conv_scatter`: a sample's spikes streamed once into
# every field that holds them) while its per-field state, five [H'W', O] arrays, fits in half
# a core's L2 (1 MiB; 2 MiB here); else the ranked forward (`_conv`: one argsort per sample)
# when a field's bitmap of the sample's inputs has at most as many 64-bit words as the field
# has entries; else the per-field kernel. "scatter" / "ranked" / "patch" force one path
# (tests, benchmarks). All three give the same spike times, bit for bit.
CONV_FORWARD = "auto"
SCATTER_STATE_BYTES = 1 << 20


def _conv_forward_path(n_flat: int, n_k: int, n_pos: int, n_o: int, itemsize: int) -> str:
    if CONV_FORWARD != "auto":
        return CONV_FORWARD
    if 5 * n_pos * n_o * itemsize <= SCATTER_STATE_BYTES:
        return "scatter"
    return "ranked" if (n_flat + 63) // 64 <= n_k else "patch"


# "auto": the backward over the fired outputs (`_conv_grad`: fields without a delta skipped
# before their gather); "patch": the per-field kernel below (tests, benchmarks). Both give the
# same gradients, bit for bit.
CONV_BACKWARD = "auto"


@njit(cache=True, nogil=True)
def _conv2d_backward_rows(delta, t_in, w2, kh, kw, sh, sw, ph, pw, t_out, g_t, g_w_parts,
                          need_t, task, lo, hi):
    """Samples b in [lo, hi): rows g_t[b] are this task's; weight gradient into its own
    g_w_parts[task] (summed by the caller)."""
    n_o, n_k = w2.shape
    oh, ow = t_out.shape[2], t_out.shape[3]
    g_w = g_w_parts[task]
    vals = np.empty(n_k, dtype=t_in.dtype)
    g_p = np.empty(n_k, dtype=t_in.dtype)
    inf = np.inf
    for b in range(lo, hi):
        for y in range(oh):
            for x in range(ow):
                y0, x0 = y * sh - ph, x * sw - pw
                gather_patch(t_in, b, y0, x0, kh, kw, vals, inf)
                g_p[:] = 0
                any_d = False
                for o in range(n_o):
                    d = delta[b, o, y, x]
                    if d == 0:
                        continue
                    any_d = True
                    tj = t_out[b, o, y, x]
                    for k in range(n_k):
                        g_w[o, k] += (min(vals[k], tj) - tj) * d
                    if need_t:
                        for k in range(n_k):
                            g_p[k] += w2[o, k] * d * (vals[k] < tj)
                if not any_d or not need_t:
                    continue
                scatter_add_patch(g_t, b, y0, x0, kh, kw, g_p)


def conv2d_backward_counted(grad_out, t_in, weight, t_out, wsum, stride=(1, 1),
                            padding=(0, 0), delta_clip: float | None = None,
                            need_grad_t: bool = True, need_grad_w: bool = True):
    """conv2d_backward that also returns how many deltas the clip changed (need_grad_t=False
    skips the input gradient, returned as zeros; the weight gradient is always computed)."""
    t_in, weight, sh, sw, ph, pw = _conv_args(t_in, weight, stride, padding)
    dt = t_in.dtype
    t_out = _as_float(t_out, "t_out", dt)
    delta, n_clipped = dense_delta(_as_float(grad_out, "grad_out", dt), t_out,
                                   _as_float(wsum, "wsum", dt), delta_clip)
    n_o, _, kh, kw = weight.shape
    w2 = np.ascontiguousarray(weight.reshape(n_o, -1))
    parts = _split(t_in.shape[0])
    g_t = np.zeros_like(t_in)
    g_w_parts = np.zeros((len(parts), n_o, w2.shape[1]), dtype=dt)
    if t_in.shape[0]:
        kernel = _conv2d_backward_rows if CONV_BACKWARD == "patch" else conv_backward_fired
        _run(kernel, parts, delta, t_in, w2, kh, kw, sh, sw, ph, pw, t_out, g_t, g_w_parts,
             bool(need_grad_t))
    return g_t, g_w_parts.sum(axis=0).reshape(weight.shape), n_clipped


def conv2d_backward(grad_out, t_in, weight, t_out, wsum, stride=(1, 1), padding=(0, 0),
                    delta_clip: float | None = None):
    """Eq. 13-14 for the convolution -> (grad_t_in [B,C,H,W], grad_weight [O,C,kh,kw])."""
    g_t, g_w, _ = conv2d_backward_counted(grad_out, t_in, weight, t_out, wsum, stride,
                                          padding, delta_clip)
    return g_t, g_w


# ---------------------------------------------------------------------------------------------
# min-pool: earliest spike per window (padding = +inf)
@njit(cache=True, nogil=True)
def _min_pool2d_rows(t_in, kh, kw, sh, sw, ph, pw, t_out, idx, task, lo, hi):
    n_c, height, width = t_in.shape[1], t_in.shape[2], t_in.shape[3]
    oh, ow = t_out.shape[2], t_out.shape[3]
    for bc in range(lo, hi):
        b, c = bc // n_c, bc % n_c
        for y in range(oh):
            for x in range(ow):
                best_i = -1
                best = t_in[b, c, 0, 0]
                for dy in range(kh):
                    yy = y * sh - ph + dy
                    if yy < 0 or yy >= height:
                        continue
                    for dx in range(kw):
                        xx = x * sw - pw + dx
                        if xx < 0 or xx >= width:
                            continue
                        v = t_in[b, c, yy, xx]
                        if best_i < 0 or v < best:
                            best, best_i = v, yy * width + xx
                t_out[b, c, y, x] = best
                idx[b, c, y, x] = best_i


def min_pool2d_forward(t_in, kernel, stride=None, padding=(0, 0)):
    """Earliest spike per window -> (t_out, argmin [int64, flat index into H*W]).

    Ties go to the first position in row-major window order; padding is +inf (never chosen
    unless the window has no spike, then the first real position is reported).
    """
    t_in = _as_float(t_in, "t_in")
    (kh, kw) = _pair(kernel)
    (sh, sw) = (kh, kw) if stride is None else _pair(stride)
    (ph, pw) = _pair(padding)
    if t_in.ndim != 4 or kh < 1 or kw < 1 or sh < 1 or sw < 1:
        raise ValueError(f"min_pool2d: shape {t_in.shape}, kernel {(kh, kw)}, stride {(sh, sw)}")
    if ph * 2 > kh or pw * 2 > kw or t_in.shape[2] + 2 * ph < kh or t_in.shape[3] + 2 * pw < kw:
        raise ValueError(f"min_pool2d: padding {(ph, pw)} / kernel {(kh, kw)} do not fit")
    batch, n_c, height, width = t_in.shape
    oh, ow = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    t_out = np.empty((batch, n_c, oh, ow), dtype=t_in.dtype)
    idx = np.empty((batch, n_c, oh, ow), dtype=np.int64)
    if t_out.size:
        _run(_min_pool2d_rows, _split(batch * n_c), t_in, kh, kw, sh, sw, ph, pw, t_out, idx)
    return t_out, idx


def min_pool2d_backward(grad_out, t_out, idx, in_shape):
    """Gradient of min_pool2d_forward: each window's grad_out to its earliest input (summed
    where windows overlap); a window with no spike passes none."""
    grad_out = _as_float(grad_out, "grad_out")
    t_out = _as_float(t_out, "t_out", grad_out.dtype)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    g_in = np.zeros(tuple(in_shape), dtype=grad_out.dtype)
    if grad_out.size:
        _run(min_pool_backward, _split(grad_out.shape[0] * grad_out.shape[1]), grad_out, t_out,
             idx, g_in)
    return g_in
