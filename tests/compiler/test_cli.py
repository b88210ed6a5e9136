"""stdbp-compile: end to end through the typer app; bad input -> one line, exit code 2."""

from __future__ import annotations

import json

import onnx
import pytest
from typer.testing import CliRunner

from compiler.cli import app
from compiler.testmodels import conv_model, dense_model
from yoso_backend.artifact import load_program

runner = CliRunner()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model.onnx"
    onnx.save(dense_model([784, 48, 10], seed=0, t_max=2.0), path)
    return path


def test_compile_writes_artifact_and_summary(model_path, tmp_path):
    out, js = tmp_path / "out.yoso", tmp_path / "summary.json"
    res = runner.invoke(app, [str(model_path), "-o", str(out), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "4 of 42 PEs" in res.output and "SRAM use per PE" in res.output and "synaptic events" in res.output
    prog = load_program(out)
    assert [len(l.pes) for l in prog.layers] == [3, 1]
    summary = json.loads(js.read_text())
    assert summary["pes_used"] == 4 and summary["synaptic_events_max"] == 784 * 48 + 48 * 10
    assert summary["hardware_sha256"] == prog.hw.sha256


def test_default_output_and_overwrite(model_path):
    out = model_path.with_suffix(".yoso")
    assert runner.invoke(app, [str(model_path), "-q"]).exit_code == 0
    assert out.is_dir()
    res = runner.invoke(app, [str(model_path), "-q"])
    assert res.exit_code == 2 and "already exists" in res.output and "--force" in res.output
    assert runner.invoke(app, [str(model_path), "-q", "--force"]).exit_code == 0


def test_options_reach_the_program(model_path, tmp_path):
    out = tmp_path / "s.yoso"
    res = runner.invoke(app, [str(model_path), "-o", str(out), "-q", "--output-mode", "softmax", "--scale", "neuron"])
    assert res.exit_code == 0, res.output
    prog = load_program(out)
    assert prog.output_mode == "softmax" and not prog.early_stop
    assert prog.layers[0].scale_mode == "neuron" and prog.layers[1].scale_mode == "layer"


@pytest.mark.parametrize("case,needle", [
    ("conv-index", "exceed the 12-bit index field"),
    ("conv-fit", "use --hw yoso-16x16"),
    ("conv-kernel", "kernel has 9 weights"),
    ("conv-pads", "are not smaller than the kernel"),
    ("big", "needs 102 PEs"),
    ("missing", "no such file"),
    ("hw", "unknown hardware description"),
    ("mode", "not a mode"),
])
def test_bad_input_one_line_exit_2(case, needle, tmp_path, model_path):
    args = [str(model_path), "-o", str(tmp_path / "x.yoso")]
    if case.startswith("conv"):
        from compiler.testmodels import cnn_model

        net = {"conv-index": ((1, 28, 28), (("conv", 16, 3, 1, 0), ("dense", 10))),
               "conv-fit": ((1, 34, 34), (("conv", 4, 3, 1, 0), ("dense", 200), ("dense", 10))),
               "conv-kernel": ((1, 8, 8), (("conv", 2, 3, 1, 0), ("dense", 3))),
               "conv-pads": ((1, 8, 8), (("conv", 2, 3, 1, 3), ("dense", 3)))}
        model = cnn_model(*net[case])
        onnx.save(model, tmp_path / "c.onnx")
        args[0] = str(tmp_path / "c.onnx")
        if case == "conv-kernel":  # a description whose PE holds 8 weights: a 3x3 kernel does not fit
            import json

            from yoso_backend.hardware import load_hardware

            raw = load_hardware("yoso-6x7").to_dict()
            raw["pe"]["weights"]["value"] = 8
            (tmp_path / "tiny.json").write_text(json.dumps(raw))
            args += ["--hw", str(tmp_path / "tiny.json")]
    elif case == "big":
        onnx.save(dense_model([784, 2000, 10]), tmp_path / "b.onnx")
        args[0] = str(tmp_path / "b.onnx")
    elif case == "missing":
        args[0] = str(tmp_path / "nope.onnx")
    elif case == "hw":
        args += ["--hw", "yoso-1x1"]
    else:
        args += ["--output-mode", "rate"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output
    assert res.output.count("error:") == 1
    assert not (tmp_path / "x.yoso").exists()


def test_driver_knows_the_command():
    from stdbp.cli import COMMANDS

    assert COMMANDS["compile"][:2] == ("compiler.cli", "app")


def test_cli_module_imports_are_light():
    import subprocess
    import sys

    code = "import sys, compiler.cli; sys.exit(1 if {'numpy', 'onnx', 'torch'} & set(sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_sample_measures_synaptic_events(model_path, tmp_path):
    from compiler.events import SAMPLE_DIR

    sample = SAMPLE_DIR / "mnist-test-sample.npz"
    out, js = tmp_path / "e.yoso", tmp_path / "e.json"
    res = runner.invoke(app, [str(model_path), "-o", str(out), "--json", str(js), "--sample", str(sample)])
    assert res.exit_code == 0, res.output
    meas = json.loads(js.read_text())["measured"]
    assert meas["frames"] == 200 and len(meas["per_layer"]) == 2
    # silent_zero = 0 and a 2-alpha window: every pixel spikes into layer 0 unless the frame stops early
    assert 0 < meas["per_layer"][0]["synaptic_events_mean"] <= 784 * 48
    assert load_program(out).meta["mapping"]["measured"] == meas
    bad = runner.invoke(app, [str(model_path), "-o", str(tmp_path / "f.yoso"), "--sample", str(tmp_path / "no.npz")])
    assert bad.exit_code == 2 and "cannot read sample" in bad.output


def test_compiling_never_imports_torch(model_path, tmp_path):
    import subprocess
    import sys

    code = ("import sys; from compiler import compile_model; from yoso_backend.artifact import save_program;"
            f"save_program(compile_model({str(model_path)!r}).program, {str(tmp_path / 'n.yoso')!r});"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_multiplex_option_fits_what_does_not(tmp_path):
    onnx.save(dense_model([784, 2000, 10]), tmp_path / "b.onnx")
    res = runner.invoke(app, [str(tmp_path / "b.onnx"), "-o", str(tmp_path / "x.yoso")])
    assert res.exit_code == 2 and "--multiplex 3" in res.output
    res = runner.invoke(app, [str(tmp_path / "b.onnx"), "-o", str(tmp_path / "x.yoso"), "--multiplex", "3",
                              "--sample", "none"])
    assert res.exit_code == 0, res.output
    assert load_program(tmp_path / "x.yoso").hw.name == "yoso-6x7-tm3"
    res = runner.invoke(app, [str(tmp_path / "b.onnx"), "-o", str(tmp_path / "y.yoso"), "--multiplex", "0"])
    assert res.exit_code == 2 and res.output.count("error:") == 1 and "Traceback" not in res.output
