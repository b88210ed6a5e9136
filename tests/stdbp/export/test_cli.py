"""`stdbp export CHECKPOINT -o model.onnx` and `stdbp inspect model.onnx`."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from typer.testing import CliRunner

from stdbp.export.cli import export_app, inspect_app
from stdbp.train.arch import parse_arch
from stdbp.train.models import build_snn

runner = CliRunner()
ARCH = "28x28-4C5-P2-30-10"
CONFIG = {"threshold": 1.0, "t_max": 3.0, "alpha": 1.0, "silent_zero": True, "dataset": "mnist"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    net = build_snn(parse_arch(ARCH), threshold=1.0, t_max=3.0, alpha=1.0, silent_zero=True)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    torch.save({"arch": ARCH, "model_state": net.state_dict(), "config": CONFIG, "accuracy": 0.5}, path)
    return path


def test_export_then_inspect(tmp_path, checkpoint):
    out = tmp_path / "model.onnx"
    r = runner.invoke(export_app, [str(checkpoint), "-o", str(out)])
    assert r.exit_code == 0, r.output
    m = onnx.load(out)
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["stdbp.arch"] == ARCH and meta["stdbp.dataset"] == "mnist" and float(meta["stdbp.accuracy"]) == 0.5
    assert [n.op_type for n in m.graph.node] == ["SpikeEncode", "RelPspConv2d", "SpikeMinPool", "Flatten",
                                                 "RelPspDense", "RelPspDense"]
    r = runner.invoke(inspect_app, [str(out)])
    assert r.exit_code == 0, r.output
    for word in ("RelPspConv2d", "kernel_shape=5,5", "t_max=3.0", "stdbp.arch", ARCH, "Nx4x24x24"):
        assert word in r.output
    r = runner.invoke(inspect_app, [str(out), "--json"])
    info = json.loads(r.output)
    assert info["nodes"][1]["attributes"]["kernel_shape"] == [5, 5]
    assert info["nodes"][-1]["output_shape"] == ["N", 10]
    assert info["metadata"]["stdbp.t_max"] == "3.0"


def test_export_trainer_checkpoint_format(tmp_path):
    from dataclasses import asdict

    from stdbp.train.checkpoint import save_checkpoint
    from stdbp.train.runner import TrainConfig

    cfg = TrainConfig(arch="784-20-10", t_max=2.5, silent_zero=True, data="fashion-mnist")
    net = build_snn(parse_arch(cfg.arch), threshold=cfg.threshold, t_max=cfg.t_max, alpha=cfg.alpha,
                    silent_zero=cfg.silent_zero)
    opt = torch.optim.Adam(net.parameters())
    save_checkpoint(tmp_path / "best.pt", model=net, optimizer=opt, epoch=3, best_accuracy=0.81, config=asdict(cfg))
    out = tmp_path / "m.onnx"
    r = runner.invoke(export_app, [str(tmp_path), "-o", str(out)])  # the run folder: best.pt is used
    assert r.exit_code == 0, r.output
    m = onnx.load(out)
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["stdbp.arch"] == "784-20-10" and meta["stdbp.dataset"] == "fashion-mnist"
    assert float(meta["stdbp.accuracy"]) == 0.81 and float(meta["stdbp.t_max"]) == 2.5
    w = onnx.numpy_helper.to_array(m.graph.initializer[0])
    assert (w == net[1].weight.detach().numpy()).all()


def test_export_refuses_overwrite(tmp_path, checkpoint):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"keep me")
    r = runner.invoke(export_app, [str(checkpoint), "-o", str(out)])
    assert r.exit_code == 2 and out.read_bytes() == b"keep me"
    assert runner.invoke(export_app, [str(checkpoint), "-o", str(out), "--force"]).exit_code == 0


@pytest.mark.parametrize("content, message", [
    (None, "no such checkpoint"),
    (b"garbage", "not a readable checkpoint"),
    ({"arch": ARCH}, "keys arch, model_state, config"),
    ({"arch": "784-30-10", "model_state": {}, "config": CONFIG}, "do not match arch"),
    ({"arch": ARCH, "model_state": {}, "config": {"threshold": 1.0}}, "config lacks"),
])
def test_bad_checkpoints(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    r = runner.invoke(export_app, [str(path), "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 2
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_inspect_bad_model(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x08\x0a\x12\x05broken")
    r = runner.invoke(inspect_app, [str(p)])
    assert r.exit_code == 2
