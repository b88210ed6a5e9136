"""The paper's Section V-B comparison (Figs. 7-9): alpha-PSP vs ReL-PSP vs ANN, from random init.

For each seed, three 784-H-10 networks are trained on the same MNIST subset from random
initial weights (no ANN initialisation, as the paper's Figs. 7-9): the SNN with alpha-PSP
neurons (`stdbp.alpha`), the SNN with ReL-PSP neurons (`stdbp.nn`), both with the trainer's own
epoch loop and loss (Eq. 12), and the ANN (ReLU, biases, cross-entropy), all with Adam. After
every epoch the hidden layer's dead neurons are counted on the evaluation images: a spiking
neuron is dead when it fires for none of them, an ANN unit when its ReLU output is 0 for all;
the active fraction is the share of hidden neurons that fire (ANN: output > 0) per image,
averaged over the images (the paper's "30 % active neurons" reads as this per-image share).
Over the training batches the hidden layer's weight gradients dL/dw are histogrammed (log10 of
|g|, fixed bins; zeros counted apart) and their per-batch quantiles kept; after training the
weights are histogrammed. Figures: `gradients.png` (Fig. 7), `weights.png` (Fig. 8),
`dead_neurons.png` (Fig. 9, mean and standard deviation over the seeds, with test accuracy);
everything measured is in `results.json`.

Spiking networks' initial weights: Gaussian, mean init_mean / fan_in, standard deviation
init_std / sqrt(fan_in) (the default `mean 2, std 3` lets about 3/4 of a fresh hidden layer fire
on MNIST); t_max = inf by default, since with a finite window output neurons that the loss
pushes past it go silent and a silent target gets no gradient (see docs/results.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

MODELS = ("alpha", "relpsp", "ann")
LOG_BINS = np.linspace(-14.0, 4.0, 91)  # log10 |dL/dw|
QUANTILES = (0.5, 0.99, 0.999, 1.0)


@dataclass
class ExperimentConfig:
    runs: int = 2
    epochs: int = 3
    hidden: int = 800
    train_subset: int = 2000
    test_subset: int = 1000
    batch_size: int = 128
    lr: float = 3e-4
    ann_lr: float = 1e-3
    t_max: float = math.inf
    tau: float = 1.0
    init_mean: float = 2.0
    init_std: float = 3.0
    jitter_variance: float = 0.0
    seed: int = 0
    models: tuple[str, ...] = MODELS
    data: str = "mnist"
    data_dir: str | None = None
    extra: dict = field(default_factory=dict)


class _GradRecorder:
    """Optimizer proxy: before each step, histogram the hidden layer's weight gradient."""

    def __init__(self, opt, weight: torch.Tensor):
        self.opt, self.weight = opt, weight
        self.hist = np.zeros(len(LOG_BINS) - 1, np.int64)
        self.below = self.above = self.zeros = self.total = 0
        self.quantiles: list[list[float]] = []

    def zero_grad(self, set_to_none: bool = True):
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self):
        g = self.weight.grad
        if g is not None:
            a = g.detach().abs().reshape(-1).to(torch.float64)
            nz = a[a > 0]
            self.zeros += int(a.numel() - nz.numel())
            self.total += int(a.numel())
            if nz.numel():
                lg = torch.log10(nz).numpy()
                self.hist += np.histogram(lg, LOG_BINS)[0]
                self.below += int((lg < LOG_BINS[0]).sum())
                self.above += int((lg > LOG_BINS[-1]).sum())
            self.quantiles.append([float(v) for v in torch.quantile(
                a[:: max(1, a.numel() // 1_000_000)], torch.tensor(QUANTILES, dtype=torch.float64))])
        self.opt.step()

    def summary(self) -> dict:
        q = np.array(self.quantiles) if self.quantiles else np.zeros((0, len(QUANTILES)))
        return {"log10_bins": LOG_BINS.tolist(), "counts": self.hist.tolist(),
                "below_range": self.below, "above_range": self.above, "zeros": self.zeros,
                "total": self.total,
                "batch_quantiles": {str(p): (q[:, k].tolist() if len(q) else [])
                                    for k, p in enumerate(QUANTILES)}}


def _snn(kind: str, cfg: ExperimentConfig, seed: int):
    from stdbp.train.arch import parse_arch
    from stdbp.train.models import build_snn, weight_layers

    torch.manual_seed(seed)
    model = build_snn(parse_arch(f"784-{cfg.hidden}-10"), t_max=cfg.t_max, neuron=kind, tau=cfg.tau)
    with torch.no_grad():
        for m in weight_layers(model):
            n = m.weight.shape[1]
            m.weight.normal_(cfg.init_mean / n, cfg.init_std / math.sqrt(n))
    return model


def _ann(cfg: ExperimentConfig, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(784, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 10))


def _ann_eval(ann, x, y) -> tuple[float, float, float]:
    """(accuracy, dead fraction of hidden units: ReLU output 0 on every image, active fraction:
    hidden units with a positive output, averaged over the images)."""
    with torch.no_grad():
        h = ann[1](ann[0](x.to(torch.float32) / 255.0))
        acc = float((ann[2](h).argmax(1) == y).float().mean())
        return acc, float(((h > 0).sum(0) == 0).float().mean()), float((h > 0).float().mean())


def _train_ann_epoch(ann, rec, x, y, batch_size, gen) -> float:
    ann.train()
    perm = torch.randperm(len(y), generator=gen)
    total = 0.0
    for s in range(0, len(y), batch_size):
        idx = perm[s:s + batch_size]
        loss = nn.functional.cross_entropy(ann(x[idx].to(torch.float32) / 255.0), y[idx])
        rec.zero_grad()
        loss.backward()
        rec.step()
        total += float(loss.detach()) * len(idx)
    return total / len(y)


def run_one(kind: str, cfg: ExperimentConfig, seed: int, data, log=print) -> dict:
    """Train one network; -> per-epoch curves, gradient and weight histograms."""
    from stdbp.data import SpikeJitter
    from stdbp.train.loop import Diverged, evaluate, train_epoch

    x, y = data.x_train.reshape(len(data.y_train), -1), data.y_train
    xt, yt = data.x_test.reshape(len(data.y_test), -1), data.y_test
    model = _ann(cfg, seed) if kind == "ann" else _snn(kind, cfg, seed)
    hidden_w = model[0].weight if kind == "ann" else model[1].weight
    rec = _GradRecorder(torch.optim.Adam(model.parameters(), lr=cfg.ann_lr if kind == "ann" else cfg.lr),
                        hidden_w)

    def measure():
        if kind == "ann":
            return _ann_eval(model, xt, yt)
        ev = evaluate(model, xt, yt)
        return ev["accuracy"], ev["dead_fraction"][0], ev["fired_fraction"][0]

    acc, dead, act = measure()
    curve = {"epoch": [0], "test_accuracy": [acc], "dead_fraction": [dead], "active_fraction": [act],
             "loss": [None], "seconds": [0.0]}
    status = "finished"
    for ep in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed * 1000 + ep)
        try:
            if kind == "ann":
                loss = _train_ann_epoch(model, rec, x, y, cfg.batch_size, gen)
            else:
                jit = (SpikeJitter(math.sqrt(cfg.jitter_variance),
                                   torch.Generator().manual_seed(seed * 1000 + ep + 500))
                       if cfg.jitter_variance > 0 else None)
                loss = train_epoch(model, x, y, rec, batch_size=cfg.batch_size, t_max=cfg.t_max,
                                   shuffle_gen=gen, jitter=jit).loss
        except Diverged as exc:
            status = f"diverged in epoch {ep}: {exc}"
            log(f"  {kind} seed {seed}: {status}")
            break
        acc, dead, act = measure()
        secs = time.perf_counter() - t0
        for k, v in (("epoch", ep), ("test_accuracy", acc), ("dead_fraction", dead),
                     ("active_fraction", act), ("loss", loss), ("seconds", secs)):
            curve[k].append(v)
        log(f"  {kind} seed {seed} epoch {ep}: loss {loss:.4f}  test {acc * 100:.2f} %  "
            f"dead {dead * 100:.1f} %  active {act * 100:.1f} %  {secs:.1f} s")
    weights = {}
    layers = [model[0], model[2]] if kind == "ann" else [model[1], model[2]]
    for name, m in zip(("hidden", "output"), layers):
        w = m.weight.detach().to(torch.float64).reshape(-1).numpy()
        counts, edges = np.histogram(w, 100)
        weights[name] = {"counts": counts.tolist(), "edges": edges.tolist(),
                         "mean": float(w.mean()), "std": float(w.std()),
                         "min": float(w.min()), "max": float(w.max())}
    return {"model": kind, "seed": seed, "status": status, "curve": curve,
            "gradients": rec.summary(), "weights": weights}


def aggregate(runs: list[dict], epochs: int) -> dict:
    """Mean and standard deviation over seeds, per model and epoch (runs that stopped early
    contribute the epochs they finished)."""
    out = {}
    for kind in sorted({r["model"] for r in runs}):
        rs = [r for r in runs if r["model"] == kind]
        agg = {"epoch": list(range(epochs + 1))}
        for key in ("dead_fraction", "active_fraction", "test_accuracy"):
            mean, std, n = [], [], []
            for e in range(epochs + 1):
                vals = [r["curve"][key][e] for r in rs if len(r["curve"][key]) > e]
                mean.append(float(np.mean(vals)) if vals else None)
                std.append(float(np.std(vals)) if vals else None)
                n.append(len(vals))
            agg[key] = {"mean": mean, "std": std, "n": n}
        agg["gradient_abs_max"] = [max(r["gradients"]["batch_quantiles"]["1.0"] or [0.0]) for r in rs]
        agg["gradient_abs_median"] = [float(np.median(r["gradients"]["batch_quantiles"]["0.5"] or [0.0]))
                                      for r in rs]
        out[kind] = agg
    return out


def run_experiment(cfg: ExperimentConfig, log=print) -> dict:
    from stdbp.train.datasets import load_train_data

    data = load_train_data(cfg.data, (784,), data_dir=cfg.data_dir, train_subset=cfg.train_subset,
                           test_subset=cfg.test_subset, seed=cfg.seed)
    runs = []
    t0 = time.perf_counter()
    for r in range(cfg.runs):
        seed = cfg.seed + r
        for kind in cfg.models:
            runs.append(run_one(kind, cfg, seed, data, log))
    return {"config": {**asdict(cfg), "models": list(cfg.models)}, "runs": runs,
            "summary": aggregate(runs, cfg.epochs), "seconds": time.perf_counter() - t0,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "paper_after_100_epochs": {"relpsp": {"active": 0.30, "accuracy": 0.985},
                                       "alpha": {"active": 0.05, "accuracy": 0.925},
                                       "ann": {"active": 0.40, "accuracy": 0.986}}}
