"""Figures of a training run, like the paper's Figures 6-9.

- `spike_times.png`  histograms of spike times per hidden layer and of the earliest output spike
                     over test images (Fig. 6);
- `gradients.png`    histograms of weight gradients per layer on a training batch (Fig. 7);
- `weights.png`      histograms of the weights per layer (Fig. 8);
- `dead_neurons.png` percentage of dead neurons (never fire on the test set) per layer over the
                     epochs, with the fired fraction (Fig. 9);
- `curves.png`       loss and train/test accuracy over the epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stdbp.fileio import atomic_write


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def _figure(n: int, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    fig.suptitle(title)
    return fig, axes[0]


def plot_metrics(metrics: list[dict], out: Path) -> list[Path]:
    snn = [r for r in metrics if r.get("phase") == "snn"]
    init = [r for r in metrics if r.get("phase") == "init"]
    rows = init + snn
    if not rows:
        return []
    epochs = [r["epoch"] for r in rows]
    names = rows[-1].get("layers") or [f"layer{i + 1}" for i in range(len(rows[-1]["dead_fraction"]))]
    fig, ax = _figure(2, "dead neurons (never fire on the test set) and fired fraction")
    for i, name in enumerate(names):
        ax[0].plot(epochs, [100 * r["dead_fraction"][i] for r in rows], marker="o", label=name)
        ax[1].plot(epochs, [100 * r["fired_fraction"][i] for r in rows], marker="o", label=name)
    ax[0].set(xlabel="epoch", ylabel="dead neurons (%)")
    ax[1].set(xlabel="epoch", ylabel="spikes / (neurons x images) (%)")
    ax[0].legend()
    paths = [_save(fig, out / "dead_neurons.png")]
    fig, ax = _figure(2, "training curves")
    if snn:
        ax[0].plot([r["epoch"] for r in snn], [r["loss"] for r in snn], marker="o")
    ax[0].set(xlabel="epoch", ylabel="loss (Eq. 12)")
    ax[1].plot(epochs, [100 * r["test_accuracy"] for r in rows], marker="o", label="test")
    if snn:
        ax[1].plot([r["epoch"] for r in snn], [100 * r["train_accuracy"] for r in snn], marker="o", label="train")
    val = [r for r in rows if "val_accuracy" in r]  # --val-split runs
    if val:
        ax[1].plot([r["epoch"] for r in val], [100 * r["val_accuracy"] for r in val], marker="o", label="validation")
    ax[1].set(xlabel="epoch", ylabel="accuracy (%)")
    ax[1].legend()
    paths.append(_save(fig, out / "curves.png"))
    return paths


def plot_model(model, x_test, y_test, x_train, y_train, names: list[str], out: Path, t_max: float,
               samples: int = 2000) -> list[Path]:
    from stdbp.train.loop import forward_collect, spike_loss
    from stdbp.train.models import weight_layers

    paths = []
    model.eval()
    with torch.no_grad():
        outs = forward_collect(model, x_test[:samples])
    fig, ax = _figure(len(outs), f"spike times over {min(samples, len(y_test))} test images")
    for i, (o, name) in enumerate(zip(outs, names)):
        last = i == len(outs) - 1
        t = o.min(dim=1).values if last else o.reshape(-1)
        t = t[torch.isfinite(t)].numpy()
        frac = len(t) / max(1, (o.shape[0] if last else o.numel()))
        ax[i].hist(t, bins=60, color="C1" if last else "C0")
        ax[i].set(xlabel="spike time", ylabel="count",
                  title=(f"{name}: earliest output ({100 * frac:.1f} % fire)" if last
                         else f"{name} ({100 * frac:.1f} % fire)"))
    paths.append(_save(fig, out / "spike_times.png"))
    model.train()
    model.zero_grad(set_to_none=True)
    t_out = model(x_train[:256])
    loss, _ = spike_loss(t_out, y_train[:256], t_max)
    loss.backward()
    layers = weight_layers(model)
    fig, ax = _figure(len(layers), "weight gradients on a training batch of 256")
    for i, (m, name) in enumerate(zip(layers, names)):
        g = m.weight.grad.reshape(-1).numpy()
        g = g[g != 0]
        ax[i].hist(g, bins=80, log=True)
        ax[i].set(xlabel="dL/dw", title=f"{name} (nonzero {len(g)})")
    paths.append(_save(fig, out / "gradients.png"))
    fig, ax = _figure(len(layers), "weights")
    for i, (m, name) in enumerate(zip(layers, names)):
        w = m.weight.detach().reshape(-1).numpy()
        ax[i].hist(w, bins=80)
        ax[i].set(xlabel="w", title=f"{name} (mean {np.mean(w):.3g}, std {np.std(w):.3g})")
    paths.append(_save(fig, out / "weights.png"))
    model.zero_grad(set_to_none=True)
    return paths
