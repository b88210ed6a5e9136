"""`YosoBackend`: the runtime Backend interface (contracts.md) over the emulator.

    b = YosoBackend(); b.prepare("model.yoso", mode="softmax", hw="yoso-6x7-calibrated", report_dir="runs/x")
    res = b.run(pixels)          # BackendResult: spike_times (steps / steps_per_alpha), predictions, counters
    rep = b.finalize("runs/x", labels)   # report.json, mesh.png, raster.png, rich tables

Options (strings from `stdbp-run --key value` are accepted): ``mode`` ttfs|softmax (default: the
program's), ``early_stop`` true|false (default: the program's), ``hw`` the description used for
clock and energy (default: ``<program hw>-calibrated`` when that built-in exists and differs from
the program's only in calibrated values, else the program's own), ``record`` (keep per-frame traces
of the last batch in ``self.last``), ``report_dir``/``plots_dir`` (for runners that do not call
``finalize``: report.json and the plots are written there when the process exits, outside any
timed ``run`` call).

``counters`` of each batch hold sums only (frames, cycles, steps, seconds, joules, event counts), so
a runner may add them up across batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stdbp.errors import UserError

OPTIONS = ("mode", "early_stop", "hw", "record", "report_dir", "plots_dir", "chunk")


def _bool(key: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise UserError(f"--{key.replace('_', '-')}", f"{v!r} is not true/false", "pass true or false")


def energy_description(prog_hw, hw_option: str | None = None, notes: list[str] | None = None):
    """The description whose clock and energy apply to a program compiled for ``prog_hw``
    (a reason for passing over a stale calibrated description is appended to ``notes``)."""
    from yoso_backend.calibrate import structure_of
    from yoso_backend.hardware import HW_DIR, load_hardware

    if hw_option:
        hw = load_hardware(hw_option)
        if structure_of(hw.raw) != structure_of(prog_hw.raw):
            raise UserError(f"--hw {hw_option}", f"differs from the model's description {prog_hw.name!r} in more "
                            "than the clock and static power", "recompile the model for it, or use a calibrated copy "
                            "of the model's description")
        return hw
    import re

    from yoso_backend.hardware import multiplexed

    # A time-multiplexed program (`<name>-tm<G>`) shares its chip's clock and static power: the
    # calibrated copy of <name>, multiplexed the same way, applies to it.
    tm = re.fullmatch(r"(.+)-tm(\d+)", prog_hw.name)
    base, groups = (tm.group(1), int(tm.group(2))) if tm else (prog_hw.name, 1)
    cand = HW_DIR / f"{base.removesuffix('-calibrated')}-calibrated.toml"
    if cand.is_file():
        hw = multiplexed(load_hardware(cand), groups)
        if structure_of(hw.raw) == structure_of(prog_hw.raw):
            return hw
        if notes is not None:
            notes.append(f"{cand.name} ignored: calibrated for another revision of {prog_hw.name} "
                         "(rerun `stdbp calibrate`)")
    return prog_hw


class YosoBackend:
    name = "yoso"

    def __init__(self) -> None:
        self.emu = None
        self.energy = None
        self.stats = None
        self.last = None
        self.model_path = ""

    def prepare(self, model_path: str, **options) -> None:
        from yoso_backend.emulator import Emulator
        from yoso_backend.energy import EnergyModel
        from yoso_backend.report import RunStats

        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UserError("--backend yoso", f"unknown option(s) {', '.join('--' + u.replace('_', '-') for u in unknown)}",
                            f"options are {', '.join('--' + o.replace('_', '-') for o in OPTIONS)}")
        path = Path(model_path)
        if path.suffix == ".onnx" or path.is_file():
            raise UserError(path, "the YOSO backend runs compiled programs (model.yoso/), not ONNX files",
                            f"compile it first: stdbp-compile {path} -o {path.with_suffix('.yoso')}")
        self.emu = Emulator.load(path)
        prog = self.emu.program
        self.mode = str(options.get("mode") or prog.output_mode)
        if self.mode not in ("ttfs", "softmax"):
            raise UserError("--mode", f"unknown mode {self.mode!r}", "ttfs or softmax")
        self.early_stop = _bool("early_stop", options["early_stop"]) if "early_stop" in options else None
        self.record = _bool("record", options.get("record", False))
        try:
            self.chunk = int(options.get("chunk", 256))
        except (TypeError, ValueError):
            self.chunk = 0
        if self.chunk < 1:
            raise UserError("--chunk", f"{options.get('chunk')!r} is not a positive number of frames", "pass e.g. --chunk 256")
        self.notes: list[str] = []
        self.energy_hw = energy_description(prog.hw, options.get("hw"), self.notes)
        self.energy = EnergyModel.from_hw(self.energy_hw)
        self.report_dir = options.get("report_dir") or options.get("plots_dir")
        self.model_path = str(path)
        self.stats = RunStats()
        if self.report_dir:
            import atexit

            atexit.register(self._write_at_exit)

    def run(self, pixels: np.ndarray) -> "Any":
        from runtime.backend import BackendResult
        from yoso_backend import counters as CN

        if self.emu is None:
            raise RuntimeError("call prepare() first")
        res = self.emu.run(pixels, mode=self.mode, record=self.record, early_stop=self.early_stop, chunk=self.chunk)
        self.stats.add(res)
        if self.record:
            self.last = res
        per = self.energy.frames(res.cycles, res.frame_counters)
        counters: dict[str, Any] = {
            "frames": int(len(res.cycles)), "cycles": int(res.cycles.sum()), "steps": int(res.steps.sum()),
            "latency_s": float(per["latency_s"].sum()), "energy_j": float(per["energy_j"].sum()),
            "dynamic_energy_j": float(self.energy.dynamic_j(res.frame_counters).sum()),
        }
        counters.update({k: v for k, v in CN.as_dict(res.frame_counters).items()})
        return BackendResult(spike_times=res.spike_times, predictions=res.predictions, counters=counters)

    def report(self, labels: np.ndarray | None = None) -> dict:
        from yoso_backend.report import summarize

        rep = summarize(self.stats, self.emu, self.energy, labels, model=self.model_path)
        rep["energy_description"] = {"name": self.energy_hw.name, "revision": self.energy_hw.revision,
                                     "sha256": self.energy_hw.sha256}
        rep["notes"] = list(self.notes)
        return rep

    def finalize(self, out_dir: str | Path | None = None, labels: np.ndarray | None = None, console=None,
                 plots: bool = True) -> dict:
        """The full report (printed as tables when ``console`` is given), written to ``out_dir``."""
        from yoso_backend.report import print_table, render

        if self.report_dir:
            import atexit

            atexit.unregister(self._write_at_exit)
        rep = self.report(labels)
        if out_dir is not None:
            rep["files"] = render(rep, out_dir, self.stats, self.emu, plots=plots)
        if console is not None:
            print_table(rep, console)
        return rep

    def _write_at_exit(self) -> None:
        if self.stats is not None and self.stats.frames:
            from yoso_backend.report import render

            render(self.report(), self.report_dir, self.stats, self.emu)
