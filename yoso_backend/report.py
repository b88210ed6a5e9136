"""The YOSO report: latency, fps, power, energy (and the 28 nm column), breakdowns by component,
layer and PE, the initialisation phase, and the paper's Table IV with our row beside it.

    stats = RunStats(); stats.add(emu.run(px)) ...            # accumulate batches
    rep = summarize(stats, emu, EnergyModel.from_hw(hw), labels)
    render(rep, out_dir)                                      # report.json + PNG plots (+ table)
    print_table(rep, console)

Definitions (energy.py): T = cycles / f_clk, E = E_dyn + P_static T per frame; the report's
latency and energy are means over frames, power = mean E / mean T (so P x L = E holds exactly),
fps = 1 / mean T (frames run one at a time); 28 nm: P and E x 1.17 (Table IV footnote).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yoso_backend import counters as CN
from yoso_backend.energy import COMPONENT_TITLES, COMPONENTS, SCALE_28NM, EnergyModel

# Table IV of the STDBP paper: (accelerator, coding, accuracy %, fps, node nm, power mW, uJ/frame)
TABLE_IV: list[tuple[str, str, float | None, float | None, int, float | None, float | None]] = [
    ("SNNwt", "Rate", 91.82, None, 65, None, 214.700),
    ("TrueNorth-a", "Rate", 92.70, 1000, 28, 0.268, 0.268),
    ("TrueNorth-b", "Rate", 99.42, 1000, 28, 108.000, 108.000),
    ("Loihi-a", "Rate", 98.79, 120, 14, None, None),
    ("Loihi-b", "Rate", 99.21, 150, 14, 99.248, 660),
    ("Spinnaker", "Rate", 95.01, 77, 130, 300.000, 3896.000),
    ("Tianji", "Rate", 96.59, None, 120, 120.000, None),
    ("Shenjing", "Rate", 96.11, 40, 28, 1.260, 38.000),
    ("STDBP+YOSO (paper)", "Temp.", 98.45, 21, 22, 0.751, 35.839),
]
# the ratios the paper quotes (section V-E): power savings and energy efficiency of YOSO
PAPER_POWER_RATIOS = {"Spinnaker": 399, "Tianji": 159.8, "TrueNorth-b": 143.8, "Shenjing": 1.67}
PAPER_ENERGY_RATIOS = {"Spinnaker": 108.7, "SNNwt": 6, "TrueNorth-b": 3}


def ratios(power_mw: float, energy_uj: float) -> dict[str, dict[str, float]]:
    """Other accelerator's power (energy) / this one's, for the accelerators the paper compares."""
    rows = {r[0]: r for r in TABLE_IV}
    return {"power": {k: rows[k][5] / power_mw for k in PAPER_POWER_RATIOS},
            "energy": {k: rows[k][6] / energy_uj for k in PAPER_ENERGY_RATIOS}}


@dataclass
class RunStats:
    """Emulator results accumulated over batches (per-frame arrays concatenated, PE sums added)."""

    cycles: list[np.ndarray] = field(default_factory=list)
    steps: list[np.ndarray] = field(default_factory=list)
    frame_counters: list[np.ndarray] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)
    pe_counters: np.ndarray | None = None
    layer_counters: np.ndarray | None = None
    raster: list[np.ndarray] | None = None   # fire steps of the first frame, per node layer
    raster_end: int = -1                     # its last step run
    mode: str = "ttfs"
    early_stop: bool = False

    def add(self, res) -> None:
        self.cycles.append(res.cycles)
        self.steps.append(res.steps)
        self.frame_counters.append(res.frame_counters)
        self.predictions.append(res.predictions)
        self.pe_counters = res.pe_counters.copy() if self.pe_counters is None else self.pe_counters + res.pe_counters
        self.layer_counters = (res.layer_counters.copy() if self.layer_counters is None
                               else self.layer_counters + res.layer_counters)
        if self.raster is None and len(res.cycles):
            self.raster = [f[0].copy() for f in res.fire]
            self.raster_end = int(res.steps[0]) - 1
        self.mode, self.early_stop = res.mode, res.early_stop

    @property
    def frames(self) -> int:
        return int(sum(len(c) for c in self.cycles))

    def cat(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name)) if getattr(self, name) else np.zeros(0, np.int64)


def summarize(stats: RunStats, emu, energy: EnergyModel, labels: np.ndarray | None = None,
              model: str = "") -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    n = stats.frames
    if n == 0:
        raise ValueError("no frames to report")
    hw, prog = emu.hw, emu.program
    cycles = stats.cat("cycles")
    fc = np.concatenate(stats.frame_counters)
    per = energy.frames(cycles, fc)
    t_mean = float(per["latency_s"].mean())
    e_mean = float(per["energy_j"].mean())
    power = e_mean / t_mean
    total_cycles = float(cycles.sum())
    comp = energy.breakdown_j(total_cycles, fc.sum(axis=0))
    comp_pf = {k: v / n for k, v in comp.items()}
    n_pe = hw.n_pe
    pe_e = energy.per_pe_j(total_cycles, stats.pe_counters) / n
    pe_layer = np.zeros(n_pe, np.int64)
    for p in prog.pes:
        pe_layer[p.pe] = p.layer + 1
    per_layer = []
    for c in range(len(prog.layers) + 1):
        mask = pe_layer == c
        name = "host router / unused PEs" if c == 0 else prog.layers[c - 1].name
        per_layer.append({"layer": c, "name": name, "pes": int(mask.sum()),
                          "energy_uj_per_frame": float(pe_e[mask].sum() * 1e6),
                          "dynamic_uj_per_frame": float(energy.dynamic_j(stats.layer_counters[c]) / n * 1e6),
                          "counters_per_frame": {k: v / n for k, v in CN.as_dict(stats.layer_counters[c]).items()}})
    events = stats.pe_counters[:, CN.IDX["packets_received"]] + stats.pe_counters[:, CN.IDX["spikes"]]
    pe_dyn = energy.dynamic_j(stats.pe_counters) / n
    per_pe = [{"pe": p, "x": p % hw.mesh_width, "y": p // hw.mesh_width, "layer": int(pe_layer[p]),
               "events_per_frame": float(events[p] / n), "energy_uj_per_frame": float(pe_e[p] * 1e6),
               "dynamic_uj_per_frame": float(pe_dyn[p] * 1e6),
               "busy_cycles_per_frame": float(stats.pe_counters[p, CN.BUSY] / n)} for p in range(n_pe)]
    preds = stats.cat("predictions")
    acc = None
    if labels is not None:
        labels = np.asarray(labels)[:n]
        acc = float((preds == labels).mean())
    init = dict(emu.init)
    init_dyn = (init["sram_writes"]["w"] * energy["e_w_write_pj"] + init["sram_writes"]["v"] * energy["e_v_write_pj"]
                + init["sram_writes"]["s"] * energy["e_s_write_pj"]
                + init["flits"] * (energy["e_fifo_pj"] * 2) + init["flit_hops"] * energy["e_link_pj"]
                + (init["flit_hops"] + init["flits"]) * energy["e_router_pj"]) * 1e-12
    init_t = init["cycles"] / energy.f_clk_hz
    init.update(ms=init_t * 1e3, energy_uj=(init_dyn + energy.p_static_w * init_t) * 1e6)
    cal_all = all(p.calibrated for k, p in energy.params.items() if k in ("f_clk_hz", "p_static_mw"))
    # a description that extrapolates the calibrated chip (yoso-16x16) says so in every label
    extrapolated = any(src == "extrapolated" for _k, _v, src, _n in hw.table())
    tag = ", extrapolated)" if extrapolated else (", calibrated)" if cal_all else ", uncalibrated)")
    # the paper's YOSO row (and the ratios it quotes) is MNIST 784-800-10
    paper_net = [(l.kind, l.n_in, l.n_out) for l in prog.layers] == [("dense", 784, 800), ("dense", 800, 10)]
    ours = {"accelerator": "STDBP+YOSO (this emulator" + tag, "coding": "Temp.",
            "accuracy": None if acc is None else 100 * acc, "fps": 1 / t_mean, "node_nm": 22,
            "power_mw": power * 1e3, "uj_per_frame": e_mean * 1e6}
    calibrated = {p["name"]: p["calibrated"] for p in energy.table()}
    return {
        "model": model, "mode": stats.mode, "early_stop": stats.early_stop, "frames": n,
        "hardware": {"name": hw.name, "revision": hw.revision, "sha256": hw.sha256},
        "calibrated": bool(calibrated["f_clk_hz"] and calibrated["p_static_mw"]),
        "extrapolated": extrapolated, "paper_network": paper_net,
        "layer_kinds": [l.kind for l in prog.layers],
        "accuracy": acc,
        "clock_hz": energy.f_clk_hz, "clock_calibrated": calibrated["f_clk_hz"],
        "static_power_mw": energy["p_static_mw"], "static_power_calibrated": calibrated["p_static_mw"],
        "cycles_per_frame": {"mean": float(cycles.mean()), "min": int(cycles.min()), "max": int(cycles.max())},
        "steps_per_frame": float(stats.cat("steps").mean()),
        "latency_ms": {"mean": t_mean * 1e3, "min": float(per["latency_s"].min() * 1e3),
                       "max": float(per["latency_s"].max() * 1e3)},
        "fps": 1.0 / t_mean,
        "power_mw": power * 1e3,
        "energy_uj_per_frame": e_mean * 1e6,
        "node_28nm": {"factor": SCALE_28NM, "power_mw": power * 1e3 * SCALE_28NM,
                      "energy_uj_per_frame": e_mean * 1e6 * SCALE_28NM},
        "breakdown_uj_per_frame": {k: comp_pf[k] * 1e6 for k in COMPONENTS},
        "breakdown_share": {k: comp_pf[k] / e_mean for k in COMPONENTS},
        "per_layer": per_layer,
        "per_pe": per_pe,
        "counters_per_frame": {k: v / n for k, v in CN.as_dict(fc).items()},
        "init": init,
        "parameters": energy.table(),
        "table_iv": [dict(zip(("accelerator", "coding", "accuracy", "fps", "node_nm", "power_mw", "uj_per_frame"), r))
                     for r in TABLE_IV] + [ours],
        "ratios": {"paper": ratios(0.751, 35.839), "ours": ratios(power * 1e3, e_mean * 1e6)},
    }


def _fmt(v, nd=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def print_table(rep: dict, console=None) -> None:
    """Rich tables for people: summary, breakdown, layers, Table IV."""
    from rich.console import Console
    from rich.table import Table

    con = console or Console()
    cal = " (calibrated)"
    unc = " (extrapolated)" if rep.get("extrapolated") else " (uncalibrated)"
    summary = Table(title=f"YOSO emulator: {rep['model']} ({rep['frames']} frames, {rep['mode']}"
                          f"{', early stop' if rep['early_stop'] else ''})")
    summary.add_column("quantity")
    summary.add_column("22 nm", justify="right")
    summary.add_column("28 nm (x1.17)", justify="right")
    acc = rep["accuracy"]
    summary.add_row("accuracy %", _fmt(None if acc is None else 100 * acc, 2), "")
    summary.add_row("latency ms/frame", _fmt(rep["latency_ms"]["mean"], 3), "")
    summary.add_row("frames/s", _fmt(rep["fps"], 2), "")
    summary.add_row("power mW", _fmt(rep["power_mw"], 4), _fmt(rep["node_28nm"]["power_mw"], 4))
    summary.add_row("energy uJ/frame", _fmt(rep["energy_uj_per_frame"], 3), _fmt(rep["node_28nm"]["energy_uj_per_frame"], 3))
    summary.add_row("cycles/frame (mean)", _fmt(rep["cycles_per_frame"]["mean"], 1), "")
    summary.add_row("time steps/frame", _fmt(rep["steps_per_frame"], 1), "")
    summary.add_row("clock MHz" + (cal if rep["clock_calibrated"] else unc), _fmt(rep["clock_hz"] / 1e6, 4), "")
    summary.add_row("static power mW" + (cal if rep["static_power_calibrated"] else unc),
                    _fmt(rep["static_power_mw"], 4), "")
    summary.add_row("model download (init) ms", _fmt(rep["init"]["ms"], 3), "")
    con.print(summary)
    if "energy_description" in rep:
        con.print(f"clock and energy: {rep['energy_description']['name']} r{rep['energy_description']['revision']}")
    for note in rep.get("notes", []):
        con.print(f"[yellow]note:[/] {note}")
    br = Table(title="energy per frame by component")
    br.add_column("component")
    br.add_column("uJ", justify="right")
    br.add_column("share", justify="right")
    for k in COMPONENTS:
        br.add_row(COMPONENT_TITLES[k], _fmt(rep["breakdown_uj_per_frame"][k], 5), f"{100 * rep['breakdown_share'][k]:.2f} %")
    con.print(br)
    lt = Table(title="by layer")
    for col in ("layer", "PEs", "uJ/frame", "dynamic uJ/frame", "packets in/frame", "spikes/frame"):
        lt.add_column(col, justify="right")
    for row in rep["per_layer"]:
        cpf = row["counters_per_frame"]
        lt.add_row(f"{row['layer']} {row['name']}", str(row["pes"]), _fmt(row["energy_uj_per_frame"], 4),
                   _fmt(row["dynamic_uj_per_frame"], 4), _fmt(cpf["packets_received"], 1), _fmt(cpf["spikes"], 1))
    con.print(lt)
    t4 = Table(title="Table IV of the paper, with this run")
    for col in ("accelerator", "coding", "acc. %", "fps", "nm", "power mW", "uJ/frame"):
        t4.add_column(col, justify="right")
    for r in rep["table_iv"]:
        t4.add_row(r["accelerator"], r["coding"], _fmt(r["accuracy"], 2), _fmt(r["fps"], 1), str(r["node_nm"]),
                   _fmt(r["power_mw"], 3), _fmt(r["uj_per_frame"], 3))
    con.print(t4)
    if not rep.get("paper_network", True):
        con.print("the ratios the paper quotes (section V-E) are for MNIST 784-800-10; not shown for this network")
        return
    rt = Table(title="ratios the paper quotes (other / YOSO): paper's row vs this run")
    for col in ("vs", "quantity", "paper quotes", "paper's row", "this run"):
        rt.add_column(col, justify="right")
    for q, quoted in (("power", PAPER_POWER_RATIOS), ("energy", PAPER_ENERGY_RATIOS)):
        for k, v in quoted.items():
            rt.add_row(k, q, f"{v}x", f"{rep['ratios']['paper'][q][k]:.2f}x", f"{rep['ratios']['ours'][q][k]:.2f}x")
    con.print(rt)


def render(rep: dict, out_dir: str | Path, stats: RunStats | None = None, emu=None, plots: bool = True,
           force: bool = True) -> dict[str, str]:
    """Write ``out_dir/report.json`` and (with stats and emu) the PNG plots; returns their paths."""
    from stdbp.fileio import atomic_write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report": str(atomic_write_json(out / "report.json", rep))}
    if plots and stats is not None and emu is not None:
        from yoso_backend import plots as P

        paths["mesh"] = str(P.mesh_heatmap(rep, emu.hw, out / "mesh.png"))
        if stats.raster is not None:
            paths["raster"] = str(P.spike_raster(stats.raster, out / "raster.png",
                                                 names=["input"] + [l.name for l in emu.program.layers],
                                                 end=stats.raster_end))
    return paths
