"""Training data as uint8 tensors: MNIST / Fashion-MNIST (stdbp.data) or a folder of images.

Image-folder layout (Caltech face/motorbike style): `DIR/<class>/*.png|jpg|...`, or
`DIR/train/<class>/...` and `DIR/test/<class>/...`. Without train/test folders a seeded
`test_fraction` of each class is held out. Images are converted to grayscale and resized to the
architecture's input size (e.g. `160x250-4-2`). Classes are the sorted folder names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stdbp.errors import UserError

_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".tif", ".tiff"}


@dataclass
class TrainData:
    name: str
    x_train: torch.Tensor   # uint8 [N, *pixel_shape]
    y_train: torch.Tensor   # int64 [N]
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    x_val: torch.Tensor | None = None   # held out of the training images (--val-split), else None
    y_val: torch.Tensor | None = None


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n is None or n >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng(seed).permutation(len(y))[:n])
    return x[idx], y[idx]


def _folder_images(folder: Path, hw: tuple[int, int]) -> tuple[list[np.ndarray], list[int], list[str]]:
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise UserError(folder, f"found {len(classes)} class folder(s)", "put one sub-folder of images per class")
    xs, ys = [], []
    for c, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).rglob("*") if p.suffix.lower() in _IMAGE_EXT)
        if not files:
            raise UserError(folder / cls, "no images", f"add images ({', '.join(sorted(_IMAGE_EXT))})")
        for f in files:
            try:
                img = Image.open(f).convert("L").resize((hw[1], hw[0]), Image.BILINEAR)
            except Exception as exc:  # PIL raises many types for a bad file
                raise UserError(f, f"cannot read image ({exc})", "remove or replace the file") from None
            xs.append(np.asarray(img, dtype=np.uint8))
            ys.append(c)
    return xs, ys, classes


def load_image_folder(folder: str | Path, hw: tuple[int, int], test_fraction: float = 0.2, seed: int = 0):
    folder = Path(folder)
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        xtr, ytr, classes = _folder_images(folder / "train", hw)
        xte, yte, classes_te = _folder_images(folder / "test", hw)
        if classes_te != classes:
            raise UserError(folder, f"train classes {classes} differ from test classes {classes_te}",
                            "use the same class folders in train/ and test/")
        return np.stack(xtr), np.array(ytr), np.stack(xte), np.array(yte), classes
    xs, ys, classes = _folder_images(folder, hw)
    x, y = np.stack(xs), np.array(ys)
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(y), dtype=bool)
    for c in range(len(classes)):
        idx = np.flatnonzero(y == c)
        n_test = max(1, int(round(test_fraction * len(idx))))
        test_mask[rng.permutation(idx)[:n_test]] = True
    return x[~test_mask], y[~test_mask], x[test_mask], y[test_mask], classes


def load_train_data(data: str, pixel_shape: tuple[int, ...], *, data_dir: str | None = None,
                    train_subset: int | None = None, test_subset: int | None = None,
                    seed: int = 0, image_shape: tuple[int, ...] | None = None,
                    val_split: int = 0, image_size: str | None = None,
                    per_class: str = "200,50") -> TrainData:
    """`data` is `mnist`, `fashion-mnist` or a folder of images per class.

    `pixel_shape`: one sample as the model takes it; `image_shape`: the architecture's input
    ((C, H, W) for an image input, which sets the resize of folder images even when the model
    takes them flattened, e.g. `160x250-4-2`).

    `val_split`: hold N training images out as a validation set (a seeded draw, after the
    subset), so that model selection need not look at the test set."""
    from stdbp.data import DATASETS, load_dataset

    n_pixels = int(np.prod(pixel_shape))
    shape = image_shape if image_shape is not None else pixel_shape
    hw = tuple(shape[-2:]) if len(shape) == 3 else None
    if data in DATASETS:
        xtr, ytr = load_dataset(data, "train", data_dir)
        xte, yte = load_dataset(data, "test", data_dir)
        classes = [str(i) for i in range(10)]
        if n_pixels != 784:
            raise UserError(f"--data {data}", f"images have 784 pixels but the architecture expects {n_pixels}",
                            "use an input of 784 or 28x28")
    elif str(data).startswith("imagefolder:"):
        return _image_folder(data, pixel_shape, hw, n_pixels, image_size, per_class, seed,
                             train_subset, test_subset, val_split)
    elif Path(data).is_dir():
        if hw is None:
            raise UserError(f"--data {data}", "an image folder needs an image input size in --arch",
                            "start the architecture with HxW, e.g. 160x250-4-2")
        xtr, ytr, xte, yte, classes = load_image_folder(data, hw, seed=seed)
    else:
        raise UserError(f"--data {data}", "neither a known data set nor a folder",
                        f"use one of {', '.join(DATASETS)} or a folder of images per class")
    xtr, ytr = _subset(xtr, ytr, train_subset, seed)
    xte, yte = _subset(xte, yte, test_subset, seed + 1)

    def tens(x, y):
        return (torch.from_numpy(np.array(x, dtype=np.uint8).reshape(len(y), *pixel_shape)),
                torch.from_numpy(np.asarray(y, dtype=np.int64)))

    x_val = y_val = None
    if val_split:
        if not 0 < val_split < len(ytr):
            raise UserError(f"--val-split {val_split}", f"the training set has {len(ytr)} images",
                            f"hold out between 1 and {len(ytr) - 1} images (0 = no validation set)")
        val = np.zeros(len(ytr), dtype=bool)
        val[np.random.default_rng(seed + 2).permutation(len(ytr))[:val_split]] = True
        x_val, y_val = tens(np.asarray(xtr)[val], np.asarray(ytr)[val])
        xtr, ytr = np.asarray(xtr)[~val], np.asarray(ytr)[~val]
    x_train, y_train = tens(xtr, ytr)
    x_test, y_test = tens(xte, yte)
    return TrainData(str(data), x_train, y_train, x_test, y_test, classes, x_val, y_val)


def _image_folder(data, pixel_shape, hw, n_pixels, image_size, per_class, seed, train_subset,
                  test_subset, val_split) -> TrainData:
    """`imagefolder:PATH` (stdbp.imagefolder): per-class train / validation / test split."""
    from stdbp import imagefolder as IF

    size = IF.parse_size(image_size) if image_size is not None else (hw or IF.PAPER_SIZE)
    if val_split:
        raise UserError(f"--val-split {val_split}", "an image folder has its own per-class validation images",
                        "use --per-class TRAIN,VAL instead")
    fd = IF.load(data, size, IF.parse_per_class(per_class), seed)
    h, w = fd.size
    if h * w != n_pixels or (hw is not None and tuple(hw) != (h, w)):
        raise UserError(f"--arch (input {'x'.join(map(str, hw)) if hw else n_pixels})",
                        f"the images of {data} are {h}x{w} ({h * w} pixels)",
                        f"start the architecture with {h}x{w} (or pass --image-size to match it)")
    xtr, ytr = _subset(fd.x_train, fd.y_train, train_subset, seed)
    xte, yte = _subset(fd.x_test, fd.y_test, test_subset, seed + 1)

    def tens(x, y):
        return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8).reshape(len(y), *pixel_shape)),
                torch.from_numpy(np.asarray(y, dtype=np.int64)))

    x_val = y_val = None
    if len(fd.y_val):
        x_val, y_val = tens(fd.x_val, fd.y_val)
    return TrainData(str(data), *tens(xtr, ytr), *tens(xte, yte), fd.classes, x_val, y_val)
