"""stdbp-train end to end on a small MNIST subset: run folder, resume equivalence, errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from stdbp.train.cli import app
from stdbp.train.checkpoint import load_checkpoint

runner = CliRunner()
SMALL = ["--data", "mnist", "--arch", "784-64-10", "--train-subset", "512", "--test-subset", "200",
         "--batch-size", "64", "--ann-epochs", "3", "--ann-lr", "2e-3", "--silent-zero", "--jitter-variance", "0.02",
         "--lr", "1e-3", "--lr-final", "5e-4"]


def _run(args):
    return runner.invoke(app, args, catch_exceptions=False)


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    res = _run(["--out", str(out), "--epochs", "2", *SMALL])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_run_folder_contents(two_epochs):
    out, output = two_epochs
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "best.pt", "ann.pt"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arch"] == "784-64-10" and cfg["epochs"] == 2 and cfg["beta2"] == 0.999
    recs = _metrics(out)
    phases = [r["phase"] for r in recs]
    assert phases[:5] == ["ann", "ann", "ann", "convert", "init"] and phases.count("snn") == 2
    snn = [r for r in recs if r["phase"] == "snn"]
    for r in snn:
        for key in ("loss", "train_accuracy", "test_accuracy", "fired_fraction", "dead_fraction",
                    "silent_targets", "clipped_gradients", "epoch_seconds", "lr"):
            assert key in r
        assert len(r["fired_fraction"]) == 2 and all(0 <= f <= 1 for f in r["fired_fraction"])
    assert snn[0]["lr"] == 1e-3 and abs(snn[1]["lr"] - 5e-4) < 1e-12
    # ANN init is far above chance on 512 images
    init = next(r for r in recs if r["phase"] == "init")
    assert init["test_accuracy"] > 0.5
    assert "epoch 2/2" in output and "done: best test accuracy" in output
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2


@pytest.mark.parametrize("extra", [[], ["--augment-shift", "2"]])
def test_resume_is_bit_exact(tmp_path, extra):
    """2 epochs == 1 epoch + resume 1, bit for bit (weights, Adam moments, logged losses), also
    with random image shifts (their generator is rebuilt per epoch from the seed).

    From-scratch init: the ANN pre-training runs BLAS matmuls whose threading (and so rounding)
    may vary with machine load; the SNN part (compiled kernels, fixed work split) does not."""
    scratch = [*SMALL, "--init", "scratch", *extra]
    full, part = tmp_path / "full", tmp_path / "part"
    assert _run(["--out", str(full), "--epochs", "2", *scratch]).exit_code == 0
    res = _run(["--out", str(part), "--epochs", "2", *scratch, "--stop-after", "1"])
    assert res.exit_code == 0, res.output
    assert "continue with --resume" in res.output
    assert load_checkpoint(part / "checkpoint.pt")["epoch"] == 1
    res = _run(["--out", str(part), "--resume"])  # no --epochs: the run's own 2, not the default 150
    assert res.exit_code == 0, res.output
    assert "epoch 2/2" in res.output
    a = load_checkpoint(full / "checkpoint.pt")
    b = load_checkpoint(part / "checkpoint.pt")
    assert b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for k in sa:
        assert torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"])
        assert torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"])
    ma = [r for r in _metrics(full) if r["phase"] == "snn"]
    mb = [r for r in _metrics(part) if r["phase"] == "snn"]
    assert [r["loss"] for r in ma] == [r["loss"] for r in mb]
    assert [r["test_accuracy"] for r in ma] == [r["test_accuracy"] for r in mb]


def test_val_split_selects_best_on_held_out_images(tmp_path):
    """--val-split N: N training images are held out, every epoch logs their accuracy, and best.pt
    is the first epoch with the best validation accuracy (not the best test accuracy)."""
    out = tmp_path / "val"
    res = _run(["--out", str(out), "--epochs", "3", *SMALL, "--init", "scratch", "--val-split", "128"])
    assert res.exit_code == 0, res.output
    assert "validation" in res.output
    recs = [r for r in _metrics(out) if r["phase"] in ("init", "snn")]
    assert len(recs) == 4 and all(0 <= r["val_accuracy"] <= 1 for r in recs)
    vals = [r["val_accuracy"] for r in recs]
    chosen = vals.index(max(vals))
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == chosen and best["best_accuracy"] == max(vals)
    assert best["extra"]["best_test_accuracy"] == recs[chosen]["test_accuracy"]
    assert json.loads((out / "config.json").read_text())["val_split"] == 128
    export = [r for r in _metrics(out) if r["phase"] == "export"][0]
    assert export["selected_on"] == "validation" and export["best_test_accuracy"] == recs[chosen]["test_accuracy"]
    from stdbp.train.plots import plot_metrics  # the curves gain a validation line

    assert (tmp_path / "plots" / "curves.png") in plot_metrics(_metrics(out), tmp_path / "plots")


def test_resume_with_new_epochs_is_remembered(tmp_path):
    """--resume --epochs N stretches the run; interrupted again, a plain --resume keeps N."""
    out = tmp_path / "longer"
    scratch = [*SMALL, "--init", "scratch"]
    assert _run(["--out", str(out), "--epochs", "1", *scratch]).exit_code == 0
    res = _run(["--out", str(out), "--resume", "--epochs", "3", "--stop-after", "1"])
    assert res.exit_code == 0 and "epoch 2/3" in res.output, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["epochs"] == 3 and cfg["_epochs_before"] == [1]
    res = _run(["--out", str(out), "--resume"])
    assert res.exit_code == 0 and "epoch 3/3" in res.output, res.output
    assert [r["epoch"] for r in _metrics(out) if r["phase"] == "snn"] == [1, 2, 3]
    assert [r for r in _metrics(out) if r["phase"] == "resume"][0]["previous_epochs"] == 1


def test_threads_option_limits_the_kernel_pool(tmp_path, monkeypatch):
    """--threads N also sets the spiking kernels' pool (STDBP_NUM_THREADS), not only torch's."""
    from stdbp.threads import num_threads

    import numba

    monkeypatch.delenv("STDBP_NUM_THREADS", raising=False)
    # the CLI also sets NUMBA_NUM_THREADS if unset; numba refuses a new value once its own
    # threads run (other tests launch them), so keep the one this process already has
    monkeypatch.setenv("NUMBA_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # leave this process's torch alone
    res = _run(["--out", str(tmp_path / "t1"), "--epochs", "1", *SMALL, "--init", "scratch",
                "--train-subset", "128", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert num_threads() == 1


def test_existing_run_needs_resume_or_force(two_epochs):
    out, _ = two_epochs
    res = runner.invoke(app, ["--out", str(out), "--epochs", "1", *SMALL])
    assert res.exit_code == 2 and "already holds a run" in res.output


@pytest.mark.parametrize("args, words", [
    (["--arch", "784-8C5-10"], "needs an image input"),
    (["--data", "no-such-set"], "neither a known data set nor a folder"),
    (["--lr", "-1"], "positive learning rate"),
    (["--init", "magic"], "use ann or scratch"),
    (["--augment-shift", "-1"], "--augment-shift -1"),
    (["--val-split", "-5"], "--val-split -5"),
    (["--val-split", "60000", "--data", "mnist"], "the training set has 60000 images"),
])
def test_bad_options_one_line_exit_2(tmp_path, args, words):
    res = runner.invoke(app, ["--out", str(tmp_path / "r"), "--epochs", "1", *args])
    assert res.exit_code == 2 and words in res.output and "Traceback" not in res.output


def test_resume_without_run_is_user_error(tmp_path):
    res = runner.invoke(app, ["--out", str(tmp_path / "none"), "--resume"])
    assert res.exit_code == 2 and "config.json" in res.output


def test_divergence_stops_and_keeps_last_good(tmp_path, monkeypatch):
    from stdbp.train import loop

    real = loop.train_epoch
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise loop.Diverged("loss nan at batch 3/8")
        return real(*a, **k)

    monkeypatch.setattr(loop, "train_epoch", flaky)
    out = tmp_path / "div"
    res = runner.invoke(app, ["--out", str(out), "--epochs", "3", *SMALL, "--init", "scratch"])
    assert res.exit_code == 3 and "diverged in epoch 2" in res.output
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert _metrics(out)[-1]["reason"] == "diverged"


def test_ctrl_c_saves_and_exits_cleanly(tmp_path, monkeypatch):
    from stdbp.train import loop

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train_epoch", interrupted)
    out = tmp_path / "int"
    res = runner.invoke(app, ["--out", str(out), "--epochs", "2", *SMALL, "--init", "scratch"])
    assert res.exit_code == 130 and "--resume" in res.output
    assert (out / "interrupted.pt").is_file() and load_checkpoint(out / "checkpoint.pt")["epoch"] == 0


def test_ddp_two_cpu_processes_match_single_process(two_epochs, tmp_path):
    """torchrun, 2 processes, gloo: each takes half of every global batch and the averaged
    gradients follow the single-process run (up to float summation order)."""
    import os
    import subprocess
    import sys

    full, _ = two_epochs
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "stdbp.train.cli", "--out", str(out), "--epochs", "2", *SMALL]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["_world_size"] == 2
    recs = _metrics(out)
    assert [r["phase"] for r in recs].count("snn") == 2  # written once, by rank 0
    a = load_checkpoint(full / "checkpoint.pt")["model"]
    b = load_checkpoint(out / "checkpoint.pt")["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-4), (k, (a[k] - b[k]).abs().max())
    ref = [r for r in _metrics(full) if r["phase"] == "snn"]
    got = [r for r in recs if r["phase"] == "snn"]
    assert abs(ref[-1]["test_accuracy"] - got[-1]["test_accuracy"]) <= 0.02


def test_plot_writes_pngs(two_epochs, tmp_path):
    from stdbp.train.plot_cli import app as plot_app

    out, _ = two_epochs
    res = runner.invoke(plot_app, [str(out), "--out", str(tmp_path / "plots"), "--samples", "100"])
    assert res.exit_code == 0, res.output
    for name in ("spike_times", "gradients", "weights", "dead_neurons", "curves"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    before = (tmp_path / "plots" / "curves.png").read_bytes()
    res = runner.invoke(plot_app, [str(out), "-o", str(tmp_path / "plots"), "--samples", "100"])
    assert res.exit_code == 2 and "--force" in res.output  # never overwrites unasked
    assert (tmp_path / "plots" / "curves.png").read_bytes() == before
    res = runner.invoke(plot_app, [str(out), "-o", str(tmp_path / "plots"), "--samples", "100", "--force"])
    assert res.exit_code == 0, res.output


def test_plot_bad_run_dir(tmp_path):
    from stdbp.train.plot_cli import app as plot_app

    res = runner.invoke(plot_app, [str(tmp_path)])
    assert res.exit_code == 2 and "not a stdbp-train run folder" in res.output


def test_ann_from_and_model_card(two_epochs, tmp_path):
    from stdbp.train.card import load_shipped, make_card

    full, _ = two_epochs
    out = tmp_path / "reuse"
    # the saved ANN had no dropout; loading goes by layer order, so a dropout ANN takes it too
    res = _run(["--out", str(out), "--epochs", "1", *SMALL, "--ann-from", str(full / "ann.pt"),
                "--silent-target-push", "1.0", "--ann-dropout", "0.3"])
    assert res.exit_code == 0, res.output
    recs = _metrics(out)
    assert recs[0]["phase"] == "ann" and recs[0]["from"].endswith("ann.pt")
    assert [r["phase"] for r in recs].count("ann") == 1
    card = make_card(out, tmp_path / "models" / "tiny", command="stdbp-train ...")
    assert card["dataset"] == "mnist" and card["arch"] == "784-64-10" and 0.3 < card["test_accuracy"] <= 1
    model, cfg = load_shipped(tmp_path / "models" / "tiny")
    assert cfg["silent_target_push"] == 1.0 and json.loads((tmp_path / "models" / "tiny" / "card.json").read_text())
    bad = _run(["--out", str(tmp_path / "bad"), "--epochs", "1", *SMALL, "--ann-from", str(tmp_path / "nope.pt")])
    assert bad.exit_code == 2 and "ANN checkpoint not found" in bad.output
    other = ["--arch" if a == "--arch" else ("784-32-10" if a == "784-64-10" else a) for a in SMALL]
    bad = _run(["--out", str(tmp_path / "bad2"), "--epochs", "1", *other, "--ann-from", str(full / "ann.pt")])
    assert bad.exit_code == 2 and "not an ANN of 784-32-10" in bad.output


def _image_folder(root, n=8):
    """Caltech-like layout: root/<class>/*.png, class 'bright' vs 'dark' (16x20 after resizing)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, level in (("dark", 40), ("bright", 220)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            img = np.clip(rng.normal(level, 20, (32, 40)), 0, 255).astype("uint8")
            Image.fromarray(img).save(root / cls / f"{i}.png")


def test_image_folder_training(tmp_path):
    from stdbp.train.datasets import load_train_data

    _image_folder(tmp_path / "imgs")
    data = load_train_data(str(tmp_path / "imgs"), (1, 16, 20))
    assert data.classes == ["bright", "dark"]
    assert data.x_train.shape[1:] == (1, 16, 20) and len(data.y_train) + len(data.y_test) == 16
    assert sorted(set(data.y_test.tolist())) == [0, 1]  # stratified hold-out
    out = tmp_path / "run"
    res = _run(["--out", str(out), "--data", str(tmp_path / "imgs"), "--arch", "16x20-8-2", "--epochs", "1",
                "--batch-size", "4", "--ann-epochs", "3", "--ann-lr", "1e-2", "--jitter-variance", "0"])
    assert res.exit_code == 0, res.output
    assert _metrics(out)[-1]["phase"] == "export"
    bad = _run(["--out", str(tmp_path / "r2"), "--data", str(tmp_path / "imgs"), "--arch", "320-8-2",
                "--epochs", "1"])
    assert bad.exit_code == 2 and "needs an image input size" in bad.output
