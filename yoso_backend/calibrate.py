"""Fit YOSO's unknown clock and static power to the paper's per-frame latency and energy.

With ``T = cycles / f_clk`` and ``E = E_dyn + P_static * T`` (energy.py), the means over the
reference run's frames are ``mean T = mean_cycles / f_clk`` and
``mean E = mean E_dyn + P_static * mean T``. Two unknowns, two targets, a closed form::

    f_clk    = mean_cycles / T_target
    P_static = (E_target - mean E_dyn) / T_target

so the calibrated model reproduces both targets exactly (up to float rounding) and the average
power ``E_target / T_target`` (0.751 mW for 47.71 ms and 35.839 uJ) follows. The fit is a pure
function of two measured means, so tests of it are exact and cheap; measuring the means is the
emulator's job (``stdbp calibrate`` runs the MNIST 784-800-10 reference model).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from stdbp.errors import UserError

PAPER_LATENCY_S = 47.71e-3   # Table IV / section V-E: 47.71 ms per image
PAPER_ENERGY_J = 35.839e-6   # Table IV: 35.839 uJ per frame
PAPER_POWER_W = 0.751e-3     # Table IV: 0.751 mW (= E / T within 0.025 %)
SOURCE = "STDBP paper (Table IV, section V-E): MNIST 784-800-10 on YOSO, 22 nm"


def is_paper_target(cal) -> bool:
    """Whether a calibration aimed at the paper's figures (else: targets the user chose)."""
    return (abs(cal.target_latency_s / PAPER_LATENCY_S - 1) < 1e-9
            and abs(cal.target_energy_j / PAPER_ENERGY_J - 1) < 1e-9)


@dataclass(frozen=True)
class Calibration:
    f_clk_hz: float
    p_static_w: float
    mean_cycles: float
    mean_dynamic_j: float
    target_latency_s: float = PAPER_LATENCY_S
    target_energy_j: float = PAPER_ENERGY_J
    frames: int = 0
    model: str = ""
    date: str = ""

    @property
    def power_w(self) -> float:
        return self.target_energy_j / self.target_latency_s


def fit(mean_cycles: float, mean_dynamic_j: float, target_latency_s: float = PAPER_LATENCY_S,
        target_energy_j: float = PAPER_ENERGY_J, **meta) -> Calibration:
    """Closed-form fit of f_clk and P_static (see the module docstring)."""
    if not mean_cycles > 0:
        raise UserError("calibration", f"mean cycles per frame is {mean_cycles}",
                        "the reference run must process at least one frame")
    if not 0 <= mean_dynamic_j < target_energy_j:
        raise UserError("calibration", f"dynamic energy {mean_dynamic_j * 1e6:.3f} uJ/frame is not below the "
                        f"target {target_energy_j * 1e6:.3f} uJ", "lower the per-operation energies in [energy]")
    return Calibration(f_clk_hz=mean_cycles / target_latency_s,
                       p_static_w=(target_energy_j - mean_dynamic_j) / target_latency_s,
                       mean_cycles=float(mean_cycles), mean_dynamic_j=float(mean_dynamic_j),
                       target_latency_s=target_latency_s, target_energy_j=target_energy_j, **meta)


CALIBRATED_KEYS = (("clock", "frequency_hz"), ("energy", "static_power_mw"))


def calibrated_description(hw, cal: Calibration) -> dict:
    """A copy of the description ``hw`` (its raw dict) with the fitted clock and static power, marked
    ``source = "calibrated"``; every other value, and its source, unchanged."""
    import copy

    raw = copy.deepcopy(hw.raw)
    raw["name"] = hw.name if hw.name.endswith("-calibrated") else f"{hw.name}-calibrated"
    how = (f"fitted by `stdbp calibrate` on {cal.frames} frames of {cal.model or 'the reference model'} "
           f"({cal.date}): mean {cal.mean_cycles:.1f} cycles and {cal.mean_dynamic_j * 1e6:.4f} uJ dynamic "
           f"per frame -> {cal.target_latency_s * 1e3:.2f} ms, {cal.target_energy_j * 1e6:.3f} uJ "
           f"({SOURCE if is_paper_target(cal) else 'targets given on the command line'})")
    raw["clock"]["frequency_hz"] = {"value": float(cal.f_clk_hz), "source": "calibrated", "note": how}
    raw["energy"]["static_power_mw"] = {"value": float(cal.p_static_w * 1e3), "source": "calibrated", "note": how}
    return raw


def structure_of(raw: dict) -> dict:
    """The description without its calibrated keys and name: what a compiled program depends on."""
    import copy

    out = copy.deepcopy(raw)
    out.pop("name", None)
    for section, key in CALIBRATED_KEYS:
        out.get(section, {}).pop(key, None)
    return out


def to_toml(raw: dict) -> str:
    """A description as TOML in the layout of yoso_backend/hw/*.toml (inline tables per value)."""
    lines = ["# Written by `stdbp calibrate`: the hardware description with a fitted clock and static power.",
             "# Do not edit by hand; rerun the command. Specification: docs/yoso-spec.md section 2.", ""]
    for key in ("format", "format_version", "name", "revision"):
        lines.append(f"{key} = {_val(raw[key])}")
    for section, items in raw.items():
        if not isinstance(items, dict):
            continue
        lines += ["", f"[{section}]"]
        for key, item in items.items():
            fields = ", ".join(f"{k} = {_val(v)}" for k, v in item.items())
            lines.append(f"{key} = {{ {fields} }}")
    return "\n".join(lines) + "\n"


def _val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
