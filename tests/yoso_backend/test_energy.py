"""Energy/latency model and report: hand-checked energies, the paper-consistency checks."""

from __future__ import annotations

import numpy as np
import pytest

from yoso_backend import counters as CN
from yoso_backend.emulator import Emulator
from yoso_backend.energy import SCALE_28NM, EnergyModel
from yoso_backend.hardware import load_hardware
from yoso_backend.report import PAPER_ENERGY_RATIOS, PAPER_POWER_RATIOS, TABLE_IV, RunStats, ratios, summarize
from yoso_backend.synth import random_program


def test_dynamic_energy_by_hand():
    hw = load_hardware("yoso-6x7")
    m = EnergyModel.from_hw(hw)
    e = hw.energy
    cnt = np.zeros(CN.K, np.int64)
    cnt[CN.W_R], cnt[CN.A_R], cnt[CN.A_W], cnt[CN.V_R], cnt[CN.V_W], cnt[CN.S_R] = 10, 20, 30, 4, 5, 6
    cnt[CN.ADDS], cnt[CN.FIFO], cnt[CN.ROUTER], cnt[CN.FLIT_HOPS] = 7, 8, 9, 11
    want = (10 * e["weight_sram_read_pj"] + 20 * e["accw_sram_read_pj"] + 30 * e["accw_sram_write_pj"]
            + 4 * e["neuron_sram_read_pj"] + 5 * e["neuron_sram_write_pj"] + 6 * e["spike_addr_sram_read_pj"]
            + 7 * e["add_pj"]
            + 8 * e["fifo_op_pj"] + 9 * e["router_hop_pj"] + 11 * e["link_hop_pj"]) * 1e-12
    assert m.dynamic_j(cnt) == pytest.approx(want, rel=1e-12)
    assert m.f_clk_hz == hw.clock_hz and m["p_static_mw"] == e["static_power_mw"]
    assert not any(p["calibrated"] for p in m.table())
    assert all(p["source"] for p in m.table())  # every parameter names its source


def test_frame_energy_is_dynamic_plus_static_times_latency():
    m = EnergyModel.from_hw(load_hardware("yoso-6x7"))
    cycles = np.array([1000, 2500])
    cnt = np.zeros((2, CN.K), np.int64)
    cnt[:, CN.ADDS] = [100, 0]
    f = m.frames(cycles, cnt)
    np.testing.assert_allclose(f["latency_s"], cycles / m.f_clk_hz)
    np.testing.assert_allclose(f["energy_j"], m.dynamic_j(cnt) + m.p_static_w * cycles / m.f_clk_hz)
    np.testing.assert_allclose(f["power_w"] * f["latency_s"], f["energy_j"])


def test_paper_numbers_are_consistent():
    # P x L = E within 0.025 %, fps = 1 / L, the x1.17 column, the ratios the paper quotes
    assert 0.751e-3 * 47.71e-3 == pytest.approx(35.839e-6, rel=3e-4)
    assert 1 / 47.71e-3 == pytest.approx(21, abs=0.05)
    assert 0.751 * SCALE_28NM == pytest.approx(0.878, abs=1e-3)  # the paper truncates 0.87867
    assert 35.839 * SCALE_28NM == pytest.approx(41.93, abs=6e-3)
    r = ratios(0.751, 35.839)
    for name, quoted in PAPER_POWER_RATIOS.items():
        assert r["power"][name] == pytest.approx(quoted, rel=5e-3), name
    for name, quoted in PAPER_ENERGY_RATIOS.items():
        assert r["energy"][name] == pytest.approx(quoted, rel=5e-3), name
    assert TABLE_IV[-1][1:] == ("Temp.", 98.45, 21, 22, 0.751, 35.839)


@pytest.fixture(scope="module")
def small_run():
    prog = random_program([64, 40, 10], seed=2, windows=300)
    emu = Emulator(prog)
    rng = np.random.default_rng(2)
    px = rng.integers(0, 256, (40, 64)).astype(np.uint8)
    stats = RunStats()
    for s in (0, 25):
        stats.add(emu.run(px[s:s + 25] if s == 0 else px[s:]))
    return emu, stats, rng.integers(0, 10, 40)


def test_report_relations(small_run, tmp_path):
    emu, stats, labels = small_run
    m = EnergyModel.from_hw(emu.hw)
    rep = summarize(stats, emu, m, labels, model="small")
    assert rep["frames"] == 40
    assert rep["power_mw"] * rep["latency_ms"]["mean"] == pytest.approx(rep["energy_uj_per_frame"], rel=1e-12)
    assert rep["fps"] == pytest.approx(1e3 / rep["latency_ms"]["mean"], rel=1e-12)
    assert rep["node_28nm"]["power_mw"] == pytest.approx(rep["power_mw"] * 1.17, rel=1e-12)
    assert rep["node_28nm"]["energy_uj_per_frame"] == pytest.approx(rep["energy_uj_per_frame"] * 1.17, rel=1e-12)
    assert sum(rep["breakdown_uj_per_frame"].values()) == pytest.approx(rep["energy_uj_per_frame"], rel=1e-9)
    assert sum(r["energy_uj_per_frame"] for r in rep["per_layer"]) == pytest.approx(rep["energy_uj_per_frame"], rel=1e-9)
    assert sum(r["energy_uj_per_frame"] for r in rep["per_pe"]) == pytest.approx(rep["energy_uj_per_frame"], rel=1e-9)
    assert rep["cycles_per_frame"]["mean"] == pytest.approx(np.concatenate(stats.cycles).mean())
    assert rep["accuracy"] == pytest.approx((np.concatenate(stats.predictions) == labels).mean())
    assert rep["table_iv"][-1]["power_mw"] == rep["power_mw"] and len(rep["table_iv"]) == len(TABLE_IV) + 1
    assert rep["calibrated"] is False and rep["init"]["cycles"] > 0
    from yoso_backend.report import print_table, render

    files = render(rep, tmp_path, stats, emu)
    assert {"report", "mesh", "raster"} <= set(files)
    for f in files.values():
        assert (tmp_path / f).stat().st_size > 1000
    from rich.console import Console

    con = Console(record=True, width=140)
    print_table(rep, con)
    text = con.export_text()
    assert "uncalibrated" in text and "STDBP+YOSO (paper)" in text and "this emulator" in text
