"""model.yoso/: round trip of every artifact, hash verification, atomic/forced writes, SRAM layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import CompileOptions, compile_model
from compiler.testmodels import dense_model
from stdbp.errors import UserError
from yoso_backend.artifact import (HOST, NEURON_ENABLED_BIT, NEURON_THETA_SHIFT, SRAM_NAMES, decode_program_bin,
                                   encode_program_bin, from_twos, load_program, save_program, to_twos)


@pytest.fixture(scope="module", params=["ttfs-layer", "softmax-neuron"])
def program(request):
    mode, scale = request.param.split("-")
    # 784 x 48: three hidden PEs, so address maps and destination lists are exercised
    state = compile_model(dense_model([784, 48, 10], seed=3, t_max=3.0),
                          CompileOptions(output_mode=mode, scale_mode=scale))
    return state


def test_roundtrip_equal(program, tmp_path):
    prog = program.program
    out = save_program(prog, tmp_path / "m.yoso")
    back = load_program(out)
    assert back == prog
    assert back.hw == prog.hw and back.meta == json.loads(json.dumps(prog.meta))
    # and again: saving the loaded program gives byte-identical files
    out2 = save_program(back, tmp_path / "m2.yoso")
    for f in sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()):
        assert (out / f).read_bytes() == (out2 / f).read_bytes(), f


def test_manifest_lists_every_file(program, tmp_path):
    out = save_program(program.program, tmp_path / "m.yoso")
    man = json.loads((out / "manifest.json").read_text())
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(man["files"]) == on_disk
    assert man["hardware"]["sha256"] == program.hw.sha256
    assert man["format_version"] == 2
    assert len(man["layers"]) == 2 and man["layers"][0]["scales"]


@pytest.mark.parametrize("victim", ["program.bin", "program.txt", "pe/pe_00/weight.bin", "pe/pe_00/neuron.bin",
                                    "pe/pe_01/accw.bin", "pe/pe_01/spike_addr.bin"])
def test_corrupted_file_is_detected(program, tmp_path, victim):
    out = save_program(program.program, tmp_path / "m.yoso")
    path = out / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256 does not match"):
        load_program(out)


def test_missing_file_and_edited_manifest(program, tmp_path):
    out = save_program(program.program, tmp_path / "m.yoso")
    (out / "pe/pe_00/weight.bin").unlink()
    with pytest.raises(UserError, match="missing file"):
        load_program(out)
    out = save_program(program.program, tmp_path / "m2.yoso")
    man = json.loads((out / "manifest.json").read_text())
    man["hardware"]["description"]["bits"]["weight"]["value"] = 7
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(UserError, match="hardware description does not match"):
        load_program(out)
    man["format_version"] = 99
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(UserError, match="format_version"):
        load_program(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable manifest"):
        load_program(out)
    with pytest.raises(UserError, match="no manifest.json"):
        load_program(tmp_path)


def test_manifest_edit_caught_by_program_bin_check(program, tmp_path):
    """A consistent-looking manifest edit (with files untouched) is caught by program.bin."""
    out = save_program(program.program, tmp_path / "m.yoso")
    man = json.loads((out / "manifest.json").read_text())
    man["layers"][0]["window_steps"] += 1
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(UserError, match="program.bin"):
        load_program(out)


def test_refuses_overwrite_unless_forced(program, tmp_path):
    out = save_program(program.program, tmp_path / "m.yoso")
    with pytest.raises(UserError, match="already exists"):
        save_program(program.program, out)
    (out / "stale.txt").write_text("old")
    save_program(program.program, out, force=True)
    assert not (out / "stale.txt").exists()
    assert load_program(out) == program.program
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary directories left behind


def test_sram_images_decode_to_the_quantised_layer(program):
    prog, state = program.program, program
    for q in state.quant:
        assert np.array_equal(prog.layer_weights(q.index), q.weight_int)
        assert np.array_equal(prog.layer_thresholds(q.index), q.threshold_int)
    hw = prog.hw
    for p in prog.pes:
        img = prog.sram[p.pe]
        assert img["weight"].dtype == np.dtype("<u1") and img["weight"].size == hw.weights_per_pe
        assert img["accw"].dtype == np.dtype("<u2") and not img["accw"].any()
        n = img["neuron"]
        enabled = (n >> np.uint64(NEURON_ENABLED_BIT)) & np.uint64(1)
        assert enabled[: p.neuron_count].all() and not enabled[p.neuron_count:].any()
        assert (n[: p.neuron_count] & np.uint64((1 << NEURON_THETA_SHIFT) - 1) == 0).all()  # V = 0
        # input-major weight address: addr = i * count + j
        i, j = p.fan_in - 1, p.neuron_count - 1
        w = from_twos(img["weight"][i * p.neuron_count + j: i * p.neuron_count + j + 1], hw.weight_bits)[0]
        assert w == state.quant[p.layer].weight_int[p.neuron_start + j, i]
        # spike-address SRAM: neuron words carry the axon index, destination words the route
        f = hw.flit
        for jj in range(p.neuron_count):
            assert f.unpack(int(img["spike_addr"][jj]))["index"] == p.neuron_start + jj
        for d, dest in enumerate(p.dests):
            word = f.unpack(int(img["spike_addr"][hw.neurons_per_pe + d]))
            if dest == HOST:
                assert (word["x"], word["y"], word["kind"]) == (hw.host_x, hw.host_y, 1)
            else:
                assert (word["x"], word["y"], word["kind"]) == (*hw.pe_xy(dest), 0)


def test_program_bin_structure(program):
    prog = program.program
    dec = decode_program_bin(encode_program_bin(prog))
    assert dec["header"]["magic"] == 0x4F534F59
    assert dec["header"]["n_pes"] == len(prog.pes)
    assert [p["pe"] for p in dec["pes"]] == [p.pe for p in prog.pes]
    assert dec["input_dests"] == prog.input_dests
    assert dec["pes"][-1]["dests"] == [HOST]
    with pytest.raises(ValueError, match="magic"):
        decode_program_bin(b"\x00" * 64)


def test_all_sram_names_present(program):
    for pe, imgs in program.program.sram.items():
        assert set(imgs) == set(SRAM_NAMES)


@given(st.integers(2, 32).flatmap(lambda b: st.tuples(st.just(b), st.lists(
    st.integers(-(1 << (b - 1)), (1 << (b - 1)) - 1), min_size=1, max_size=20))))
def test_twos_complement_roundtrip(case):
    bits, values = case
    words = to_twos(np.array(values), bits)
    assert (words < (1 << bits)).all()
    assert from_twos(words, bits).tolist() == values
