"""Each compiler pass alone: import + DRC, quantise, partition, place, emit."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

from compiler import CompileOptions, compile_graph, compile_model
from compiler.ir import CompileState, DenseLayer, Graph
from compiler.passes import design_rule_check, partition, place, quantise
from compiler.passes.importer import import_model, import_onnx
from compiler.passes.partition import layer_pes
from compiler.passes.quantise import bits_signed, window_steps
from compiler.testmodels import conv_model, dense_model
from stdbp.errors import UserError
from yoso_backend.hardware import from_dict, load_hardware


def graph_of(*weights, threshold=0.5, t_max=2.0, alpha=1.0):
    layers = [DenseLayer(f"fc{k}", np.asarray(w, np.float64), threshold, t_max) for k, w in enumerate(weights)]
    return Graph(n_inputs=layers[0].n_in, input_shape=(layers[0].n_in,), n_classes=layers[-1].n_out, alpha=alpha,
                 silent_zero=False, layers=layers, source="test")


def state_of(graph, hw=None, **opts):
    st = CompileState(hw=load_hardware(hw or "yoso-6x7"), options=CompileOptions(**opts), graph=graph)
    design_rule_check(st)
    return st


def hw_with(**changes):
    raw = load_hardware().to_dict()
    for dotted, value in changes.items():
        sec, key = dotted.split("__")
        raw[sec][key]["value"] = value
    return from_dict(raw)


# --- import -------------------------------------------------------------------------------------
def test_import_dense_model():
    g = import_model(dense_model([784, 30, 10], seed=0, threshold=0.25, t_max=3.0, silent_zero=1))
    assert g.n_inputs == 784 and g.n_classes == 10 and g.silent_zero and g.alpha == 1.0
    assert [(l.n_in, l.n_out) for l in g.layers] == [(784, 30), (30, 10)]
    assert g.layers[0].threshold == pytest.approx(0.25) and g.layers[0].t_max == 3.0


def test_conv_and_pool_are_imported():
    g = import_model(conv_model())
    assert [l.kind for l in g.layers] == ["conv", "dense"]
    assert g.layers[0].window.out_shape == (2, 26, 26) and g.layers[1].n_in == 2 * 26 * 26


def test_conv_padding_not_smaller_than_kernel_is_refused():
    from compiler.testmodels import cnn_model

    with pytest.raises(UserError, match="pads .* are not smaller than the kernel"):
        import_model(cnn_model((1, 8, 8), (("conv", 2, 2, 1, 2), ("dense", 3))))


def test_import_file_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    with pytest.raises(UserError):
        import_onnx(bad)


def test_import_rejects_nan_weights():
    model = dense_model([20, 5, 3], seed=0)
    w = onnx.numpy_helper.to_array(model.graph.initializer[0]).copy()
    w[0, 0] = np.nan
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(w, model.graph.initializer[0].name))
    with pytest.raises(UserError, match="NaN"):
        import_model(model)


def test_import_rejects_other_ops():
    model = dense_model([20, 5, 3], seed=0)
    relu = onnx.helper.make_node("Relu", ["spike_times"], ["y"])
    model.graph.node.append(relu)
    model.graph.output[0].name = "y"
    with pytest.raises(UserError):
        import_model(model)


# --- DRC ----------------------------------------------------------------------------------------
def test_drc_fan_in_beyond_a_pe():
    g = graph_of(np.ones((4, 300)) * 0.01, np.ones((2, 4)))
    with pytest.raises(UserError, match="fan-in 300 exceeds the 256 weights"):
        state_of(g, hw=hw_with(pe__weights=256))
    g = graph_of(np.ones((4, 5000)) * 0.01, np.ones((2, 4)))
    with pytest.raises(UserError, match="5000 inputs exceed the 12-bit index field"):
        state_of(g)


def test_drc_options_and_steps():
    g = graph_of(np.ones((4, 10)), np.ones((2, 4)))
    with pytest.raises(UserError, match="not a mode"):
        state_of(g, output_mode="rate")
    with pytest.raises(UserError, match="step field"):
        state_of(g, steps_per_alpha=5000)
    st = state_of(g, steps_per_alpha=100)
    assert any("not a multiple of 255" in w for w in st.warnings)


# --- quantise -----------------------------------------------------------------------------------
def test_quantise_per_layer_formula():
    rng = np.random.default_rng(0)
    w0, w1 = rng.normal(size=(6, 10)), rng.normal(size=(3, 6))
    st = state_of(graph_of(w0, w1, threshold=0.5, t_max=2.0))
    quantise(st)
    q = st.quant[0]
    s = 127 / np.abs(w0).max()
    assert np.allclose(q.scales, s)
    assert np.array_equal(q.weight_int, np.rint(w0 * s).astype(np.int64))
    assert np.abs(q.weight_int).max() == 127
    assert (q.threshold_int == round(0.5 * s * 255)).all()
    assert q.window_steps == 510


def test_quantise_per_neuron_scales_each_row_to_full_range():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(6, 10)) * np.arange(1, 7)[:, None]
    st = state_of(graph_of(w0, rng.normal(size=(3, 6))), scale_mode="neuron")
    quantise(st)
    q = st.quant[0]
    assert (np.abs(q.weight_int).max(axis=1) == 127).all()
    assert np.allclose(q.threshold_int, np.rint(0.5 * q.scales * 255))
    # softmax read-out: the output layer keeps one scale
    st = state_of(graph_of(w0, rng.normal(size=(3, 6)) * [[1], [5], [9]]), scale_mode="neuron", output_mode="softmax")
    quantise(st)
    assert st.quant[1].report["scale_mode"] == "layer" and not st.quant[1].fires


def test_window_from_t_max():
    assert window_steps(2.0, 255, 1.0, 4095) == 510
    assert window_steps(math.inf, 255, 1.0, 4095) == 4095
    assert window_steps(0.1, 255, 1.0, 4095) == 25  # 25.5 -> floor
    assert window_steps(float(np.float32(2.2)), 255, 1.0, 4095) == 561
    assert window_steps(1.0, 255, 2.0, 4095) == 127  # alpha = 2: t = 1 is half an alpha


def test_quantise_warns_on_possible_saturation():
    # fan-in 600, all weights positive -> A up to 600 * 127 = 76200 > 32767 (16 bits)
    g = graph_of(np.ones((4, 600)), np.ones((2, 4)), t_max=16.0)
    st = state_of(g)
    quantise(st)
    msg = [w for w in st.warnings if "accumulated weight A may saturate" in w]
    assert msg and "layer 0 (fc0)" in msg[0] and "76200" in msg[0] and "18 bits" in msg[0]
    g = graph_of(-np.ones((4, 600)) + np.eye(4, 600) * 2, np.ones((2, 4)), t_max=16.0)
    st = state_of(g)
    quantise(st)
    assert any("potential V may saturate low" in w and "layer 0" in w for w in st.warnings)


def test_quantise_threshold_errors():
    g = graph_of(np.ones((4, 10)), np.ones((2, 4)), threshold=1e5)
    st = state_of(g)
    with pytest.raises(UserError, match="needs .* bits"):
        quantise(st)
    g = graph_of(np.ones((4, 10)), np.ones((2, 4)), threshold=1e-7)
    st = state_of(g)
    with pytest.raises(UserError, match="quantises to 0"):
        quantise(st)
    g = graph_of(np.zeros((4, 10)), np.ones((2, 4)))
    with pytest.raises(UserError, match="all weights are zero"):
        quantise(state_of(g))


def test_bits_signed():
    assert [bits_signed(x) for x in (0, 1, 127, 128, -128, -129)] == [1, 2, 8, 9, 8, 9]


# --- partition ----------------------------------------------------------------------------------
def test_partition_784_800_10_fits_6x7():
    assert layer_pes(784, 800, 256, 16384) == (40, 39)  # 20 neurons per PE; the paper's bound C = 39
    assert layer_pes(800, 10, 256, 16384) == (1, 1)
    assert layer_pes(784, 800, 256, 65536) == (10, 10)  # yoso-facts.md table
    assert layer_pes(784, 800, 256, 8192) == (80, 77)


def test_partition_slices_cover_every_neuron_once():
    rng = np.random.default_rng(0)
    st = state_of(graph_of(rng.normal(size=(50, 784)), rng.normal(size=(10, 50))))
    quantise(st)
    partition(st)
    sl = st.layer_slices(0)
    assert len(sl) == 3 and [s.neuron_count for s in sl] == [17, 17, 16]
    assert [s.neuron_start for s in sl] == [0, 17, 34]
    assert all(s.neuron_count * s.fan_in <= 16384 for s in st.slices)


def test_network_that_does_not_fit_says_so_in_one_line():
    g = import_model(dense_model([784, 2000, 10], seed=0))
    with pytest.raises(UserError) as err:
        compile_graph(g)
    text = str(err.value)
    assert "\n" not in text
    assert "needs 102 PEs" in text and "has 42" in text
    assert "pe.weights >= 65536" in text and "at most 820 neurons" in text
    # ...and the options it names do fit
    assert compile_graph(g, hw=hw_with(pe__weights=65536)).program is not None
    assert len(compile_graph(import_model(dense_model([784, 820, 10], seed=0))).slices) <= 42


# --- place --------------------------------------------------------------------------------------
def placed(sizes, seed=0):
    st = compile_model(dense_model(sizes, seed=seed))
    return st


def test_placement_is_deterministic_and_valid():
    a, b = placed([784, 800, 10]), placed([784, 800, 10])
    pes = [s.pe for s in a.slices]
    assert pes == [s.pe for s in b.slices]
    assert len(set(pes)) == len(pes) == 41 and all(0 <= p < 42 for p in pes)


def test_placement_puts_heavy_traffic_close():
    st = placed([784, 800, 10])
    hw = st.hw
    host = (hw.host_x, hw.host_y)
    hop = lambda a, b: abs(a[0] - b[0]) + abs(a[1] - b[1])  # noqa: E731
    # layer 0 (784 flits per PE from the host) sits no farther from the host, on average, than
    # any other choice of 40 routers could: it takes the 40 nearest.
    d0 = sorted(hop(host, hw.pe_xy(s.pe)) for s in st.layer_slices(0))
    nearest = sorted(hop(host, hw.pe_xy(p)) for p in range(hw.n_pe))[:40]
    assert d0 == nearest
    # total traffic-weighted hops beat a naive row-major placement (ids in layer order); on
    # 784-800-10 the two coincide (row-major 0..39 are the 40 routers nearest to the host)
    st = placed([784, 100, 10])

    def flit_hops(pe_of):
        total = 0
        for s in st.slices:
            r = hw.pe_xy(pe_of[id(s)])
            if s.layer == 0:
                total += 784 * hop(host, r)
                total += sum(s.neuron_count * hop(r, hw.pe_xy(pe_of[id(d)])) for d in st.layer_slices(1))
            else:
                total += s.neuron_count * hop(r, host)
        return total

    greedy = flit_hops({id(s): s.pe for s in st.slices})
    naive = flit_hops({id(s): k for k, s in enumerate(st.slices)})
    assert greedy == st.placement_report["max_flit_hops_per_frame"]
    assert greedy < naive


def test_destination_tables():
    st = placed([784, 48, 10])
    prog = st.program
    hidden = prog.layers[0].pes
    assert prog.input_dests == hidden
    for p in prog.pes:
        assert p.dests == (prog.layers[1].pes if p.layer == 0 else [-1])


# --- the whole pipeline on random small networks ----------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25)
@given(sizes=st.lists(st.integers(2, 40), min_size=2, max_size=4), seed=st.integers(0, 1000),
       weights=st.sampled_from([64, 200, 1024]), scale=st.sampled_from(["layer", "neuron"]))
def test_pipeline_properties(sizes, seed, weights, scale):
    """Any network that fits: every neuron on exactly one PE, SRAMs decode to the quantised layer,
    capacities respected, destinations = next layer's PEs, round trip through the artifact."""
    hw = hw_with(pe__weights=weights)
    rng = np.random.default_rng(seed)
    ws = [rng.normal(size=(n, m)) for m, n in zip(sizes[:-1], sizes[1:])]
    g = graph_of(*ws, threshold=0.3, t_max=4.0)
    try:
        st_ = compile_graph(g, CompileOptions(scale_mode=scale), hw=hw)
    except UserError as err:  # does not fit or fan-in too large: must say so
        assert "does not fit" in str(err) or "fan-in" in str(err)
        return
    prog = st_.program
    assert len({p.pe for p in prog.pes}) == len(prog.pes) <= hw.n_pe
    for k, q in enumerate(st_.quant):
        lay = prog.layers[k]
        cover = sorted((p.neuron_start, p.neuron_count) for p in prog.pes if p.layer == k)
        assert sum(c for _, c in cover) == lay.n_out and cover[0][0] == 0
        assert all(a + c == b for (a, c), (b, _) in zip(cover, cover[1:]))
        assert np.array_equal(prog.layer_weights(k), q.weight_int)
        assert np.array_equal(prog.layer_thresholds(k), q.threshold_int)
        assert np.abs(q.weight_int).max() <= hw.w_max
    for p in prog.pes:
        assert p.fan_in * p.neuron_count <= weights and p.neuron_count <= hw.neurons_per_pe
        nxt = p.layer + 1
        assert p.dests == (prog.layers[nxt].pes if nxt < len(prog.layers) else [-1])
    from yoso_backend.artifact import decode_program_bin, encode_program_bin

    assert decode_program_bin(encode_program_bin(prog))["header"]["n_pes"] == len(prog.pes)


def test_import_image_input_with_flatten():
    from stdbp.export.graph import Layer, build_model

    rng = np.random.default_rng(0)
    layers = [Layer("SpikeEncode", {"alpha": 1.0, "silent_zero": 1}), Layer("Flatten"),
              Layer("RelPspDense", {"threshold": 0.2, "t_max": 2.0}, rng.normal(size=(12, 784)).astype(np.float32)),
              Layer("RelPspDense", {"threshold": 0.2, "t_max": 2.0}, rng.normal(size=(3, 12)).astype(np.float32))]
    g = import_model(build_model(layers, [1, 28, 28]))
    assert g.n_inputs == 784 and g.input_shape == (1, 28, 28) and g.silent_zero
    prog = compile_graph(g).program
    from yoso_backend.reference import run

    px = np.zeros((2, 1, 28, 28), np.uint8)
    px[1, 0, 10:20, 10:20] = 200
    res = run(prog, px)
    assert res.predictions[0] == -1  # silent_zero: an all-zero frame has no input spike at all
    assert res.counters["per_layer"][0]["input_spikes_mean"] == 50.0
