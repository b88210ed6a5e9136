"""`--data imagefolder:PATH`: a folder with one sub-folder of images per class (paper V-D).

    PATH/<class>/*.png|jpg|...      classes are the sorted sub-folder names

Every image is read with Pillow, converted to grayscale ("L", 8 bit) and resized (bilinear) to
the image size HxW (paper, Caltech 101 faces / motorbikes: 160x250); `native` keeps the files'
own size, which must then be the same for all of them. Per class, a seeded permutation of the
sorted file list gives the first `train` images to training, the next `val` to validation
(model selection: best.pt is chosen on them) and the rest to the test set (paper: 200 / 50 per
class, the rest test). A bad folder (missing, empty, one class, a class with too few images, an
unreadable image, mixed sizes without resizing) is a UserError: one line naming the item and
the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stdbp.errors import UserError

PREFIX = "imagefolder:"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
PAPER_SIZE = (160, 250)
PAPER_PER_CLASS = (200, 50)


def is_imagefolder(data: str) -> bool:
    return str(data).startswith(PREFIX)


def folder_of(data: str) -> Path:
    return Path(str(data)[len(PREFIX):]).expanduser()


def parse_size(text: str | None, what: str = "--image-size") -> tuple[int, int] | None:
    """'HxW' -> (H, W); 'native' -> None (no resizing)."""
    if text is None:
        return PAPER_SIZE
    if str(text).strip().lower() == "native":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UserError(f"{what} {text}", "not HxW", "give the height and width, e.g. 160x250, or native")
    return int(m.group(1)), int(m.group(2))


def parse_per_class(text: str) -> tuple[int, int]:
    """'TRAIN,VAL' -> (train, val) images per class."""
    m = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1:
        raise UserError(f"--per-class {text}", "not TRAIN,VAL",
                        "give training and validation images per class, e.g. 200,50 (the paper)")
    return int(m.group(1)), int(m.group(2))


@dataclass
class FolderData:
    classes: list[str]
    x_train: np.ndarray   # uint8 [N, H, W]
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    size: tuple[int, int]


def _read(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(path, f"cannot read the image ({type(exc).__name__}: {exc})",
                        "remove or replace the file") from None


def scan(folder: Path) -> tuple[list[str], list[list[Path]]]:
    """(class names, sorted image files per class); UserError for a bad layout."""
    if not folder.is_dir():
        raise UserError(f"--data {PREFIX}{folder}", "no such folder", "point it at a folder with one sub-folder per class")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(folder, "has no class sub-folders", "put the images in one sub-folder per class: PATH/<class>/*.png")
    if len(classes) < 2:
        raise UserError(folder, f"has one class only ({classes[0]})", "add a sub-folder of images for every class (at least two)")
    files = []
    for c in classes:
        fs = sorted(p for p in (folder / c).rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not fs:
            raise UserError(folder / c, "holds no images", f"add images ({', '.join(EXTENSIONS)}) or remove the folder")
        files.append(fs)
    return classes, files


def load(data: str, size: tuple[int, int] | None = PAPER_SIZE,
         per_class: tuple[int, int] = PAPER_PER_CLASS, seed: int = 0) -> FolderData:
    folder = folder_of(data)
    classes, files = scan(folder)
    n_train, n_val = per_class
    for c, fs in zip(classes, files):
        if len(fs) < n_train + n_val + 1:
            raise UserError(folder / c, f"has {len(fs)} images; {n_train} training + {n_val} validation "
                            "+ at least 1 test image are needed", "add images or lower --per-class TRAIN,VAL")
    rng = np.random.default_rng(seed)
    parts: dict[str, tuple[list, list]] = {k: ([], []) for k in ("train", "val", "test")}
    shape = None
    for label, fs in enumerate(files):
        perm = rng.permutation(len(fs))
        for rank, idx in enumerate(perm):
            img = _read(fs[idx], size)
            if shape is None:
                shape, first = img.shape, fs[idx]
            elif img.shape != shape:
                raise UserError(fs[idx], f"is {img.shape[0]}x{img.shape[1]} but {first} is {shape[0]}x{shape[1]}",
                                "pass --image-size HxW to resize every image to one size")
            part = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
            parts[part][0].append(img)
            parts[part][1].append(label)

    def arr(k):
        xs, ys = parts[k]
        x = np.stack(xs) if xs else np.zeros((0, *shape), np.uint8)
        return x, np.asarray(ys, dtype=np.int64)

    (xtr, ytr), (xva, yva), (xte, yte) = arr("train"), arr("val"), arr("test")
    return FolderData(classes, xtr, ytr, xva, yva, xte, yte, tuple(shape))
