"""The backend interface shared by the onnxruntime backend and the YOSO emulator.

A backend is prepared once for a model, then runs batches of uint8 pixels and returns output
spike times, predictions and backend-specific counters. The runtime never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class BackendResult:
    spike_times: np.ndarray        # float [N, classes], +inf = silent (YOSO: steps / steps_per_alpha)
    predictions: np.ndarray        # int64 [N], -1 = no output spike
    counters: dict[str, Any] = field(default_factory=dict)  # backend-specific (YOSO: cycles, energy, ...)


@runtime_checkable
class Backend(Protocol):
    name: str

    def prepare(self, model_path: str, **options) -> None: ...   # once

    def run(self, pixels: np.ndarray) -> BackendResult: ...       # uint8 [N, 784] or [N,1,28,28]


def predict(spike_times: np.ndarray) -> np.ndarray:
    """argmin over output times, ties to the lowest index; a row of all +inf predicts -1."""
    t = np.asarray(spike_times)
    if t.ndim != 2:
        raise ValueError(f"spike_times must be [N, classes], got shape {t.shape}")
    pred = np.argmin(t, axis=1).astype(np.int64)  # first minimum = lowest index on ties
    pred[~np.isfinite(t).any(axis=1)] = -1
    return pred
