"""Figures of `stdbp experiment dead-neurons` (paper Figs. 7-9) from its results dict."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stdbp.fileio import atomic_write

LABELS = {"alpha": "SNN, alpha-PSP", "relpsp": "SNN, ReL-PSP", "ann": "ANN (ReLU)"}
COLORS = {"alpha": "tab:red", "relpsp": "tab:blue", "ann": "tab:green"}


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def _kinds(res):
    return [k for k in ("alpha", "relpsp", "ann") if k in res["summary"]]


def plot_gradients(res: dict, path: Path) -> Path:
    """Fig. 7: distribution of the hidden layer's |dL/dw| over all training batches and seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for kind in _kinds(res):
        rs = [r for r in res["runs"] if r["model"] == kind]
        bins = np.array(rs[0]["gradients"]["log10_bins"])
        counts = np.sum([r["gradients"]["counts"] for r in rs], axis=0).astype(float)
        if counts.sum() == 0:
            continue
        dens = counts / counts.sum() / np.diff(bins)
        ax.stairs(dens, bins, label=LABELS[kind], color=COLORS[kind], linewidth=1.5)
    ax.set_xlabel("log10 |dL/dw| (hidden layer, every training batch)")
    ax.set_ylabel("density (log scale: the tails are the exploding gradients)")
    ax.set_yscale("log")
    ax.set_title("Error gradients (cf. paper Fig. 7)")
    ax.legend()
    return _save(fig, path)


def plot_weights(res: dict, path: Path) -> Path:
    """Fig. 8: learned hidden-layer weights, one panel per model (all seeds pooled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = _kinds(res)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for r in (r for r in res["runs"] if r["model"] == kind):
            h = r["weights"]["hidden"]
            ax.stairs(np.array(h["counts"]), np.array(h["edges"]), color=COLORS[kind], alpha=0.6)
        ax.set_title(f"{LABELS[kind]}: learned weights")
        ax.set_xlabel("hidden-layer weight")
    axes[0][0].set_ylabel("count (one line per seed)")
    return _save(fig, path)


def plot_dead(res: dict, path: Path) -> Path:
    """Fig. 9: dead hidden neurons over the epochs (mean, band = 1 std over seeds), and the
    test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax3, ax2) = plt.subplots(1, 3, figsize=(16, 4))
    for kind in _kinds(res):
        s = res["summary"][kind]
        for a, key in ((ax, "dead_fraction"), (ax3, "active_fraction"), (ax2, "test_accuracy")):
            ep = np.array([e for e, m in zip(s["epoch"], s[key]["mean"]) if m is not None])
            m = np.array([v for v in s[key]["mean"] if v is not None]) * 100
            sd = np.array([v for v in s[key]["std"] if v is not None]) * 100
            a.plot(ep, m, color=COLORS[kind], label=LABELS[kind], marker="o", markersize=3)
            a.fill_between(ep, m - sd, m + sd, color=COLORS[kind], alpha=0.2)
    n = res["config"]["runs"]
    ax.set_title(f"Dead hidden neurons (mean +- std over {n} seeds; cf. paper Fig. 9)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("% of hidden neurons dead on the test images")
    ax3.set_title("Active hidden neurons per test image")
    ax3.set_xlabel("epoch")
    ax3.set_ylabel("% firing (ANN: output > 0), mean over images")
    ax2.set_title("Test accuracy")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("%")
    ax.legend()
    return _save(fig, path)


def plot_all(res: dict, out: Path) -> list[Path]:
    return [plot_gradients(res, out / "gradients.png"), plot_weights(res, out / "weights.png"),
            plot_dead(res, out / "dead_neurons.png")]
