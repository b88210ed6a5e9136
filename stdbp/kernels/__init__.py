"""ReL-PSP kernels: `cpu` (numba, numpy in/out) and `torch_path` (vectorised torch, for GPUs).

`backend_for(device, name)` returns a module-like object with the torch-level interface used by
`stdbp.functional`:

    dense_forward(t_in, weight, threshold, t_max) -> (t_out, wsum)
    dense_backward(grad_out, t_in, weight, t_out, wsum, delta_clip) -> (g_t, g_w, n_clipped)
    conv2d_forward(t_in, weight, stride, padding, threshold, t_max) -> (t_out, wsum)
    conv2d_backward(grad_out, t_in, weight, t_out, wsum, stride, padding, delta_clip)
        -> (g_t, g_w, n_clipped)

"numba" wraps `stdbp.kernels.cpu` (CPU tensors only); "torch" is `stdbp.kernels.torch_path`.
"auto" picks numba for CPU tensors and torch elsewhere. numba is imported lazily.
"""

from __future__ import annotations

import importlib.util

BACKENDS = ("auto", "numba", "torch")
_HAVE_NUMBA_ADAPTER = importlib.util.find_spec("stdbp.kernels.numba_adapter") is not None


def backend_for(device_type: str, name: str = "auto"):
    if name not in BACKENDS:
        raise ValueError(f"unknown ReL-PSP backend {name!r}; choose one of {BACKENDS}")
    if name == "auto":
        name = "numba" if (device_type == "cpu" and _HAVE_NUMBA_ADAPTER) else "torch"
    if name == "numba":
        if device_type != "cpu":
            raise ValueError("the numba backend runs on CPU tensors only; use backend='torch'")
        from stdbp.kernels import numba_adapter

        return numba_adapter
    from stdbp.kernels import torch_path

    return torch_path
