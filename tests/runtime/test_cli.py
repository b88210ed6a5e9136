"""stdbp-run: accuracy, fps, confusion matrix, JSON report; bad input -> one line, exit 2."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from runtime.cli import app, confusion, parse_extra
from tests.stdbp.ops.nets import dense_layers, model
from tests.stdbp.ops.test_validate import CASES

runner = CliRunner()


def err_of(r) -> str:
    return r.stderr if hasattr(r, "stderr") else r.output


@pytest.fixture(scope="module")
def good_model():
    return model(dense_layers(np.random.default_rng(31), (784, 40, 10), t_max=3.0, mean=2.0))


@pytest.fixture
def model_path(tmp_path, good_model):
    p = tmp_path / "model.onnx"
    onnx.save(good_model, p)
    return p


@pytest.mark.parametrize("portable", [False, True])
def test_run_on_sample_writes_report(tmp_path, model_path, portable):
    report = tmp_path / "r.json"
    args = [str(model_path), "--data", "sample", "--limit", "100", "--batch-size", "32", "--report", str(report)]
    r = runner.invoke(app, args + (["--portable"] if portable else []))
    assert r.exit_code == 0, r.output
    out = json.loads(report.read_text())
    assert out["images"] == 100 and out["batch_size"] == 32 and out["backend"] == "onnxruntime"
    cm = np.array(out["confusion"]["matrix"])
    assert cm.shape == (10, 11) and cm.sum() == 100 and np.trace(cm) == out["correct"]
    assert out["accuracy"] == out["correct"] / 100 and out["frames_per_second"] > 0
    assert out["counters"]["path"] == ("function-bodies" if portable else "custom-op")
    assert "accuracy" in r.output and "frames/s" in r.output and "confusion" in r.output
    # the same command again refuses to overwrite the report, --force overwrites
    assert runner.invoke(app, args).exit_code == 2
    assert runner.invoke(app, args + ["--force"]).exit_code == 0


def test_predictions_match_labels_through_a_known_model(tmp_path):
    # a "model" whose output layer copies 10 chosen pixels: class k fires first iff pixel k is brightest
    from stdbp.export.graph import Layer, build_model

    w = np.zeros((10, 784), np.float32)
    w[np.arange(10), np.arange(10)] = 1.0
    m = build_model([Layer("SpikeEncode", {"alpha": 1.0, "silent_zero": 1}),
                     Layer("RelPspDense", {"threshold": 0.5, "t_max": float("inf")}, w)], [784])
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    images = np.zeros((20, 28, 28), np.uint8)
    labels = np.arange(20) % 10
    images.reshape(20, -1)[np.arange(20), labels] = 200
    images.reshape(20, -1)[np.arange(20), (labels + 1) % 10] = 100  # later spike, other class
    images[19] = 0  # all silent -> prediction -1, counted as wrong
    np.savez(tmp_path / "d.npz", images=images, labels=labels.astype(np.uint8))
    r = runner.invoke(app, [str(p), "--data", str(tmp_path / "d.npz"), "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["correct"] == 19 and out["no_output_spike"] == 1
    assert out["confusion"]["matrix"][9][10] == 1


@pytest.mark.parametrize("breaker, message", CASES, ids=[c[0].__name__[1:] for c in CASES])
def test_bad_models_exit_2_with_one_line(tmp_path, good_model, breaker, message):
    m = copy.deepcopy(good_model)
    breaker(m)
    p = tmp_path / "bad.onnx"
    p.write_bytes(m.SerializeToString())
    r = runner.invoke(app, [str(p), "--data", "sample", "--limit", "4", "--report", str(tmp_path / "r.json")])
    err = err_of(r)
    assert r.exit_code == 2 and message in err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


def test_truncated_and_missing_files(tmp_path, good_model):
    p = tmp_path / "t.onnx"
    p.write_bytes(good_model.SerializeToString()[:3000])
    for path, message in ((p, "truncated or corrupt"), (tmp_path / "none.onnx", "no such model")):
        r = runner.invoke(app, [str(path), "--report", str(tmp_path / "r.json")])
        assert r.exit_code == 2 and message in err_of(r) and err_of(r).count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--data", "cifar"], "unknown data set 'cifar'"),
    (["--limit", "0"], "--limit"),
    (["--batch-size", "0"], "--batch-size"),
    (["--split", "val"], "unknown split"),
    (["--mode", "cycle"], "unknown option(s) for the onnxruntime backend: --mode"),
    (["--backend", "tpu"], "unknown backend 'tpu'"),
])
def test_bad_options(tmp_path, model_path, args, message):
    r = runner.invoke(app, [str(model_path), "--report", str(tmp_path / "r.json"), *args])
    assert r.exit_code == 2 and message in err_of(r)


def test_data_shape_mismatch(tmp_path):
    m = model(dense_layers(np.random.default_rng(0), (60, 10, 10)), (60,))
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    r = runner.invoke(app, [str(p), "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 2 and "does not fit the model input" in err_of(r)


def test_directory_model_goes_to_yoso(tmp_path):
    d = tmp_path / "model.yoso"
    d.mkdir()
    r = runner.invoke(app, [str(d), "--report", str(tmp_path / "r.json"), "--limit", "2"])
    assert r.exit_code == 2  # yoso backend missing, or it rejects the empty directory: one line either way
    assert err_of(r).startswith("error: ") and "Traceback" not in err_of(r)


def test_parse_extra_and_confusion():
    assert parse_extra(["--mode", "cycle", "--fast", "--hw=a.toml"]) == {"mode": "cycle", "fast": True, "hw": "a.toml"}
    cm = confusion(np.array([0, 1, 1]), np.array([0, -1, 0]), 2)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 0, 1]])


def test_default_data_follows_model_metadata(tmp_path, good_model):
    for dataset, sample in (("fashion-mnist", "fashion-mnist-test-sample.npz"), ("mnist", "mnist-test-sample.npz")):
        m = copy.deepcopy(good_model)
        m.metadata_props.add(key="stdbp.dataset", value=dataset)
        p = tmp_path / f"{dataset}.onnx"
        onnx.save(m, p)
        report = tmp_path / f"{dataset}.json"
        r = runner.invoke(app, [str(p), "--limit", "8", "--report", str(report)])
        assert r.exit_code == 0, r.output
        assert json.loads(report.read_text())["data"] == sample


def test_backend_extension_point(tmp_path, monkeypatch):
    """Unknown --options go to the backend's prepare(); an optional finalize() adds its report."""
    import runtime.backends
    from runtime.backend import BackendResult, predict

    seen = {}

    class Fake:
        name = "yoso"

        def prepare(self, model_path, **options):
            seen["prepare"] = (model_path, options)

        def run(self, pixels):
            t = np.tile(np.arange(10, dtype=np.float32), (len(pixels), 1))
            return BackendResult(t, predict(t), {"cycles": 5, "mode": "cycle"})

        def finalize(self, out_dir, labels, console=None):
            seen["finalize"] = (out_dir, len(labels))
            return {"energy_uj": 1.5}

    monkeypatch.setattr(runtime.backends, "get_backend", lambda name: Fake())
    d = tmp_path / "model.yoso"
    d.mkdir()
    report = tmp_path / "r.json"
    r = runner.invoke(app, [str(d), "--limit", "10", "--batch-size", "4", "--mode", "cycle", "--hw=x.toml",
                            "--report", str(report)])
    assert r.exit_code == 0, r.output
    assert seen["prepare"] == (str(d), {"mode": "cycle", "hw": "x.toml"})
    assert seen["finalize"] == (tmp_path / "r", 10)
    out = json.loads(report.read_text())
    assert out["backend"] == "yoso" and out["counters"]["cycles"] == 15  # summed over 3 batches
    assert out["backend_report"] == {"energy_uj": 1.5}
    r = runner.invoke(app, [str(d), "--portable", "--report", str(tmp_path / "s.json")])
    assert r.exit_code == 2 and "--portable" in err_of(r)


def test_onnx_on_yoso_with_multiplex_compiles_a_multiplexed_program(tmp_path, model_path):
    report = tmp_path / "r.json"
    r = runner.invoke(app, [str(model_path), "--backend", "yoso", "--data", "sample", "--limit", "20",
                            "--report", str(report), "--multiplex", "2"])
    assert r.exit_code == 0, r.output
    out = json.loads(report.read_text())
    # compiled for the multiplexed description, run on the calibrated clock of its chip
    assert out["backend_report"]["hardware"]["name"] == "yoso-6x7-tm2"
    assert out["backend_report"]["energy_description"]["name"] == "yoso-6x7-calibrated-tm2"
    assert out["backend"] == "yoso" and out["counters"]["cycles"] > 0
