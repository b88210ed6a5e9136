"""A training run and its folder `runs/NAME/`:

- `config.json`     the full recipe (TrainConfig), written once;
- `metrics.jsonl`   one JSON line per phase/epoch (ANN epochs, conversion, SNN epochs);
- `checkpoint.pt`   the state after the last complete epoch (atomic, every epoch);
- `best.pt`         the checkpoint with the best validation accuracy so far (`--val-split`),
                    else the best test accuracy;
- `ann.pt`          the trained ANN (ANN initialisation);
- `model.onnx`      the final export, when `stdbp.export` is available.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch

from stdbp.errors import UserError
from stdbp.fileio import atomic_write_json, atomic_write_text


@dataclass
class TrainConfig:
    data: str = "mnist"
    arch: str = "784-800-10"
    epochs: int = 150
    batch_size: int = 128
    lr: float = 2e-4
    lr_final: float = 5e-5
    beta1: float = 0.9
    beta2: float = 0.999
    jitter_variance: float = 0.14      # paper: "variance 0.14"; sigma = sqrt(variance)
    threshold: float = 1.0
    t_max: float = 4.0
    alpha: float = 1.0
    silent_zero: bool = False
    delta_clip: float | None = None
    init: str = "ann"                  # "ann" or "scratch"
    ann_epochs: int = 10
    ann_lr: float = 1e-3
    ann_lr_final: float = 1e-4
    coverage: float = 0.9
    coverage_search: bool = False      # try ann_init.COVERAGE_CANDIDATES, keep the best calibration accuracy
    ann_dropout: float = 0.0           # dropout after hidden dense layers of the ANN (regularisation)
    ann_from: str | None = None         # reuse a trained ANN (ann.pt of another run) instead of training one
    silent_target_push: float = 0.0     # opt-in hinge for silent target outputs (loop.silent_target_push)
    augment_shift: int = 0              # opt-in random image shifts of up to N pixels (not in the paper)
    calibration_samples: int = 1000
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    val_split: int = 0                  # training images held out for model selection (best.pt); 0 = test set
    data_dir: str | None = None
    device: str = "cpu"
    backend: str = "auto"
    divergence_factor: float = 10.0    # stop when an epoch's loss exceeds this x the best epoch loss
    eval_batch_size: int = 500
    image_size: str | None = None       # imagefolder: HxW or native (default: the --arch input, else 160x250)
    per_class: str = "200,50"           # imagefolder: training,validation images per class (the rest: test)
    neuron: str = "relpsp"              # "relpsp" (the paper's) or "alpha" (the baseline, dense only)
    tau: float = 1.0                    # alpha-PSP time constant (ignored by ReL-PSP)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError("config.json", f"unknown keys {sorted(unknown)}", "was it written by a newer stdbp?")
        return cls(**d)

    def validate(self) -> None:
        def bad(item, fix):
            raise UserError("stdbp-train", item, fix)

        if self.epochs < 0:
            bad(f"--epochs {self.epochs}", "use 0 or more")
        if self.batch_size < 1:
            bad(f"--batch-size {self.batch_size}", "use 1 or more")
        for name in ("lr", "lr_final", "ann_lr"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                bad(f"--{name.replace('_', '-')} {v}", "use a positive learning rate")
        if not self.jitter_variance >= 0:
            bad(f"--jitter-variance {self.jitter_variance}", "use 0 (off) or a positive variance")
        if not self.threshold > 0:
            bad(f"--threshold {self.threshold}", "use a positive threshold")
        if not self.t_max > 0:
            bad(f"--t-max {self.t_max}", "use a positive window (inf allowed)")
        if not (isinstance(self.augment_shift, int) and 0 <= self.augment_shift <= 8):
            bad(f"--augment-shift {self.augment_shift}", "use 0 (off, the paper) to 8 pixels")
        if not (isinstance(self.val_split, int) and self.val_split >= 0):
            bad(f"--val-split {self.val_split}", "use 0 (select on the test set) or a number of training images")
        if not 0 <= self.ann_dropout < 1:
            bad(f"--ann-dropout {self.ann_dropout}", "use a probability in [0, 1)")
        if self.init not in ("ann", "scratch"):
            bad(f"--init {self.init}", "use ann or scratch")
        if self.neuron not in ("relpsp", "alpha"):
            bad(f"--neuron {self.neuron}", "use relpsp or alpha")
        if not (self.tau > 0 and math.isfinite(self.tau)):
            bad(f"--tau {self.tau}", "use a positive time constant")
        if self.delta_clip is not None and not self.delta_clip > 0:
            bad(f"--delta-clip {self.delta_clip}", "use a positive bound or leave it off")


class Run:
    """Holds the run folder; only rank 0 writes."""

    def __init__(self, out: str | Path, writer: bool = True):
        self.dir = Path(out)
        self.writer = writer

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    def write_config(self, cfg: TrainConfig, extra: dict) -> None:
        if self.writer:
            atomic_write_json(self.dir / "config.json", {**asdict(cfg), **extra})

    def read_config(self) -> TrainConfig:
        path = self.dir / "config.json"
        if not path.is_file():
            raise UserError(self.dir, "no config.json: not a stdbp-train run folder", "check --out")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(path, f"not valid JSON ({exc})", "restore the file or start a new run") from None
        return TrainConfig.from_dict({k: v for k, v in raw.items() if not k.startswith("_")})

    def update_config_epochs(self, epochs: int) -> None:
        """A resume with a new --epochs: config.json takes the new total (the other keys, the
        first call's _commit included, stay); the old total goes to `_epochs_before`."""
        if self.writer:
            path = self.dir / "config.json"
            raw = json.loads(path.read_text())
            raw.setdefault("_epochs_before", []).append(raw.get("epochs"))
            raw["epochs"] = int(epochs)
            atomic_write_json(path, raw)

    def metrics(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        out = []
        for n, line in enumerate(self.metrics_path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    raise UserError(self.metrics_path, f"line {n} is not JSON", "fix or delete the line") from None
        return out

    def log(self, record: dict) -> None:
        if self.writer:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record, allow_nan=True) + "\n")

    def truncate_metrics(self, keep: Callable[[dict], bool]) -> None:
        """On resume: drop the lines of epochs after the checkpoint (an interrupted epoch)."""
        if self.writer and self.metrics_path.is_file():
            kept = [json.dumps(r, allow_nan=True) for r in self.metrics() if keep(r)]
            atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))


def now() -> float:
    return time.perf_counter()
