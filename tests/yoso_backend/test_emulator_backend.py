"""YosoBackend (runtime Backend interface) and the trained MNIST model over 1 000 test frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.backend import Backend, BackendResult
from stdbp.errors import UserError
from yoso_backend import reference
from yoso_backend.artifact import save_program
from yoso_backend.runtime_backend import YosoBackend
from yoso_backend.synth import random_program

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "models" / "sample" / "mnist-test-sample.npz"
MNIST_ONNX = ROOT / "models" / "mnist-fc800" / "model.onnx"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("be") / "model.yoso"
    save_program(random_program([784, 50, 10], seed=8, windows=300, early_stop=True), path)
    return path


@pytest.fixture(scope="module")
def pixels():
    with np.load(SAMPLE) as z:
        return z["images"][:64].reshape(64, -1), z["labels"][:64]


def test_backend_protocol_and_results(model_dir, pixels, tmp_path):
    px, labels = pixels
    b = YosoBackend()
    assert isinstance(b, Backend)
    b.prepare(str(model_dir), report_dir=str(tmp_path / "rep"))
    results = [b.run(px[:40]), b.run(px[40:])]
    assert all(isinstance(r, BackendResult) for r in results)
    ref = reference.run(b.emu.program, px)
    np.testing.assert_array_equal(np.concatenate([r.predictions for r in results]), ref.predictions)
    np.testing.assert_array_equal(np.concatenate([r.spike_times for r in results]), ref.spike_times)
    c = results[0].counters
    assert c["frames"] == 40 and c["cycles"] > 0 and c["energy_j"] > c["dynamic_energy_j"] > 0
    assert all(isinstance(v, (int, float)) for v in c.values())  # sums: a runner may add batches up
    b._write_at_exit()  # what happens at exit for runners that do not call finalize
    assert (tmp_path / "rep" / "report.json").is_file() and (tmp_path / "rep" / "mesh.png").is_file()
    rep = b.finalize(tmp_path / "final", labels)
    assert rep["frames"] == 64 and rep["accuracy"] == pytest.approx((ref.predictions == labels).mean())
    assert Path(rep["files"]["raster"]).is_file()


def test_softmax_mode_option(model_dir, pixels):
    px, _ = pixels
    b = YosoBackend()
    b.prepare(str(model_dir), mode="softmax", record="true")
    res = b.run(px[:10])
    assert np.isinf(res.spike_times).all()
    np.testing.assert_array_equal(res.predictions, np.argmax(b.last.out_potential, axis=1))
    assert b.last.v_trace is not None


@pytest.mark.parametrize("path, options, msg", [
    ("model.onnx", {}, "compile it first"),
    (None, {"speed": "max"}, "unknown option"),
    (None, {"mode": "fast"}, "unknown mode"),
    (None, {"early_stop": "maybe"}, "true/false"),
    (None, {"hw": "no-such-hw"}, "unknown hardware"),
])
def test_bad_options_are_user_errors(model_dir, tmp_path, path, options, msg):
    if path:
        (tmp_path / path).write_bytes(b"onnx")
    with pytest.raises(UserError, match=msg):
        YosoBackend().prepare(str(tmp_path / path) if path else str(model_dir), **options)


def test_corrupt_program_is_a_user_error(model_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad.yoso"
    shutil.copytree(model_dir, bad)
    w = next(bad.glob("pe/pe_*/weight.bin"))
    w.write_bytes(b"\x01" + w.read_bytes()[1:])
    with pytest.raises(UserError, match="sha256"):
        YosoBackend().prepare(str(bad))


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_ONNX.is_file(), reason="trained models/mnist-fc800 not shipped yet")
@pytest.mark.parametrize("mode, frames", [("ttfs", 1000), ("softmax", 300)])
def test_trained_mnist_model_equals_reference(mode, frames):
    """Zero mismatches on the MNIST test set: every fire step, and in softmax mode every output V."""
    import copy

    from compiler import compile_model
    from stdbp.data import load_dataset
    from yoso_backend.emulator import Emulator

    prog = compile_model(str(MNIST_ONNX)).program
    images, labels = load_dataset("mnist", "test")
    px = images[:frames].reshape(frames, -1)
    res = Emulator(prog).run(px, mode=mode)
    if mode != prog.output_mode:
        prog = copy.copy(prog)
        prog.output_mode = mode
        prog.layers = [copy.copy(l) for l in prog.layers]
        prog.layers[-1].fires = mode == "ttfs"
    ref = reference.run(prog, px)
    for l, want in enumerate(ref.fire_steps):
        assert (res.fire[l + 1] != want).sum() == 0, f"layer {l}"
    np.testing.assert_array_equal(res.predictions, ref.predictions)
    if mode == "softmax":
        np.testing.assert_array_equal(res.out_potential, ref.potentials)
    assert (res.predictions == labels[:frames]).mean() > 0.9


@pytest.mark.parametrize("early_stop", [True, False])
def test_compiled_784_800_10_equals_reference(early_stop):
    """The compiler's own placement and destination order, on the MNIST sample (untrained weights)."""
    from compiler import CompileOptions, compile_model
    from compiler.testmodels import dense_model
    from yoso_backend.emulator import Emulator

    prog = compile_model(dense_model([784, 800, 10], seed=1), CompileOptions(early_stop=early_stop)).program
    with np.load(SAMPLE) as z:
        px = z["images"][: 200 if early_stop else 60].reshape(-1, 784)
    res = Emulator(prog).run(px)
    ref = reference.run(prog, px)
    for l, want in enumerate(ref.fire_steps):
        assert (res.fire[l + 1] != want).sum() == 0, f"layer {l}"
    np.testing.assert_array_equal(res.predictions, ref.predictions)
    assert (res.fire[1] >= 0).mean() > 0.05
