"""Latency, power and energy of a frame from the emulator's counters.

The model (yoso-facts.md, "A shape for the energy/latency model")::

    T_frame = cycles_frame / f_clk
    E_frame = sum_PE ( sum_s (reads_s * e_read_s + writes_s * e_write_s)    s in {w, a, v, s}
                       + adds * e_add + fifo_ops * e_fifo )
            + router_flits * e_router + flit_hops * e_link
            + P_static * T_frame
    P_avg   = E_frame / T_frame,   fps = 1 / T_frame (frames run one at a time)
    28 nm column: P and E x 1.17 (the paper's half-generation factor, Table IV)

Every parameter carries its unit and its source. The per-operation defaults are published 45 nm
figures scaled to 22 nm (dynamic energy ~ C V^2: x0.4 for logic, x0.6 for SRAM, whose bit-line
energy shrinks less); they are priors, not YOSO facts. ``f_clk`` and ``P_static`` are unknown for
YOSO: ``stdbp calibrate`` fits them to the paper's 47.71 ms and 35.839 uJ and the report marks
them *calibrated*. Parameters found in the hardware description (``[energy]`` table of the TOML)
or in a calibration overlay replace these defaults, key by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from yoso_backend import counters as C

SCALE_28NM = 1.17  # Table IV footnote: "x1.17 for half a generation"
LOGIC_45_TO_22 = 0.4
SRAM_45_TO_22 = 0.6


def _sram_pj_45nm(size_bytes: float, bits: int) -> float:
    """Horowitz (ISSCC 2014) 64-bit SRAM read at 45 nm: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ;
    log-linear between the points, clamped to 10 pJ below 8 KB; scaled by ``bits / 64``."""
    pts_kb = np.log2([8.0, 32.0, 1024.0])
    pts_pj = np.array([10.0, 20.0, 100.0])
    e64 = float(np.interp(np.log2(max(size_bytes, 1.0) / 1024.0), pts_kb, pts_pj))
    return e64 * bits / 64.0


@dataclass(frozen=True)
class Param:
    value: float
    unit: str
    source: str
    calibrated: bool = False


def default_params(sram_bytes: Mapping[str, float] | None = None,
                   sram_bits: Mapping[str, int] | None = None,
                   flit_bits: int = 32) -> dict[str, Param]:
    """The documented priors, for the SRAM sizes and word widths of the hardware description."""
    sizes = {"w": 16384, "a": 512, "v": 512, "s": 512, **(sram_bytes or {})}
    bits = {"w": 8, "a": 16, "v": 16, "s": 16, **(sram_bits or {})}
    out: dict[str, Param] = {}
    for s in C.SRAMS:
        e = _sram_pj_45nm(sizes[s], bits[s]) * SRAM_45_TO_22
        src = (f"Horowitz ISSCC 2014 64-bit SRAM read at 45 nm, {sizes[s]} B, x{bits[s]}/64 bits, "
               f"x{SRAM_45_TO_22} to 22 nm")
        out[f"e_{s}_read_pj"] = Param(e, "pJ", src)
        out[f"e_{s}_write_pj"] = Param(e, "pJ", src + "; write taken equal to read (assumption)")
    out["e_add_pj"] = Param(0.05 * LOGIC_45_TO_22, "pJ",
                            f"Horowitz ISSCC 2014 16-bit integer add 0.05 pJ at 45 nm, x{LOGIC_45_TO_22} to 22 nm")
    # a FIFO slot is a small register file: one 32-bit word in or out ~ a 64-bit 8 KB SRAM access x 1/2
    out["e_fifo_pj"] = Param(_sram_pj_45nm(8192, flit_bits) * SRAM_45_TO_22 * 0.5, "pJ",
                             "estimate: half a Horowitz 8 KB SRAM access of one flit, 22 nm")
    # OpenSMART: ~50 mW per 5-port 128-bit router at 1 GHz (15 nm) = 50 pJ/cycle for up to 5 flits
    out["e_router_pj"] = Param(50.0 / 5 * flit_bits / 128 * 1.5, "pJ",
                               "OpenSMART (ISPASS 2017) ~50 mW/router at 1 GHz, 15 nm, per 32-bit "
                               "flit of 5 ports, x1.5 to 22 nm")
    out["e_link_pj"] = Param(0.0404 * flit_bits * 1.0 * LOGIC_45_TO_22, "pJ",
                             f"low-swing link 40.4 fJ/bit/mm at 45 nm, 1 mm PE pitch (assumption), "
                             f"{flit_bits} bits, x{LOGIC_45_TO_22} to 22 nm")
    out["p_static_mw"] = Param(0.7, "mW", "placeholder: unknown for YOSO; run `stdbp calibrate`")
    out["f_clk_hz"] = Param(1.0e6, "Hz", "placeholder: unknown for YOSO; run `stdbp calibrate`")
    return out


COMPONENTS = ("w_sram", "a_sram", "v_sram", "s_sram", "adder", "fifo", "router", "link", "static")
COMPONENT_TITLES = {
    "w_sram": "weight SRAM", "a_sram": "acc.-weight SRAM", "v_sram": "potential SRAM",
    "s_sram": "spike-addr SRAM", "adder": "adder", "fifo": "FIFOs", "router": "routers",
    "link": "links", "static": "static (leakage+clock)",
}


@dataclass(frozen=True)
class EnergyModel:
    params: dict[str, Param] = field(default_factory=default_params)

    def __getitem__(self, key: str) -> float:
        return self.params[key].value

    @property
    def f_clk_hz(self) -> float:
        return self["f_clk_hz"]

    @property
    def p_static_w(self) -> float:
        return self["p_static_mw"] * 1e-3

    def with_overrides(self, table: Mapping[str, Any], source: str, calibrated: bool = False) -> "EnergyModel":
        """Replace parameters by the numbers of a TOML table (unknown keys are ignored).

        A value may be a number or a table ``{value=, source=, calibrated=}``."""
        params = dict(self.params)
        for key, val in table.items():
            if key not in params:
                continue
            if isinstance(val, Mapping):
                params[key] = replace(params[key], value=float(val["value"]),
                                      source=str(val.get("source", source)),
                                      calibrated=bool(val.get("calibrated", calibrated)))
            elif isinstance(val, (int, float)) and not isinstance(val, bool):
                params[key] = replace(params[key], value=float(val), source=source, calibrated=calibrated)
        return EnergyModel(params)

    # ---- per-component dynamic energy ------------------------------------------------------
    def dynamic_pj(self, cnt: np.ndarray) -> dict[str, np.ndarray]:
        """Dynamic energy in pJ per component for counter vectors ``cnt[..., K]`` (any leading shape)."""
        cnt = np.asarray(cnt, dtype=np.float64)
        out = {}
        for s in C.SRAMS:
            out[f"{s}_sram"] = (cnt[..., C.IDX[f"{s}_reads"]] * self[f"e_{s}_read_pj"]
                                + cnt[..., C.IDX[f"{s}_writes"]] * self[f"e_{s}_write_pj"])
        out["adder"] = cnt[..., C.ADDS] * self["e_add_pj"]
        out["fifo"] = cnt[..., C.FIFO] * self["e_fifo_pj"]
        out["router"] = cnt[..., C.ROUTER] * self["e_router_pj"]
        out["link"] = cnt[..., C.FLIT_HOPS] * self["e_link_pj"]
        return out

    def dynamic_j(self, cnt: np.ndarray) -> np.ndarray:
        """Total dynamic energy in J for counter vectors ``cnt[..., K]``."""
        return sum(self.dynamic_pj(cnt).values()) * 1e-12

    def latency_s(self, cycles) -> np.ndarray:
        return np.asarray(cycles, dtype=np.float64) / self.f_clk_hz

    def frames(self, cycles: np.ndarray, frame_counters: np.ndarray) -> dict[str, np.ndarray]:
        """Per-frame latency (s), energy (J) and power (W) from ``cycles[N]`` and ``frame_counters[N, K]``."""
        t = self.latency_s(cycles)
        e = self.dynamic_j(frame_counters) + self.p_static_w * t
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(t > 0, e / np.where(t > 0, t, 1.0), 0.0)
        return {"latency_s": t, "energy_j": e, "power_w": p}

    def breakdown_j(self, total_cycles: float, counters_sum: np.ndarray) -> dict[str, float]:
        """Energy in J per component over a run (``counters_sum[K]``, ``total_cycles`` of all frames)."""
        out = {k: float(np.sum(v)) * 1e-12 for k, v in self.dynamic_pj(counters_sum).items()}
        out["static"] = self.p_static_w * float(total_cycles) / self.f_clk_hz
        return out

    def per_pe_j(self, total_cycles: float, pe_counters: np.ndarray) -> np.ndarray:
        """Energy in J per PE ``[n_pe]``: its dynamic energy plus an equal share of the static power."""
        n_pe = pe_counters.shape[0]
        static = self.p_static_w * float(total_cycles) / self.f_clk_hz / n_pe
        return self.dynamic_j(pe_counters) + static

    @classmethod
    def from_hw(cls, hw) -> "EnergyModel":
        """The model of a hardware description: its [energy] table and [clock] over the documented
        defaults: a read and a write figure (per word) for each of the four SRAMs, the adder, FIFOs,
        routers, links and static power. Entries whose source is "calibrated" are marked calibrated."""
        from yoso_backend.artifact import sram_specs

        specs = sram_specs(hw)
        sizes = {"w": specs["weight"].depth * hw.weight_bits / 8, "a": specs["accw"].depth * hw.acc_bits / 8,
                 "v": specs["neuron"].depth * 8, "s": specs["spike_addr"].depth * hw.flit_bits / 8}
        bits = {"w": hw.weight_bits, "a": hw.acc_bits, "v": 64, "s": hw.flit_bits}
        params = default_params(sizes, bits, hw.flit_bits)
        mapping = {"add_pj": ["e_add_pj"], "fifo_op_pj": ["e_fifo_pj"], "router_hop_pj": ["e_router_pj"],
                   "link_hop_pj": ["e_link_pj"], "static_power_mw": ["p_static_mw"],
                   **{f"{name}_sram_{op}_pj": [f"e_{s}_{op}_pj"]
                      for s, name in (("w", "weight"), ("a", "accw"), ("v", "neuron"), ("s", "spike_addr"))
                      for op in ("read", "write")}}
        rows = [("energy", k, mine) for k, mine in mapping.items()] + [("clock", "frequency_hz", ["f_clk_hz"])]
        for section, key, mine in rows:
            if key not in hw.raw.get(section, {}):
                continue
            item = hw.raw[section][key]
            src = f"{hw.name} r{hw.revision} {section}.{key} ({item['source']}): {item.get('note', '')}".rstrip(": ")
            for m in mine:
                params[m] = replace(params[m], value=float(item["value"]), source=src,
                                    calibrated=item["source"] == "calibrated")
        return cls(params)

    def table(self) -> list[dict[str, Any]]:
        """Parameters as rows (name, value, unit, source, calibrated) for the report."""
        return [{"name": k, "value": p.value, "unit": p.unit, "source": p.source, "calibrated": p.calibrated}
                for k, p in self.params.items()]
