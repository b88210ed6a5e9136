"""Atomic checkpoints: model, optimizer (Adam moments), epoch, best accuracy, RNG state.

The data order and the input jitter of epoch e are drawn from generators seeded with
(seed, e, rank), so an exact resume needs no generator state; the global torch RNG state is
stored anyway (nothing in the loop draws from it, but user extensions might).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from stdbp.errors import UserError
from stdbp.fileio import atomic_write_bytes

FORMAT = "stdbp-train-checkpoint/1"


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    epoch: int, best_accuracy: float, config: dict, extra: dict | None = None) -> Path:
    state: dict[str, Any] = {
        "format": FORMAT,
        "epoch": int(epoch),
        "best_accuracy": float(best_accuracy),
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "torch_rng": torch.get_rng_state(),
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "checkpoint not found", "train first, or point at a run folder with checkpoint.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a corrupt file
        raise UserError(path, f"corrupt checkpoint ({type(exc).__name__}: {exc})",
                        "use best.pt or retrain; checkpoints are written atomically, so this file was damaged later") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(path, "not a stdbp-train checkpoint", f"expected format {FORMAT}")
    return state


def epoch_generator(seed: int, epoch: int, stream: int, rank: int = 0) -> torch.Generator:
    """Independent, reproducible generator per (seed, epoch, stream, rank)."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_009 + stream) * 10_007 + rank)
