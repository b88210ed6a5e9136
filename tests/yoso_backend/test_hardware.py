"""Hardware description: loading, sources, hashing, validation errors, flit layout."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stdbp.errors import UserError
from yoso_backend.hardware import (DEFAULT_HW, SCHEMA, SOURCES, builtin_names, from_dict, hardware_hash,
                                   load_hardware)


@pytest.fixture(scope="module")
def hw():
    return load_hardware(DEFAULT_HW)


def test_builtin_default(hw):
    assert "yoso-6x7" in builtin_names()
    assert (hw.mesh_width, hw.mesh_height, hw.n_pe) == (6, 7, 42)
    assert hw.neurons_per_pe == 256
    assert hw.value("router", "cycles_per_hop") == 2 and hw.flit_bits == 32
    assert hw.value("router", "routing") == "XY"
    # the paper's facts are marked as such
    assert hw.source("mesh", "width") == "paper" and hw.source("pe", "neurons") == "paper"
    assert hw.source("router", "cycles_per_hop") == "opensmart"
    assert hw.source("pe", "weights") == "assumption"


def test_every_value_has_a_known_source(hw):
    rows = hw.table()
    assert len(rows) == sum(len(keys) for keys in SCHEMA.values())
    for key, value, source, _note in rows:
        assert source in SOURCES, key


def test_derived_ranges(hw):
    assert hw.w_max == 127
    assert (hw.acc_min, hw.acc_max) == (-(1 << 15), (1 << 15) - 1)
    assert (hw.v_min, hw.v_max) == (-(1 << 23), (1 << 23) - 1)
    assert hw.theta_max <= hw.v_max
    assert hw.max_step == 4095
    assert [hw.pe_id(*hw.pe_xy(p)) for p in range(hw.n_pe)] == list(range(hw.n_pe))


def test_hash_is_stable_and_sensitive(hw):
    assert hw.sha256 == hardware_hash(hw.to_dict()) == load_hardware(DEFAULT_HW).sha256
    raw = hw.to_dict()
    raw["pe"]["weights"]["value"] = 8192
    assert from_dict(raw).sha256 != hw.sha256
    raw = hw.to_dict()
    raw["pe"]["weights"]["source"] = "prior"  # a source change is a change of the description
    assert from_dict(raw).sha256 != hw.sha256


def test_load_from_toml_and_json_paths(hw, tmp_path):
    from yoso_backend.hardware import HW_DIR

    assert load_hardware(HW_DIR / "yoso-6x7.toml") == hw
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(hw.to_dict()))
    assert load_hardware(path) == hw


def _mutate(hw, path: str, value):
    raw = copy.deepcopy(hw.to_dict())
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


DELETE = object()
BAD = [
    ("bits.weight.value", 0, "bits.weight"),
    ("bits.weight.value", 17, "out of range"),
    ("bits.weight.value", "8", "must be an integer"),
    ("bits.weight.value", 8.0, "must be an integer"),
    ("bits.weight.value", True, "must be an integer"),
    ("bits.weight.source", "guess", "source 'guess'"),
    ("bits.weight.unit", "bit", "unknown field"),
    ("bits.weight", 8, "must be a table"),
    ("bits.weight", DELETE, "bits.weight: missing"),
    ("bits.colour", {"value": 1, "source": "assumption"}, "unknown key"),
    ("gpu", {}, "unknown section"),
    ("mesh", DELETE, "[mesh] missing"),
    ("format_version", 2, "format_version"),
    ("format", "other", "format"),
    ("bits.accumulated_weight.value", 6, "accumulated_weight = 6 < bits.weight"),
    ("bits.potential.value", 12, "bits.potential = 12 < bits.accumulated_weight"),
    ("bits.threshold.value", 24, "bits.threshold = 24 > bits.potential - 1"),
    ("bits.time_step.value", 11, "flit fields"),
    ("router.routing.value", "YX", "routing"),
    ("host.x.value", 6, "outside"),
    ("time.default_window_steps.value", 5000, "default_window_steps = 5000"),
    ("pe.spike_address_depth.value", 256, "spike_address_depth"),
    ("clock.frequency_hz.value", -1.0, "out of range"),
    ("energy.add_pj.value", float("nan"), "must be a number"),
]


@pytest.mark.parametrize("path,value,needle", BAD, ids=[b[0] + "=" + repr(b[1])[:12] for b in BAD])
def test_bad_values_give_clear_errors(hw, path, value, needle):
    raw = _mutate(hw, path, value)
    with pytest.raises(UserError) as err:
        from_dict(raw, where="bad.toml")
    assert needle in str(err.value)
    assert str(err.value).startswith("bad.toml: ")


def test_mesh_must_fit_coordinates(hw):
    raw = _mutate(hw, "mesh.width.value", 9)
    with pytest.raises(UserError, match="does not fit bits.coordinate"):
        from_dict(raw)


def test_unknown_name_and_bad_file(tmp_path):
    with pytest.raises(UserError, match="unknown hardware description"):
        load_hardware("yoso-99x99")
    bad = tmp_path / "broken.toml"
    bad.write_text("[mesh\nwidth = 3")
    with pytest.raises(UserError, match="cannot parse"):
        load_hardware(bad)
    with pytest.raises(UserError, match="not found"):
        load_hardware(tmp_path / "missing.toml")


@given(x=st.integers(0, 7), y=st.integers(0, 7), kind=st.integers(0, 3), index=st.integers(0, 4095),
       step=st.integers(0, 4095))
def test_flit_pack_unpack_roundtrip(x, y, kind, index, step):
    flit = load_hardware().flit
    word = flit.pack(x, y, kind, index, step)
    assert 0 <= word < (1 << 32)
    assert flit.unpack(word) == {"x": x, "y": y, "kind": kind, "index": index, "step": step}


def test_flit_layout_matches_spec(hw):
    f = hw.flit
    # docs/yoso-spec.md section 5: x 31..29, y 28..26, kind 25..24, index 23..12, step 11..0
    assert (f.x_shift, f.y_shift, f.kind_shift, f.index_shift) == (29, 26, 24, 12)
    assert f.pack(1, 0, 0, 0, 0) == 1 << 29
    with pytest.raises(ValueError):
        f.pack(0, 0, 0, 4096, 0)
