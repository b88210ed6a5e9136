"""Calibration: the closed-form fit reproduces the paper's targets; the written description loads
back, differs only in the two calibrated values, and is used (and marked) by the backend."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stdbp.errors import UserError
from yoso_backend import calibrate as C
from yoso_backend.artifact import save_program
from yoso_backend.cli import calibrate_app
from yoso_backend.emulator import Emulator
from yoso_backend.energy import EnergyModel
from yoso_backend.hardware import from_dict, load_hardware
from yoso_backend.synth import random_program


@given(st.floats(1e2, 1e8), st.floats(0, 35e-6))
@settings(max_examples=200, deadline=None)
def test_fit_reproduces_targets(mean_cycles, mean_dyn):
    cal = C.fit(mean_cycles, mean_dyn)
    t = mean_cycles / cal.f_clk_hz
    e = mean_dyn + cal.p_static_w * t
    assert t == pytest.approx(C.PAPER_LATENCY_S, rel=1e-3)
    assert e == pytest.approx(C.PAPER_ENERGY_J, rel=1e-3)
    assert abs(t / C.PAPER_LATENCY_S - 1) < 1e-12 and abs(e / C.PAPER_ENERGY_J - 1) < 1e-9
    assert cal.power_w == pytest.approx(0.751e-3, rel=3e-4)  # 0.751 mW follows


def test_fit_rejects_impossible_inputs():
    with pytest.raises(UserError):
        C.fit(0, 1e-6)
    with pytest.raises(UserError):
        C.fit(1000, 40e-6)  # more dynamic energy than the target: negative static power


def test_calibrated_description_round_trip():
    hw = load_hardware("yoso-6x7")
    cal = C.fit(12345.0, 3e-6, frames=7, model="m", date="today")
    new = from_dict(tomllib.loads(C.to_toml(C.calibrated_description(hw, cal))))
    assert new.name == "yoso-6x7-calibrated"
    assert C.structure_of(new.raw) == C.structure_of(hw.raw)
    assert new.source("clock", "frequency_hz") == "calibrated" and new.clock_hz == cal.f_clk_hz
    m = EnergyModel.from_hw(new)
    assert m["p_static_mw"] == pytest.approx(cal.p_static_w * 1e3)
    marks = {p["name"]: p["calibrated"] for p in m.table()}
    assert marks["f_clk_hz"] and marks["p_static_mw"] and not marks["e_add_pj"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "model.yoso"
    save_program(random_program([784, 60, 10], seed=3, windows=300), path)
    return path


def test_calibration_of_an_emulator_run_reproduces_targets(model_dir):
    emu = Emulator.load(model_dir)
    px = np.random.default_rng(0).integers(0, 256, (30, 784)).astype(np.uint8)
    res = emu.run(px)
    m0 = EnergyModel.from_hw(emu.hw)
    cal = C.fit(res.cycles.mean(), m0.dynamic_j(res.frame_counters).mean())
    m1 = EnergyModel.from_hw(from_dict(C.calibrated_description(emu.hw, cal)))
    f = m1.frames(res.cycles, res.frame_counters)
    assert abs(f["latency_s"].mean() / 47.71e-3 - 1) < 1e-3
    assert abs(f["energy_j"].mean() / 35.839e-6 - 1) < 1e-3
    assert abs(f["energy_j"].mean() / f["latency_s"].mean() / 0.751e-3 - 1) < 1e-3


def test_cli_writes_a_calibrated_description(model_dir, tmp_path):
    out = tmp_path / "cal.toml"
    runner = CliRunner()
    r = runner.invoke(calibrate_app, [str(model_dir), "--data", "sample", "--limit", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    hw = load_hardware(out)
    assert hw.source("energy", "static_power_mw") == "calibrated"
    # the backend uses it when asked, and the report marks the figures calibrated
    from yoso_backend.runtime_backend import YosoBackend

    b = YosoBackend()
    b.prepare(str(model_dir), hw=str(out))
    px = np.load(__import__("pathlib").Path(__file__).resolve().parents[2] / "models/sample/mnist-test-sample.npz")["images"][:20]
    b.run(px.reshape(20, -1))
    rep = b.report()
    assert rep["calibrated"] and rep["latency_ms"]["mean"] == pytest.approx(47.71, rel=1e-3)
    assert rep["energy_uj_per_frame"] == pytest.approx(35.839, rel=1e-3)
    # refuses to overwrite; bad model path: one line, exit 2
    r = runner.invoke(calibrate_app, [str(model_dir), "--data", "sample", "--limit", "5", "--out", str(out)])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(calibrate_app, [str(tmp_path / "nope"), "--out", str(tmp_path / "x.toml")])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_energy_description_must_match_the_program(model_dir, tmp_path, monkeypatch):
    import yoso_backend.hardware as H
    from yoso_backend.runtime_backend import energy_description

    prog_hw = Emulator.load(model_dir).hw
    other = prog_hw.to_dict()
    other["pe"]["weights"]["value"] = 8192  # a structural change: not just clock and static power
    bad = tmp_path / "other.toml"
    bad.write_text(C.to_toml(other))
    with pytest.raises(UserError, match="more than the clock"):
        energy_description(prog_hw, str(bad))
    # a stale built-in calibration is passed over, with a note
    monkeypatch.setattr(H, "HW_DIR", tmp_path)
    (tmp_path / f"{prog_hw.name}-calibrated.toml").write_text(C.to_toml(other))
    notes = []
    assert energy_description(prog_hw, None, notes) is prog_hw and "ignored" in notes[0]
    good = C.calibrated_description(prog_hw, C.fit(1000.0, 1e-6))
    (tmp_path / f"{prog_hw.name}-calibrated.toml").write_text(C.to_toml(good))
    assert energy_description(prog_hw, None, []).source("clock", "frequency_hz") == "calibrated"
