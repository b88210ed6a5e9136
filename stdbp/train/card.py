"""Ship a trained run as `models/NAME/`: a small checkpoint, the ONNX model and `card.json`.

    python -m stdbp.train.card runs/mnist-fc800 models/mnist-fc800 --command "stdbp-train ..."

`model.pt` holds only the SNN weights and the recipe (no optimizer state); `card.json` records
the test accuracy (re-measured on the full test set from the shipped weights), data set, recipe,
command, commit and the paper's number for comparison.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from dataclasses import asdict
from pathlib import Path

import torch

PAPER_ACCURACY = {  # Tables I-II
    ("mnist", "784-800-10"): 98.5, ("mnist", "784-400-10"): 98.1, ("mnist", "784-1000-10"): 98.5,
    ("mnist", "784-340-10"): 98.0, ("mnist", "28x28-16C5-P2-32C5-P2-800-128-10"): 99.4,
    ("fashion-mnist", "784-1000-10"): 88.1, ("fashion-mnist", "28x28-16C5-P2-32C5-P2-800-128-10"): 90.1,
}


def load_shipped(model_dir: str | Path):
    """(model, config dict) from a models/NAME folder."""
    from stdbp.train.arch import parse_arch
    from stdbp.train.models import build_snn

    state = torch.load(Path(model_dir) / "model.pt", map_location="cpu", weights_only=False)
    cfg = state["config"]
    model = build_snn(parse_arch(cfg["arch"]), threshold=cfg["threshold"], t_max=cfg["t_max"],
                      alpha=cfg["alpha"], silent_zero=cfg["silent_zero"])
    model.load_state_dict(state["model"])
    return model, cfg


def _ann_info(ann: list[dict]) -> dict | None:
    """ANN epochs and accuracy; with --ann-from, those of the run the ANN came from."""
    if not ann:
        return None
    if "from" in ann[0]:
        src = Path(ann[0]["from"]).parent / "metrics.jsonl"
        src_ann = []
        if src.is_file():
            src_ann = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
            src_ann = [r for r in src_ann if r.get("phase") == "ann"]
        return {"from": ann[0]["from"], "epochs": len(src_ann) or None, "test_accuracy": ann[0]["test_accuracy"]}
    return {"epochs": len(ann), "test_accuracy": ann[-1]["test_accuracy"]}


def make_card(run_dir: str | Path, dest: str | Path, command: str, checkpoint: str = "best.pt") -> dict:
    from stdbp.fileio import atomic_write_bytes, atomic_write_json
    from stdbp.train.ann_init import snn_accuracy
    from stdbp.train.arch import parse_arch
    from stdbp.train.checkpoint import load_checkpoint
    from stdbp.train.datasets import load_train_data
    from stdbp.train.runner import Run
    from stdbp.train.trainer import export_onnx

    run = Run(run_dir, writer=False)
    cfg = run.read_config()
    state = load_checkpoint(Path(run_dir) / checkpoint)
    dest = Path(dest)
    buf = io.BytesIO()
    torch.save({"format": "stdbp-model/1", "model": state["model"], "config": asdict(cfg)}, buf)
    atomic_write_bytes(dest / "model.pt", buf.getvalue())
    model, _ = load_shipped(dest)
    arch = parse_arch(cfg.arch)
    data = load_train_data(cfg.data, arch.pixel_shape, image_shape=arch.input_shape, data_dir=cfg.data_dir, train_subset=1, seed=cfg.seed)
    acc = snn_accuracy(model, data.x_test, data.y_test)
    onnx_status = export_onnx(model, cfg, dest / "model.onnx", acc)
    metrics = run.metrics()
    snn = [r for r in metrics if r.get("phase") == "snn"]
    ann = [r for r in metrics if r.get("phase") == "ann"]
    init = [r for r in metrics if r.get("phase") == "init"]
    raw_cfg = json.loads((Path(run_dir) / "config.json").read_text())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    card = {
        "name": dest.name,
        "dataset": cfg.data,
        "arch": cfg.arch,
        "test_accuracy": acc,
        "test_images": int(len(data.y_test)),
        "paper_accuracy_percent": PAPER_ACCURACY.get((cfg.data, cfg.arch)),
        "epoch_of_checkpoint": state["epoch"],
        "epoch_chosen_on": (f"validation: {cfg.val_split} training images held out" if cfg.val_split
                            else "test set (no validation split)"),
        "snn_epochs_run": len(snn),
        "ann_pretraining": _ann_info(ann),
        "accuracy_after_conversion": init[0]["test_accuracy"] if init else None,
        "training_seconds": sum(r.get("epoch_seconds", 0) for r in snn),
        "recipe": asdict(cfg),
        "encoding": {"alpha": cfg.alpha, "silent_zero": cfg.silent_zero},
        "command": command,
        "trained_at_commit": raw_cfg.get("_commit"),
        "card_commit": commit or None,
        "onnx": onnx_status,
        "files": {"model.pt": "SNN weights + recipe (torch.load; stdbp.train.card.load_shipped)",
                  "model.onnx": "ai.stdbp ONNX export" if onnx_status == "ok" else None},
    }
    atomic_write_json(dest / "card.json", card)
    return card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("dest")
    ap.add_argument("--command", required=True, help="the stdbp-train command that produced the run")
    ap.add_argument("--checkpoint", default="best.pt")
    args = ap.parse_args()
    from stdbp.errors import cli_errors

    with cli_errors():
        card = make_card(args.run_dir, args.dest, args.command, args.checkpoint)
    print(json.dumps({k: card[k] for k in ("name", "dataset", "arch", "test_accuracy", "onnx")}))


if __name__ == "__main__":
    main()
