"""Torch-tensor face of the numba kernels (CPU tensors): the interface of `torch_path`."""

from __future__ import annotations

import torch

from stdbp.kernels import cpu


def _np(t: torch.Tensor):
    return t.detach().contiguous().numpy()


def _np_as(t: torch.Tensor, like: torch.Tensor):
    return t.detach().to(like.dtype).contiguous().numpy()


def dense_forward(t_in, weight, threshold=1.0, t_max=float("inf")):
    t_out, wsum = cpu.dense_forward(_np(t_in), _np_as(weight, t_in), threshold, t_max)
    return torch.from_numpy(t_out), torch.from_numpy(wsum)


def dense_backward(grad_out, t_in, weight, t_out, wsum, delta_clip=None, need_grad_t=True,
                   need_grad_w=True):
    g_t, g_w, n = cpu.dense_backward_counted(_np_as(grad_out, t_in), _np(t_in),
                                             _np_as(weight, t_in), _np(t_out), _np(wsum),
                                             delta_clip, need_grad_t, need_grad_w)
    return torch.from_numpy(g_t), torch.from_numpy(g_w), n


def conv2d_forward(t_in, weight, stride=(1, 1), padding=(0, 0), threshold=1.0,
                   t_max=float("inf")):
    t_out, wsum = cpu.conv2d_forward(_np(t_in), _np_as(weight, t_in), stride, padding,
                                     threshold, t_max)
    return torch.from_numpy(t_out), torch.from_numpy(wsum)


def conv2d_backward(grad_out, t_in, weight, t_out, wsum, stride=(1, 1), padding=(0, 0),
                    delta_clip=None, need_grad_t=True, need_grad_w=True):
    g_t, g_w, n = cpu.conv2d_backward_counted(_np_as(grad_out, t_in), _np(t_in),
                                              _np_as(weight, t_in), _np(t_out), _np(wsum),
                                              stride, padding, delta_clip, need_grad_t,
                                              need_grad_w)
    return torch.from_numpy(g_t), torch.from_numpy(g_w), n


def min_pool2d_forward(t_in, kernel, stride=None, padding=(0, 0)):
    t_out, idx = cpu.min_pool2d_forward(_np(t_in), kernel, stride, padding)
    return torch.from_numpy(t_out), torch.from_numpy(idx)


def min_pool2d_backward(grad_out, t_out, idx, in_shape):
    """Each window's gradient to its earliest input; silent windows pass none."""
    return torch.from_numpy(cpu.min_pool2d_backward(_np(grad_out), _np_as(t_out, grad_out),
                                                    _np(idx), in_shape))
