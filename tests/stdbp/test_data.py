"""IDX reader, data-set location, download with checksum verification, jitter transform."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from stdbp import data
from stdbp.errors import UserError


def _idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    # never touch the user's cache, never hit the network
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("STDBP_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "fetch", _no_network)
    data._load_cached.cache_clear()
    yield
    data._load_cached.cache_clear()


def _no_network(url):
    raise OSError("network disabled in tests")


@pytest.mark.parametrize("name", data.DATASETS)
def test_shipped_data_counts_histograms_checksums(name):
    x_tr, y_tr = data.load_dataset(name, "train")
    x_te, y_te = data.load_dataset(name, "test")
    assert x_tr.shape == (60000, 28, 28) and y_tr.shape == (60000,)
    assert x_te.shape == (10000, 28, 28) and y_te.shape == (10000,)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.uint8
    if name == "mnist":
        assert np.bincount(y_tr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        assert np.bincount(y_te).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        assert abs(float(x_tr.mean()) - 33.3184) < 1e-3
    else:
        assert np.bincount(y_tr).tolist() == [6000] * 10
        assert np.bincount(y_te).tolist() == [1000] * 10
    assert all(data.verify_dataset(name).values())
    # cached: the same (read-only) object comes back
    assert data.load_dataset(name, "test")[0] is x_te
    assert not x_te.flags.writeable


def test_raw_and_gzip_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a"), arr)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.gz"), arr)


@pytest.mark.parametrize(
    "blob, words",
    [
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "bad IDX magic"),
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x05", "bad IDX magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (_idx_bytes(np.zeros((3, 2, 2)))[:-1], "truncated"),
        (_idx_bytes(np.zeros((3, 2, 2))) + b"\x00", "trailing bytes"),
    ],
)
def test_corrupt_idx_names_file_and_problem(tmp_path, blob, words):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(blob)
    with pytest.raises(UserError) as err:
        data.read_idx(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_truncated_gzip_is_a_user_error(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.random.default_rng(0).integers(0, 256, (50, 28, 28))))[:1000])
    with pytest.raises(UserError, match="corrupt or truncated gzip"):
        data.read_idx(path)


def _fake_dataset(folder, n=5, seed=0, label_max=9):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx_bytes(rng.integers(0, 256, (n, 28, 28)))))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(rng.integers(0, label_max + 1, n)))


def test_explicit_dir_then_env(tmp_path, monkeypatch):
    _fake_dataset(tmp_path / "explicit", n=3)
    x, y = data.load_dataset("mnist", "train", data_dir=tmp_path / "explicit")
    assert x.shape == (3, 28, 28) and y.shape == (3,)
    _fake_dataset(tmp_path / "env" / "mnist", n=4)  # parent layout: $STDBP_DATA_DIR/mnist/
    monkeypatch.setenv("STDBP_DATA_DIR", str(tmp_path / "env"))
    assert data.load_dataset("mnist", "test")[0].shape == (4, 28, 28)
    assert data.find_data_dir("mnist") == tmp_path / "env" / "mnist"


def test_explicit_dir_missing_is_user_error(tmp_path):
    with pytest.raises(UserError, match="no complete mnist IDX files"):
        data.load_dataset("mnist", "train", data_dir=tmp_path / "nothing")


def test_mismatched_labels_rejected(tmp_path):
    _fake_dataset(tmp_path / "d", n=3)
    (tmp_path / "d" / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(2)))
    with pytest.raises(UserError, match="labels for 3 images"):
        data.load_dataset("mnist", "train", data_dir=tmp_path / "d")


def test_unknown_name_and_split():
    with pytest.raises(UserError, match="unknown name"):
        data.load_dataset("cifar10")
    with pytest.raises(UserError, match="unknown split"):
        data.load_dataset("mnist", "validation")


def _serve(payloads):
    """A fake `fetch` serving {file name: bytes}, recording the URLs asked for."""
    asked = []

    def fetch(url):
        asked.append(url)
        key = url.rsplit("/", 1)[-1]
        if key not in payloads:
            raise OSError(f"404 {url}")
        return payloads[key]

    return fetch, asked


def _real_payloads(name):
    folder = data.find_data_dir(name, allow_download=False)
    return {p.name: p.read_bytes() for p in folder.glob("*.gz")}


def test_download_verifies_and_fills_cache(monkeypatch, tmp_path):
    fetch, asked = _serve(_real_payloads("mnist"))
    monkeypatch.setattr(data, "fetch", fetch)
    dest = data.download("mnist", dest=tmp_path / "dl")
    assert len(asked) == 4 and asked[0].startswith(data.MIRRORS["mnist"][0])
    assert all(data.verify_dataset("mnist", dest).values())
    assert data.load_dataset("mnist", "test", data_dir=dest)[0].shape == (10000, 28, 28)


def test_download_from_file_url(monkeypatch, tmp_path):
    # the real urlopen path, on a local file:// mirror
    monkeypatch.setattr(data, "fetch", data._urlopen_bytes)
    src = data.find_data_dir("fashion-mnist", allow_download=False)
    dest = data.download("fashion-mnist", dest=tmp_path / "dl", mirrors=(src.as_uri() + "/",))
    assert all(data.verify_dataset("fashion-mnist", dest).values())


def test_download_checksum_mismatch_falls_back_then_fails(monkeypatch, tmp_path):
    payloads = _real_payloads("mnist")
    bad = {k: gzip.decompress(v)[:-1] + b"\x01" for k, v in payloads.items()}  # raw IDX, one byte off
    calls = []

    def fetch(url):
        calls.append(url)
        key = url.rsplit("/", 1)[-1]
        return bad[key] if url.startswith(data.MIRRORS["mnist"][0]) else payloads[key]

    monkeypatch.setattr(data, "fetch", fetch)
    dest = data.download("mnist", dest=tmp_path / "dl")  # first mirror corrupt, second good
    assert len(calls) == 8 and all(data.verify_dataset("mnist", dest).values())

    monkeypatch.setattr(data, "fetch", lambda url: bad[url.rsplit("/", 1)[-1]])
    with pytest.raises(data.DownloadError, match="sha256 mismatch"):
        data.download("mnist", dest=tmp_path / "dl2")
    assert not (tmp_path / "dl2").exists() or not list((tmp_path / "dl2").glob("*.gz"))


def test_offline_nothing_found_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "_shared_dirs", lambda name: [tmp_path / "no-shared"])
    monkeypatch.setattr(data, "DEBIAN_DIRS", {})
    with pytest.raises(UserError) as err:
        data.load_dataset("fashion-mnist", "train")
    text = str(err.value)
    assert "looked in" in text and "STDBP_DATA_DIR" in text and "--data-dir" in text
    assert "network disabled" in text


def test_jitter_seeded_clamped_inf_kept():
    t = torch.tensor([[0.0, 0.5, 1.0, float("inf")]] * 2000)
    j1 = data.SpikeJitter.from_variance(0.14, torch.Generator().manual_seed(3))(t)
    j2 = data.SpikeJitter.from_variance(0.14, torch.Generator().manual_seed(3))(t)
    assert torch.equal(j1, j2)
    assert torch.isinf(j1[:, 3]).all() and (j1[:, :3] >= 0).all()
    # unclamped column 1 (0.5 +- sigma) shows the configured spread
    assert abs(float(j1[:, 2].std()) - 0.14 ** 0.5) < 0.05
    assert torch.equal(data.SpikeJitter(0.0)(t), t)
    with pytest.raises(UserError):
        data.SpikeJitter(-1.0)


def test_digests_match_shared_listing():
    listing = data.find_data_dir("mnist", allow_download=False).parent / "SHA256SUMS.decompressed"
    if not listing.exists():
        pytest.skip("no SHA256SUMS.decompressed beside the data")
    for line in listing.read_text().split("\n"):
        if line.strip():
            digest, rel = line.split()
            name, stem = rel.split("/")
            assert data.SHA256_DECOMPRESSED[name][stem] == digest


def test_random_shift_translates_each_image_and_fills_black():
    gen = torch.Generator().manual_seed(5)
    imgs = torch.randint(1, 256, (64, 1, 6, 7), dtype=torch.uint8)
    out = data.RandomShift(2, (6, 7), gen)(imgs)
    assert out.shape == imgs.shape and out.dtype == torch.uint8
    shifts = torch.randint(-2, 3, (64, 2), generator=torch.Generator().manual_seed(5))
    for k, (dy, dx) in enumerate(shifts.tolist()):  # obviously-correct per-image reference
        ref = torch.zeros(6, 7, dtype=torch.uint8)
        for y in range(6):
            for x in range(7):
                if 0 <= y - dy < 6 and 0 <= x - dx < 7:
                    ref[y, x] = imgs[k, 0, y - dy, x - dx]
        assert torch.equal(out[k, 0], ref), (k, dy, dx)


def test_random_shift_flat_rows_ranks_and_errors():
    imgs = torch.randint(0, 256, (10, 784), dtype=torch.uint8)
    whole = data.RandomShift(1, (28, 28), torch.Generator().manual_seed(1))(imgs)
    assert whole.shape == (10, 784)
    # a data-parallel rank draws the global batch's shifts and keeps its own rows
    rank1 = data.RandomShift(1, (28, 28), torch.Generator().manual_seed(1))(imgs[1::2], slice(1, None, 2), 10)
    assert torch.equal(rank1, whole[1::2])
    assert torch.equal(data.RandomShift(0, (28, 28))(imgs), imgs)
    for bad in (-1, 1.5, 28):
        with pytest.raises(UserError):
            data.RandomShift(bad, (28, 28))
