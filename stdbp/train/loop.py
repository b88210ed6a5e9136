"""One STDBP epoch, evaluation, and the loss of Eq. 12.

Loss (Eq. 12): cross-entropy of softmax(-t_out). A silent output (t = +inf) enters the loss as
the stand-in time `t_max` (or, with an infinite window, one time unit after the latest finite
output of the batch) with zero gradient: it cannot move, but the target's and the other outputs'
gradients stay finite. Silent target outputs are counted.

Data parallel: every rank draws the same permutation (same seed) and takes rows
`rank::world` of each global batch; gradients are averaged with `all_reduce` before the
optimizer step, so W processes with batch B/W follow the single-process run with batch B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from stdbp.train.models import predict, weight_layers


class Diverged(RuntimeError):
    """The loss became NaN/inf or exploded; the run stops and keeps the last good checkpoint."""


def spike_loss(t_out: torch.Tensor, target: torch.Tensor, t_max: float = math.inf
               ) -> tuple[torch.Tensor, int]:
    """(mean cross-entropy of softmax(-t_out), number of silent target outputs)."""
    finite = torch.isfinite(t_out)
    if math.isfinite(t_max):
        stand_in = torch.full_like(t_out, t_max)
    else:
        latest = torch.where(finite, t_out, torch.zeros_like(t_out)).detach().amax(dim=1, keepdim=True)
        stand_in = (latest + 1.0).expand_as(t_out)
    t = torch.where(finite, t_out, stand_in.detach())
    loss = F.cross_entropy(-t, target)
    silent_targets = int((~finite.gather(1, target[:, None])).sum())
    return loss, silent_targets


def silent_target_push(t_hidden: torch.Tensor, weight: torch.Tensor, t_out: torch.Tensor,
                       target: torch.Tensor, threshold: float, t_horizon: float) -> torch.Tensor:
    """Opt-in rescue for silent target outputs (not in the paper, off by default).

    A silent target gets no gradient from Eq. 12, so an output that went silent for its own
    class can never come back. This term is the hinge on its potential at the horizon,
    mean_b [silent_b] * max(0, theta - V_k(T)),  V_k(T) = sum_i w_ki (T - t_i)_+ ,
    whose gradient raises the weights of the inputs that arrived before T (inputs detached,
    so only the output layer moves). T = t_max, or the latest input time + 1 if t_max = inf.
    """
    silent = ~torch.isfinite(t_out.detach().gather(1, target[:, None]))[:, 0]
    if not bool(silent.any()):
        return weight.sum() * 0.0
    th = t_hidden.detach()[silent]
    if not math.isfinite(t_horizon):
        t_horizon = float(torch.where(torch.isfinite(th), th, torch.zeros_like(th)).max()) + 1.0
    lead = torch.clamp(t_horizon - th, min=0.0)
    lead = torch.where(torch.isfinite(lead), lead, torch.zeros_like(lead))
    v = (lead * weight[target[silent]]).sum(dim=1)
    return torch.clamp(threshold - v, min=0.0).sum() / len(target)


def lr_at(epoch: int, epochs: int, lr: float, lr_final: float) -> float:
    """Exponential decay from `lr` (epoch 0) to `lr_final` (last epoch)."""
    if epochs <= 1 or lr_final is None or lr_final == lr:
        return lr
    return lr * (lr_final / lr) ** (epoch / (epochs - 1))


@dataclass
class EpochResult:
    loss: float
    train_accuracy: float
    n_samples: int
    silent_targets: int
    clipped_gradients: int
    fired_fraction: list[float] = field(default_factory=list)


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_sum(values: list[float], device) -> list[float]:
    import torch.distributed as dist

    rank, world = _world()
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _average_gradients(model: nn.Module) -> None:
    import torch.distributed as dist

    rank, world = _world()
    if world == 1:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def train_epoch(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                *, batch_size: int, t_max: float, shuffle_gen: torch.Generator,
                jitter: Callable[[torch.Tensor], torch.Tensor] | None = None, device="cpu",
                on_batch: Callable[[int, float, float], None] | None = None,
                divergence_loss: float = 1e4, push: float = 0.0,
                augment: Callable[..., torch.Tensor] | None = None) -> EpochResult:
    """One pass over (x, y) in shuffled global batches of `batch_size` (split over ranks).
    `augment` (e.g. `stdbp.data.RandomShift`) transforms the uint8 pixels before encoding,
    `jitter` the encoded spike times; both draw for the whole global batch and slice."""
    rank, world = _world()
    model.train()
    layers = weight_layers(model)
    for m in layers:
        m.reset_stats()
    perm = torch.randperm(len(y), generator=shuffle_gen)
    sums = [0.0, 0.0, 0.0, 0.0]  # loss*n, correct, n, silent targets
    fired = [0.0] * len(layers)
    n_batches = (len(y) + batch_size - 1) // batch_size
    for b in range(n_batches):
        gidx = perm[b * batch_size:(b + 1) * batch_size]
        idx = gidx[rank::world]
        if len(idx) == 0:
            continue
        pixels, target = x[idx].to(device), y[idx].to(device)
        if augment is not None:
            pixels = augment(pixels, slice(rank, None, world), len(gidx)) if world > 1 else augment(pixels)
        t = model[0](pixels)
        if jitter is not None:
            t = jitter(t, slice(rank, None, world), len(gidx)) if world > 1 else jitter(t)
        if push > 0:
            t_hidden = model[1:-1](t)
            t_out = model[-1](t_hidden)
        else:
            t_out = model[1:](t)
        loss, silent = spike_loss(t_out, target, t_max)
        if push > 0:
            out_layer = model[-1]
            loss = loss + push * silent_target_push(t_hidden, out_layer.weight, t_out, target,
                                                    out_layer.threshold, t_max)
        if not torch.isfinite(loss.detach()) or float(loss.detach()) > divergence_loss:
            raise Diverged(f"loss {float(loss):.4g} at batch {b + 1}/{n_batches}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _average_gradients(model)
        for p in model.parameters():
            if p.grad is not None and not torch.isfinite(p.grad).all():
                raise Diverged(f"non-finite gradient at batch {b + 1}/{n_batches}")
        optimizer.step()
        n = len(idx)
        correct = int((predict(t_out.detach()) == target).sum())
        sums[0] += float(loss.detach()) * n
        sums[1] += correct
        sums[2] += n
        sums[3] += silent
        for i, m in enumerate(layers):
            fired[i] += m.stats.get("fired_fraction", 0.0) * n
        if on_batch is not None:
            on_batch(n * world, sums[0] / sums[2], sums[1] / sums[2])
    clipped = sum(int(m.stats.get("n_clipped", 0)) for m in layers)
    tot = _all_reduce_sum(sums + fired + [float(clipped)], device)
    n = max(tot[2], 1.0)
    return EpochResult(loss=tot[0] / n, train_accuracy=tot[1] / n, n_samples=int(tot[2]),
                       silent_targets=int(tot[3]), clipped_gradients=int(tot[-1]),
                       fired_fraction=[f / n for f in tot[4:4 + len(layers)]])


def forward_collect(model: nn.Sequential, pixels: torch.Tensor) -> list[torch.Tensor]:
    """Spike times after every weight layer (hidden layers ..., output)."""
    outs = []
    t = model[0](pixels)
    for m in model[1:]:
        t = m(t)
        if getattr(m, "weight", None) is not None:
            outs.append(t)
    return outs


@torch.no_grad()
def evaluate(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 500,
             device="cpu", shard: bool = True) -> dict:
    """Accuracy, per-layer fired fraction (spikes / neuron-samples), dead fraction (neurons that
    fire for no sample), silent outputs, mean first output time. Sharded over ranks if `shard`."""
    rank, world = _world() if shard else (0, 1)
    model.eval()
    n_layers = len(weight_layers(model))
    ever: list[torch.Tensor | None] = [None] * n_layers
    spikes = [0.0] * n_layers
    neurons = [0] * n_layers
    correct = n = silent_rows = 0.0
    first_time = 0.0
    idx_all = torch.arange(len(y))[rank::world]
    for s in range(0, len(idx_all), batch_size):
        idx = idx_all[s:s + batch_size]
        outs = forward_collect(model, x[idx].to(device))
        for i, o in enumerate(outs):
            f = torch.isfinite(o)
            spikes[i] += float(f.sum())
            neurons[i] = o[0].numel()
            anyf = f.any(dim=0).reshape(-1)
            ever[i] = anyf if ever[i] is None else (ever[i] | anyf)
        t_out = outs[-1]
        pred = predict(t_out)
        correct += float((pred == y[idx].to(device)).sum())
        n += len(idx)
        silent_rows += float((pred < 0).sum())
        fin = torch.where(torch.isfinite(t_out), t_out, torch.zeros_like(t_out))
        first_time += float(torch.where(pred >= 0, t_out.min(dim=1).values, torch.zeros_like(fin[:, 0])).sum())
    ever_t = [e.to(torch.float64) if e is not None else torch.zeros(1, dtype=torch.float64) for e in ever]
    if world > 1:
        import torch.distributed as dist

        for e in ever_t:
            dist.all_reduce(e, op=dist.ReduceOp.MAX)
    tot = _all_reduce_sum([correct, n, silent_rows, first_time] + spikes, device)
    correct, n, silent_rows, first_time = tot[:4]
    spikes = tot[4:]
    n = max(n, 1.0)
    return {
        "accuracy": correct / n,
        "n": int(n),
        "fired_fraction": [spikes[i] / (n * max(1, neurons[i])) for i in range(n_layers)],
        "dead_fraction": [1.0 - float(e.mean()) for e in ever_t],
        "silent_output_rows": int(silent_rows),
        "mean_decision_time": first_time / max(1.0, n - silent_rows),
    }
