"""ANN initialisation: weight copy + per-layer scales, and the search over coverage targets."""

from __future__ import annotations

import pytest
import torch

from stdbp.train import ann_init
from stdbp.train.arch import parse_arch
from stdbp.train.models import build_ann, build_snn, weight_layers


@pytest.fixture(scope="module")
def trained():
    """A small MNIST ANN (hard enough that the coverage targets convert differently)."""
    from stdbp.data import load_dataset

    images, labels = load_dataset("mnist", "train")
    x = torch.from_numpy(images[:1500].reshape(-1, 784).copy())
    y = torch.from_numpy(labels[:1500].astype("int64"))
    torch.manual_seed(0)
    arch = parse_arch("784-32-10")
    ann = build_ann(arch)
    ann_init.train_ann(ann, x[:1200], y[:1200], x[1200:], y[1200:], epochs=3, lr=2e-3, batch_size=64)
    return arch, ann, x[1200:], y[1200:]


def test_convert_copies_scaled_weights_and_reaches_coverage(trained):
    arch, ann, x, y = trained
    snn = build_snn(arch, t_max=4.0)
    rep = ann_init.convert(ann, snn, x[:200], y[:200], coverage=0.8)
    a_layers = [m for m in ann if isinstance(m, torch.nn.Linear)]
    for a, s, scale in zip(a_layers, weight_layers(snn), rep["scales"]):
        assert torch.allclose(s.weight, a.weight * scale)
    hidden = rep["layers"][0]
    assert hidden["coverage"] >= 0.8 or hidden["scale"] == ann_init.SCALE_GRID[-1]
    assert ann_init.calibration_accuracy(rep) > 0.6


def test_coverage_search_keeps_the_best_calibration_accuracy(trained):
    arch, ann, x, y = trained
    snn = build_snn(arch, t_max=4.0)
    seen = []
    rep = ann_init.convert_search(ann, snn, x[:200], y[:200], candidates=(0.3, 0.6, 0.9),
                                  on_candidate=lambda c, acc: seen.append((c, acc)))
    accs = [t["calibration_accuracy"] for t in rep["coverage_search"]]
    assert [c for c, _ in seen] == [0.3, 0.6, 0.9] and [a for _, a in seen] == accs
    chosen = rep["coverage_chosen"]
    assert len(set(accs)) > 1  # the targets do convert differently here
    assert accs[[0.3, 0.6, 0.9].index(chosen)] == max(accs)
    assert ann_init.calibration_accuracy(rep) == max(accs)
    # the SNN left behind is exactly the chosen target's conversion
    again = build_snn(arch, t_max=4.0)
    ann_init.convert(ann, again, x[:200], y[:200], coverage=chosen)
    for a, b in zip(weight_layers(snn), weight_layers(again)):
        assert torch.equal(a.weight, b.weight)
