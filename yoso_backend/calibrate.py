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
from dataclasses import asdict, dataclass
from pathlib import Path

from stdbp.errors import UserError

PAPER_LATENCY_S = 47.71e-3   # Table IV / section V-E: 47.71 ms per image
PAPER_ENERGY_J = 35.839e-6   # Table IV: 35.839 uJ per frame
PAPER_POWER_W = 0.751e-3     # Table IV: 0.751 mW (= E / T within 0.025 %)
SOURCE = "STDBP paper (Table IV, section V-E): MNIST 784-800-10 on YOSO, 22 nm"


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


def overlay_toml(cal: Calibration) -> str:
    """The calibration as a TOML overlay: an ``[energy]`` table whose two entries replace the
    hardware description's placeholders (marked calibrated), plus a ``[calibration]`` record."""
    src = f"calibrated by `stdbp calibrate` on {cal.frames} frames of {cal.model or 'the reference model'} to {SOURCE}"
    lines = [
        "# Written by `stdbp calibrate`: do not edit by hand, rerun the command.",
        "# Overlay on the hardware description: these keys replace its [energy] values.",
        "[energy.f_clk_hz]",
        f"value = {cal.f_clk_hz!r}",
        'unit = "Hz"',
        f"source = {_q(src)}",
        "calibrated = true",
        "",
        "[energy.p_static_mw]",
        f"value = {cal.p_static_w * 1e3!r}",
        'unit = "mW"',
        f"source = {_q(src)}",
        "calibrated = true",
        "",
        "[calibration]",
    ]
    for key, val in asdict(cal).items():
        lines.append(f"{key} = {_q(val) if isinstance(val, str) else repr(val)}")
    lines.append(f"power_w = {cal.power_w!r}")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_overlay(path: str | Path) -> dict:
    import tomllib

    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(path, "calibration file not found", "run `stdbp calibrate` or pass an existing file") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(path, f"not valid TOML ({err})", "rerun `stdbp calibrate --force`") from None


def today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
