"""--neuron alpha in stdbp-train (same trainer, ANN init included), export refused, and the
`stdbp experiment dead-neurons` command at a tiny size."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stdbp.alpha import AlphaPspLinear
from stdbp.errors import UserError

runner = CliRunner()
SMALL = ["--data", "mnist", "--arch", "784-24-10", "--train-subset", "300", "--test-subset", "100",
         "--batch-size", "64", "--ann-epochs", "2", "--jitter-variance", "0", "--lr", "1e-3"]
# no --threads here: in-process, it would set NUMBA_NUM_THREADS / STDBP_NUM_THREADS for the
# rest of the test session


@pytest.fixture(scope="module")
def alpha_run(tmp_path_factory):
    from stdbp.train.cli import app

    out = tmp_path_factory.mktemp("runs") / "alpha"
    res = runner.invoke(app, ["--out", str(out), "--epochs", "1", "--neuron", "alpha", *SMALL],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out, res.output


def test_alpha_trains_and_skips_export(alpha_run):
    out, output = alpha_run
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["neuron"] == "alpha"
    assert "skipped: alpha-PSP networks have no ONNX op" in output
    assert not (out / "model.onnx").exists()
    snn = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("phase") == "snn" and r["epoch"] == 1 for r in snn)


def test_export_cli_refuses_alpha_checkpoint(alpha_run, tmp_path):
    from stdbp.export.cli import load_checkpoint

    out, _ = alpha_run
    with pytest.raises(UserError, match="no ONNX op"):
        load_checkpoint(out / "best.pt")


def test_build_snn_alpha_layers_and_conv_refused():
    from stdbp.train.arch import parse_arch
    from stdbp.train.models import build_snn

    m = build_snn(parse_arch("784-20-10"), neuron="alpha", tau=2.0)
    assert all(isinstance(x, AlphaPspLinear) for x in m[1:]) and m[1].tau == 2.0
    with pytest.raises(UserError, match="dense layers only"):
        build_snn(parse_arch("28x28-4C5-P2-10"), neuron="alpha")


def test_bad_neuron_flag(tmp_path):
    from stdbp.train.cli import app

    res = runner.invoke(app, ["--out", str(tmp_path / "x"), "--neuron", "lif", *SMALL])
    assert res.exit_code == 2 and "--neuron lif" in res.output


def test_dead_neurons_experiment_tiny(tmp_path):
    from stdbp.experiments.cli import app

    out = tmp_path / "dead"
    args = ["dead-neurons", "--out", str(out), "--runs", "2", "--epochs", "2", "--hidden", "30",
            "--train-subset", "256", "--test-subset", "100"]
    res = runner.invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in data["runs"]} == {"alpha", "relpsp", "ann"} and len(data["runs"]) == 6
    for kind, s in data["summary"].items():
        assert s["dead_fraction"]["n"] == [2, 2, 2] and 0 < s["active_fraction"]["mean"][-1] <= 1
        assert all(0 <= v <= 1 for v in s["dead_fraction"]["mean"])
    for r in data["runs"]:
        g = r["gradients"]
        assert g["total"] > 0 and sum(g["counts"]) + g["zeros"] + g["below_range"] + g["above_range"] == g["total"]
        assert sum(r["weights"]["hidden"]["counts"]) == 30 * 784
    for name in ("gradients.png", "weights.png", "dead_neurons.png"):
        assert (out / name).stat().st_size > 1000
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
