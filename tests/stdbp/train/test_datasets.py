"""stdbp.train.datasets: the validation split held out of the training images."""

from __future__ import annotations

import pytest
import torch

from stdbp.errors import UserError
from stdbp.train.datasets import load_train_data


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}


def test_val_split_is_disjoint_seeded_and_sized():
    full = load_train_data("mnist", (784,), train_subset=2000, test_subset=10, seed=3)
    a = load_train_data("mnist", (784,), train_subset=2000, test_subset=10, seed=3, val_split=300)
    b = load_train_data("mnist", (784,), train_subset=2000, test_subset=10, seed=3, val_split=300)
    assert full.x_val is None and full.y_val is None
    assert len(a.y_val) == 300 and len(a.y_train) == 1700
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.x_train, b.x_train)
    # train + validation is exactly the subset it came from, with labels kept alongside
    assert sorted(_rows(a.x_train) | _rows(a.x_val)) == sorted(_rows(full.x_train))
    assert not _rows(a.x_train) & _rows(a.x_val)
    assert int(a.y_train.sum() + a.y_val.sum()) == int(full.y_train.sum())
    assert torch.equal(a.x_test, full.x_test)
    c = load_train_data("mnist", (784,), train_subset=2000, test_subset=10, seed=4, val_split=300)
    assert not torch.equal(c.y_val, a.y_val)


def test_val_split_larger_than_train_set_is_a_user_error():
    with pytest.raises(UserError, match="the training set has 100 images"):
        load_train_data("mnist", (784,), train_subset=100, test_subset=10, val_split=100)
