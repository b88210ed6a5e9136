"""`--data imagefolder:PATH`: loading, per-class split, bad folders, train + export (tiny)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stdbp import imagefolder as IF
from stdbp.errors import UserError


def make_folder(root: Path, n: int = 12, size=(20, 24), classes=("faces", "motorbikes"), rgb=True,
                seed=0) -> Path:
    """Two easy classes: bright blob top-left vs bottom-right, some noise; RGB PNG / JPEG files."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            img = rng.integers(0, 40, size).astype(np.uint8)
            h, w = size
            if c == 0:
                img[: h // 2, : w // 2] = 220
            else:
                img[h // 2:, w // 2:] = 220
            arr = np.stack([img] * 3, -1) if rgb else img
            Image.fromarray(arr).save(d / f"img{k:03d}.{'png' if k % 3 else 'jpg'}")
    return root


def test_load_split_and_resize(tmp_path):
    make_folder(tmp_path, n=12, size=(30, 40))
    fd = IF.load(f"imagefolder:{tmp_path}", (16, 20), (6, 2), seed=0)
    assert fd.classes == ["faces", "motorbikes"]
    assert fd.x_train.shape == (12, 16, 20) and fd.x_train.dtype == np.uint8
    assert len(fd.y_val) == 4 and len(fd.y_test) == 8
    assert np.bincount(fd.y_train).tolist() == [6, 6] and np.bincount(fd.y_test).tolist() == [4, 4]
    # class 0 is bright top-left after grayscale + resize
    assert fd.x_train[fd.y_train == 0][:, :4, :4].mean() > 150
    again = IF.load(f"imagefolder:{tmp_path}", (16, 20), (6, 2), seed=0)
    np.testing.assert_array_equal(fd.x_test, again.x_test)
    native = IF.load(f"imagefolder:{tmp_path}", None, (6, 2))
    assert native.size == (30, 40)


def test_parse():
    assert IF.parse_size(None) == (160, 250)
    assert IF.parse_size("native") is None
    assert IF.parse_size("28x28") == (28, 28)
    assert IF.parse_per_class("200,50") == (200, 50)
    with pytest.raises(UserError):
        IF.parse_size("28by28")
    with pytest.raises(UserError):
        IF.parse_per_class("200")


@pytest.mark.parametrize("case,match", [
    ("missing", "no such folder"), ("empty", "no class sub-folders"), ("one", "one class only"),
    ("noimages", "holds no images"), ("unreadable", "cannot read the image"),
    ("mixed", "pass --image-size"), ("few", "lower --per-class")])
def test_bad_folders(tmp_path, case, match):
    root = tmp_path / "data"
    root.mkdir()
    size = (16, 20)
    if case == "missing":
        root = tmp_path / "nope"
    elif case == "one":
        make_folder(root, classes=("a",))
    elif case == "noimages":
        make_folder(root)
        (root / "empty_class").mkdir()
    elif case == "unreadable":
        make_folder(root)
        (root / "faces" / "broken.png").write_bytes(b"not a png at all")
    elif case == "mixed":
        make_folder(root, size=(16, 20))
        Image.fromarray(np.zeros((17, 20), np.uint8)).save(root / "faces" / "odd.png")
        size = None
    elif case == "few":
        make_folder(root, n=5)
    with pytest.raises(UserError, match=match):
        IF.load(f"imagefolder:{root}", size, (4, 1))


def _train(tmp_path, folder, arch, *extra):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "stdbp.train.cli", "--out", str(out), "--data", f"imagefolder:{folder}",
           "--arch", arch, "--per-class", "8,2", "--epochs", "1", "--ann-epochs", "2",
           "--threads", "1", "--jitter-variance", "0", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120), out


@pytest.mark.parametrize("arch", ["16x20-6-2", "16x20-4C5-P2-2"])
def test_train_and_export(tmp_path, arch):
    folder = make_folder(tmp_path / "imgs", n=14, size=(32, 40))
    proc, out = _train(tmp_path, folder, arch)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ONNX: ok" in proc.stdout and "validation" in proc.stdout
    import onnx

    model = onnx.load(out / "model.onnx")
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == ([320] if "C" not in arch else [1, 16, 20])


def test_train_bad_size_is_one_line(tmp_path):
    folder = make_folder(tmp_path / "imgs", n=12)
    proc, _ = _train(tmp_path, folder, "784-6-2", "--image-size", "16x20")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "16x20" in lines[0] and "fix:" in lines[0], proc.stderr
