"""IDX data sets (MNIST, Fashion-MNIST) and the input-jitter transform.

Where the files are looked for, in order (the first folder holding all four files wins):
1. the explicit `data_dir` argument (`--data-dir` on the CLIs);
2. the environment variable `STDBP_DATA_DIR` (either the folder itself or a parent holding `<name>/`);
3. the cache `~/.cache/stdbp/<name>` (`$XDG_CACHE_HOME` respected);
4. Debian's `/usr/share/datasets/fashion-mnist` (fashion-mnist only, package `dataset-fashion-mnist`);
5. a `shared/datasets/<name>` folder found by walking up from this repository (a fresh clone
   with `../shared` beside it finds it);
6. a download from the official mirrors into the cache, verified by the sha256 of the
   DECOMPRESSED content (gzip headers differ between copies, the payload must not).
Nothing found and no network: one `UserError` listing the places and how to point at the files.

IDX format: big-endian magic `0x0000 TT DD` (TT = 0x08 unsigned byte, DD = number of dims),
then DD big-endian uint32 sizes, then the payload in C order.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import struct
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np

from stdbp.errors import UserError

DATASETS = ("mnist", "fashion-mnist")
SPLITS = ("train", "test")
_PREFIX = {"train": "train", "test": "t10k"}
_COUNTS = {"train": 60000, "test": 10000}

# sha256 of the decompressed IDX files (= /work/shared/datasets/SHA256SUMS.decompressed)
SHA256_DECOMPRESSED: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

DEBIAN_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}

_DTYPES = {0x08: np.uint8}


# ---------------------------------------------------------------------------------------- IDX
def _decompress(path: Path, raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, ValueError) as exc:
            raise UserError(path, f"corrupt or truncated gzip data ({exc})",
                            "delete the file and fetch it again") from None
    return raw


def parse_idx(data: bytes, where: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX bytes into a numpy array (validates magic, dims and size)."""
    if len(data) < 4:
        raise UserError(where, f"too short for an IDX header ({len(data)} bytes)",
                        "the file is truncated; fetch it again")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _DTYPES or not 1 <= ndim <= 4:
        raise UserError(where, f"bad IDX magic 0x{data[:4].hex()} (expected 0x000008 followed by 1-4 dims)",
                        "this is not an uncompressed or gzip IDX file of unsigned bytes")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(where, "truncated IDX header", "fetch the file again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[dtype_code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise UserError(where, f"IDX payload {what}: header dims {list(dims)} need {expected} bytes, found {got}",
                        "fetch the file again")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).copy()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(path, f"cannot read ({exc.strerror})", "check the path") from None
    return parse_idx(_decompress(path, raw), path)


# ------------------------------------------------------------------------------- locating
def _file_in(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _complete(folder: Path, name: str) -> bool:
    return all(_file_in(folder, stem) is not None for stem in SHA256_DECOMPRESSED[name])


def cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stdbp" / name


def _shared_dirs(name: str) -> list[Path]:
    """`shared/datasets/<name>` in this checkout's ancestors, and beside them (`<repo>/../shared`)."""
    out: list[Path] = []
    here = Path(__file__).resolve().parent
    for parent in [here, *here.parents]:
        for cand in (parent / "shared" / "datasets" / name,):
            if cand not in out:
                out.append(cand)
    return out


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The folders looked at, in order, with a label saying why."""
    cands: list[tuple[str, Path]] = []
    if data_dir is not None:
        d = Path(data_dir)
        cands += [("--data-dir", d), ("--data-dir", d / name)]
    env = os.environ.get("STDBP_DATA_DIR")
    if env:
        cands += [("STDBP_DATA_DIR", Path(env)), ("STDBP_DATA_DIR", Path(env) / name)]
    cands.append(("cache", cache_dir(name)))
    if name in DEBIAN_DIRS:
        cands.append(("debian", DEBIAN_DIRS[name]))
    cands += [("shared", d) for d in _shared_dirs(name)]
    return cands


def _check_name(name: str, split: str | None = None) -> None:
    if name not in DATASETS:
        raise UserError("data set", f"unknown name {name!r}", f"one of {', '.join(DATASETS)}")
    if split is not None and split not in SPLITS:
        raise UserError("data set", f"unknown split {split!r}", f"one of {', '.join(SPLITS)}")


# ------------------------------------------------------------------------------- download
def _urlopen_bytes(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https mirrors)
        return resp.read()


# tests monkeypatch this to exercise the download path without a network
fetch: Callable[[str], bytes] = _urlopen_bytes


def download(name: str, dest: Path | None = None, mirrors: tuple[str, ...] | None = None) -> Path:
    """Fetch the four files of `name` into `dest` (default: the cache), verifying decompressed sha256."""
    from stdbp.fileio import atomic_write_bytes

    _check_name(name)
    dest = Path(dest) if dest is not None else cache_dir(name)
    mirrors = mirrors if mirrors is not None else MIRRORS[name]
    errors: list[str] = []
    for stem, digest in SHA256_DECOMPRESSED[name].items():
        if _file_in(dest, stem) is not None:
            continue
        for mirror in mirrors:
            url = f"{mirror}{stem}.gz"
            try:
                blob = fetch(url)
            except Exception as exc:  # network errors of any kind: try the next mirror
                errors.append(f"{url}: {exc}")
                continue
            content = _decompress(Path(url), blob)
            got = hashlib.sha256(content).hexdigest()
            if got != digest:
                errors.append(f"{url}: sha256 mismatch (got {got[:12]}..., expected {digest[:12]}...)")
                continue
            atomic_write_bytes(dest / f"{stem}.gz", blob if blob[:2] == b"\x1f\x8b" else gzip.compress(blob))
            break
        else:
            raise DownloadError(name, errors)
    return dest


class DownloadError(Exception):
    def __init__(self, name: str, errors: list[str]):
        self.name, self.errors = name, errors
        super().__init__(f"download of {name} failed: " + "; ".join(errors[-3:]))


def find_data_dir(name: str, data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """The first folder holding all four IDX files of `name` (downloading into the cache if needed)."""
    _check_name(name)
    cands = candidate_dirs(name, data_dir)
    if data_dir is not None:  # an explicit folder must be used or fail loudly, never silently skipped
        for _, folder in cands[:2]:
            if _complete(folder, name):
                return folder
        raise UserError(data_dir, f"no complete {name} IDX files here or in {name}/",
                        "expected train/t10k-{images-idx3,labels-idx1}-ubyte[.gz]")
    for _, folder in cands:
        if _complete(folder, name):
            return folder
    tried = ", ".join(str(f) for _, f in cands)
    if allow_download and os.environ.get("STDBP_NO_DOWNLOAD", "") in ("", "0"):
        try:
            return download(name)
        except DownloadError as exc:
            reason = "; ".join(exc.errors[-2:])
            raise UserError(name, f"data set not found (looked in: {tried}) and download failed ({reason})",
                            "put the IDX files in a folder and pass --data-dir DIR or set STDBP_DATA_DIR=DIR") from None
    raise UserError(name, f"data set not found (looked in: {tried})",
                    "put the IDX files in a folder and pass --data-dir DIR or set STDBP_DATA_DIR=DIR")


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, folder: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = _PREFIX[split]
    img_path = _file_in(Path(folder), f"{prefix}-images-idx3-ubyte")
    lab_path = _file_in(Path(folder), f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(img_path, f"expected images of shape [N, 28, 28], got {list(images.shape)}",
                        "point at MNIST-format IDX files")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise UserError(lab_path, f"{labels.shape[0] if labels.ndim == 1 else labels.shape} labels for "
                        f"{images.shape[0]} images", "the label and image files do not belong together")
    if labels.size and labels.max() > 9:
        raise UserError(lab_path, f"label {int(labels.max())} out of range 0..9", "fetch the file again")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """`(images uint8 [N,28,28], labels uint8 [N])` of MNIST or Fashion-MNIST (read-only arrays, cached)."""
    _check_name(name, split)
    folder = find_data_dir(name, data_dir)
    return _load_cached(name, split, str(folder.resolve()))


def verify_dataset(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, bool]:
    """sha256 of each decompressed file against the embedded digests."""
    folder = find_data_dir(name, data_dir, allow_download=False)
    out = {}
    for stem, digest in SHA256_DECOMPRESSED[name].items():
        path = _file_in(folder, stem)
        out[stem] = hashlib.sha256(_decompress(path, path.read_bytes())).hexdigest() == digest
    return out


# ------------------------------------------------------------------------------- jitter
class SpikeJitter:
    """Input jitter (paper V-B): `t' = max(t + N(0, sigma^2), 0)`; `+inf` (no spike) stays `+inf`.

    The paper says "variance 0.14"; `sigma` is the standard deviation, so the paper recipe is
    `SpikeJitter.from_variance(0.14)` unless you read "variance" as sigma (option of the trainer).
    Seeded with a `torch.Generator` so a resumed run draws the same noise.
    """

    def __init__(self, sigma: float, generator=None):
        if not sigma >= 0:
            raise UserError("jitter", f"sigma must be >= 0, got {sigma}", "pass a non-negative value")
        self.sigma = float(sigma)
        self.generator = generator

    @classmethod
    def from_variance(cls, variance: float, generator=None) -> "SpikeJitter":
        return cls(float(variance) ** 0.5, generator)

    def __call__(self, times, rows: slice | None = None, n_total: int | None = None):
        """Jitter `times` [B, ...]. Data parallel: `times` are the rows `rows` of a global batch
        of `n_total`; the noise of the whole global batch is drawn and sliced, so every rank (and
        a single process with the global batch) sees the same noise for the same sample."""
        import torch

        if self.sigma == 0:
            return times
        shape = tuple(times.shape) if n_total is None else (int(n_total), *times.shape[1:])
        noise = torch.randn(shape, generator=self.generator, dtype=times.dtype,
                            device="cpu" if self.generator is None else self.generator.device)
        if rows is not None:
            noise = noise[rows]
        noise = noise.to(times.device)
        out = torch.clamp(times + self.sigma * noise, min=0.0)
        return torch.where(torch.isinf(times), times, out)


# ------------------------------------------------------------------------------- augmentation
class RandomShift:
    """Random translation of uint8 images by up to `max_shift` pixels along each axis, with the
    uncovered border filled with 0 (black: silent or late, as in the original background).

    Not in the paper (which only jitters spike times); an opt-in regulariser for the ANN
    pre-training and the STDBP epochs. Works on any [B, ...] tensor whose trailing elements are
    `channels x H x W` images (flattened 784-pixel MNIST rows included) and returns the same
    shape and dtype. Every image draws its own shift (dy, dx), uniform in
    [-max_shift, max_shift]^2, from `generator`; data parallel: like `SpikeJitter`, the shifts of
    the whole global batch are drawn and each rank keeps its `rows`.
    """

    def __init__(self, max_shift: int, image_hw: tuple[int, int], generator=None):
        if not (isinstance(max_shift, int) and max_shift >= 0):
            raise UserError("augment", f"max shift must be a whole number >= 0, got {max_shift}",
                            "pass 0 (off), 1 or 2")
        h, w = int(image_hw[0]), int(image_hw[1])
        if max_shift >= min(h, w):
            raise UserError("augment", f"shift {max_shift} is not smaller than the image {h}x{w}",
                            "use a shift of a few pixels")
        self.max_shift, self.hw, self.generator = max_shift, (h, w), generator

    def __call__(self, pixels, rows: slice | None = None, n_total: int | None = None):
        import torch
        import torch.nn.functional as F

        m = self.max_shift
        if m == 0 or pixels.shape[0] == 0:
            return pixels
        b = pixels.shape[0]
        h, w = self.hw
        n = b if n_total is None else int(n_total)
        shifts = torch.randint(-m, m + 1, (n, 2), generator=self.generator)
        if rows is not None:
            shifts = shifts[rows]
        shifts = shifts.to(pixels.device)
        img = pixels.reshape(b, -1, h, w)
        padded = F.pad(img, (m, m, m, m))  # zeros around; out[y, x] = img[y - dy, x - dx]
        ys = torch.arange(h, device=pixels.device)[None, :] + m - shifts[:, :1]  # [B, H]
        xs = torch.arange(w, device=pixels.device)[None, :] + m - shifts[:, 1:]  # [B, W]
        out = padded[torch.arange(b, device=pixels.device)[:, None, None, None],
                     torch.arange(img.shape[1], device=pixels.device)[None, :, None, None],
                     ys[:, None, :, None], xs[:, None, None, :]]
        return out.reshape(pixels.shape)
