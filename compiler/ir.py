"""The compiler's small typed IR: one `CompileState` that the ordered passes fill in.

    import_onnx -> Graph (float layers)            passes/importer.py
    drc         -> checks only                     passes/drc.py
    quantise    -> QuantLayer per layer            passes/quantise.py
    partition   -> PESlice per PE (unplaced)       passes/partition.py
    place       -> PE ids on the mesh, routes      passes/place.py
    emit        -> YosoProgram (+ files)           passes/emit.py

Each pass reads the fields earlier passes wrote and writes its own; each can be run alone on a
hand-made state (tests/compiler/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yoso_backend.geometry import Window
from yoso_backend.hardware import HardwareDescription


@dataclass
class DenseLayer:
    """A float RelPspDense layer as imported: weight [n_out, n_in] (float64 copy of the float32 initializer)."""

    name: str
    weight: np.ndarray
    threshold: float
    t_max: float
    kind = "dense"
    window = None

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class ConvLayer:
    """A float RelPspConv2d layer: kernel [C_out, C_in, kh, kw] (float64), geometry in `window`.

    Every output neuron (o, y, x) is a RelPspDense neuron over its window with the shared kernel o.
    """

    name: str
    weight: np.ndarray
    threshold: float
    t_max: float
    window: Window
    kind = "conv"

    @property
    def n_in(self) -> int:
        return self.window.n_in

    @property
    def n_out(self) -> int:
        return self.window.n_out


@dataclass
class PoolLayer:
    """A SpikeMinPool layer: each output neuron spikes at the earliest spike of its window."""

    name: str
    window: Window
    threshold: float = 0.0
    t_max: float = float("inf")
    kind = "pool"

    @property
    def n_in(self) -> int:
        return self.window.n_in

    @property
    def n_out(self) -> int:
        return self.window.n_out


@dataclass
class Graph:
    """The imported network: SpikeEncode -> (RelPspConv2d | SpikeMinPool)* -> (Flatten) -> RelPspDense+."""

    n_inputs: int
    input_shape: tuple[int, ...]
    n_classes: int
    alpha: float
    silent_zero: bool
    layers: list  # DenseLayer | ConvLayer | PoolLayer
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""
    source_sha256: str = ""


@dataclass
class CompileOptions:
    hw: str = "yoso-6x7"
    output_mode: str = "ttfs"          # "ttfs" or "softmax"
    early_stop: bool = True            # TTFS: end the frame after the first output spike's step
    scale_mode: str = "layer"          # "layer" or "neuron"
    steps_per_alpha: int | None = None  # None: the hardware description's default
    multiplex: int = 1                 # > 1: time-multiplexed PEs (hardware.multiplexed)


@dataclass
class QuantLayer:
    """Integer layer: w_int = round(w * scale_j), threshold_int_j = round(theta * scale_j * spa / alpha).

    Dense: weight_int [n_out, n_in]. Conv: the kernel [C_out, C_in, kh, kw] (scale per output
    channel, expanded to its neurons in `scales`). Pool: no weights (empty), thresholds 1.
    """

    index: int
    name: str
    weight_int: np.ndarray      # int64 [n_out, n_in]
    scales: np.ndarray          # float64 [n_out]
    threshold_int: np.ndarray   # int64 [n_out]
    window_steps: int
    fires: bool
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class PESlice:
    """Neurons [neuron_start, neuron_start + neuron_count) of a layer on one PE (pe = -1 until placed).

    fan_in: weights per neuron (dense: inputs; conv: C_in * kh * kw, shared; pool: the window size);
    weight_words: the PE's weight SRAM use (dense: fan_in * count; conv: kernels of the channels
    it touches; pool: 0).
    """

    layer: int
    neuron_start: int
    neuron_count: int
    fan_in: int
    pe: int = -1
    weight_words: int = -1

    def __post_init__(self) -> None:
        if self.weight_words < 0:
            self.weight_words = self.fan_in * self.neuron_count


@dataclass
class CompileState:
    hw: HardwareDescription
    options: CompileOptions
    graph: Graph | None = None
    steps_per_alpha: int = 0
    quant: list[QuantLayer] = field(default_factory=list)
    slices: list[PESlice] = field(default_factory=list)
    partition_report: dict[str, Any] = field(default_factory=dict)
    placement_report: dict[str, Any] = field(default_factory=dict)
    # per layer k: CSR (off [n_in + 1], slice index within layer k) of where each input's spike goes
    fanout: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    program: Any = None  # yoso_backend.artifact.YosoProgram after emit

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def layer_slices(self, layer: int) -> list[PESlice]:
        return [s for s in self.slices if s.layer == layer]
