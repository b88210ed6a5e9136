"""PNG plots of an emulator run (matplotlib, Agg backend): the mesh heat map and a spike raster."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(fig, path: Path) -> Path:
    from stdbp.fileio import atomic_write

    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    _plt().close(fig)
    return path


def mesh_heatmap(rep: dict, hw, path: str | Path) -> Path:
    """Two maps of the mesh: spike events (packets received + spikes) and dynamic energy per PE per
    frame (the static power, the same share on every PE, would hide the differences: see the title)."""
    plt = _plt()
    W, H = hw.mesh_width, hw.mesh_height
    ev = np.zeros((H, W))
    en = np.zeros((H, W))
    layer = np.zeros((H, W), np.int64)
    for row in rep["per_pe"]:
        ev[row["y"], row["x"]] = row["events_per_frame"]
        en[row["y"], row["x"]] = row["dynamic_uj_per_frame"]
        layer[row["y"], row["x"]] = row["layer"]
    fig, axes = plt.subplots(1, 2, figsize=(1.2 * W * 2 + 3, 1.1 * H + 1), constrained_layout=True)
    for ax, data, title, unit in ((axes[0], ev, "events per frame", "events"),
                                  (axes[1], en, "dynamic energy per frame", "uJ")):
        im = ax.imshow(data, origin="lower", cmap="viridis")
        fig.colorbar(im, ax=ax, label=unit, shrink=0.8)
        ax.set_title(f"{title} ({rep['frames']} frames)")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        for y in range(H):
            for x in range(W):
                lab = f"L{layer[y, x]}" if layer[y, x] else "-"
                ax.text(x, y, f"{y * W + x}\n{lab}", ha="center", va="center", fontsize=6, color="w")
        ax.plot([hw.host_x - 0.5], [hw.host_y], marker=">", color="r", markersize=8)
    static = rep["breakdown_uj_per_frame"]["static"] / max(len(rep["per_pe"]), 1)
    fig.suptitle(f"YOSO {hw.name}: {rep['model']}; host: red arrow on router ({hw.host_x}, {hw.host_y}); "
                 f"plus {static:.4f} uJ static per PE per frame", fontsize=9)
    return _write(fig, Path(path))


def spike_raster(fire: list[np.ndarray], path: str | Path, names: list[str] | None = None, end: int = -1) -> Path:
    """Fire step of every neuron of one frame, one panel per layer (inputs first); a red line at the
    frame's last step (``end``; with early stop, later input spikes are never delivered)."""
    plt = _plt()
    L = len(fire)
    fig, axes = plt.subplots(L, 1, figsize=(8, 1.6 * L + 1), sharex=True, squeeze=False)
    for c, (ax, f) in enumerate(zip(axes[:, 0], fire)):
        f = np.asarray(f)
        idx = np.nonzero(f >= 0)[0]
        ax.scatter(f[idx], idx, s=2, marker="|", color="k")
        name = names[c] if names else f"layer {c}"
        ax.set_ylabel(f"{name}\n({len(idx)}/{len(f)})", fontsize=8)
        ax.set_ylim(-0.5, max(len(f), 1) - 0.5)
        if end >= 0:
            ax.axvline(end, color="r", linewidth=0.8)
    axes[-1, 0].set_xlabel("time step (fire step; silent neurons not shown; red: last step of the frame)")
    fig.suptitle("spike raster of one frame", fontsize=9)
    return _write(fig, Path(path))
